// deploy-stack as the runner runs it: the bundled action in its own process, talking to a CloudFormation stand-in over
// the real awsQuery protocol (AWS_ENDPOINT_URL_CLOUDFORMATION) and to a GitHub API stand-in (GITHUB_API_URL).
// CloudFormation itself cannot run here; the behaviour against its answers is covered in test/unit/actions.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { parseConfigText } from "../../../lambda/bridge/config";
import { startLocalS3, type LocalS3 } from "../../../scripts/local/s3-server";
import { startLocalCloudFormation, type LocalCloudFormation } from "../../support/local-cloudformation";
import { startLocalGitHub, type LocalGitHub } from "../../support/local-github";
import { REPO, runAction } from "./run-action";

// Each test starts Node processes (about 0.2 s each alone); a loaded machine running every suite needs headroom.
jest.setTimeout(60_000);

const TOKEN = "ghs_localtesttoken0000000000000000000000";

let cfn: LocalCloudFormation;
let gh: LocalGitHub;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "deploy-stack-test-"));
  cfn = await startLocalCloudFormation();
  gh = await startLocalGitHub({ token: TOKEN });
});

afterAll(async () => {
  await cfn?.close();
  await gh?.close();
  rmSync(work, { recursive: true, force: true });
});

function template(options: { topicFails?: string; extra?: boolean } = {}): string {
  const topicMeta = options.topicFails
    ? `\n    Metadata:\n      LocalCloudFormation:\n        Fail: "${options.topicFails}"`
    : "";
  return [
    "Parameters:",
    "  Greeting: {Type: String}",
    "  CodeKey: {Type: String}",
    "Resources:",
    "  Queue:",
    "    Type: AWS::SQS::Queue",
    "    Properties: {DelaySeconds: 0}",
    "  Topic:",
    `    Type: AWS::SNS::Topic${topicMeta}`,
    ...(options.extra ? ["  Extra:", "    Type: AWS::SQS::Queue"] : []),
    "Outputs:",
    "  Greeting:",
    "    Value: !Ref Greeting",
    "  CodeKey:",
    "    Value: !Ref CodeKey",
    "",
  ].join("\n");
}

function files(name: string, body: string) {
  const templateFile = join(work, `${name}.yaml`);
  writeFileSync(templateFile, body);
  const envFile = join(work, `${name}-env.yaml`);
  writeFileSync(envFile, "parameters:\n  Greeting: hello\n  CodeKey: from-file\ntags:\n  environment: pr\n");
  return { templateFile, envFile };
}

function env(pr?: number): Record<string, string> {
  const event = join(work, `event-${pr ?? "push"}.json`);
  writeFileSync(event, JSON.stringify(pr ? { pull_request: { number: pr } } : {}));
  return {
    AWS_ENDPOINT_URL_CLOUDFORMATION: cfn.endpoint,
    AWS_REGION: cfn.region,
    AWS_ACCESS_KEY_ID: "AKIDLOCAL",
    AWS_SECRET_ACCESS_KEY: "local-secret",
    GITHUB_API_URL: gh.url,
    GITHUB_SERVER_URL: "https://github.com",
    GITHUB_REPOSITORY: "acme/s3-sftp-bridge",
    GITHUB_EVENT_NAME: pr ? "pull_request" : "push",
    GITHUB_EVENT_PATH: event,
    GITHUB_RUN_ID: "4242",
    GITHUB_RUN_ATTEMPT: "1",
  };
}

describe("deploy-stack as a process", () => {
  it("creates, then finds no changes, then fails on a broken resource, keeping one PR comment up to date", async () => {
    const stack = "bridge-pr-7";
    const ok = files("ok", template());
    const inputs = {
      "stack-name": stack,
      template: ok.templateFile,
      "parameters-file": ok.envFile,
      parameters: "CodeKey=lambda/abc.zip",
      "poll-interval-seconds": "0",
      "github-token": TOKEN,
    };

    // Reviewers' comments first, so the bot's lands on the second page of the listing (page size 2).
    for (const body of ["first!", "please add alarms", "done"]) {
      gh.comments.push({ id: gh.comments.length + 1, issue: 7, body, repo: "acme/s3-sftp-bridge" });
    }

    const created = await runAction("deploy-stack", inputs, env(7));
    expect(created.errors).toEqual([]);
    expect(created.code).toBe(0);
    expect(created.outputs).toMatchObject({
      outcome: "created",
      "stack-status": "CREATE_COMPLETE",
      changes: "2",
      // Every stack output, by its own key and as JSON; the inline parameter won over the file's.
      Greeting: "hello",
      CodeKey: "lambda/abc.zip",
    });
    expect(JSON.parse(created.outputs.outputs!)).toEqual({ Greeting: "hello", CodeKey: "lambda/abc.zip" });
    expect(created.outputs["change-set-name"]).toMatch(/^gha-4242-1-[a-z0-9]+$/);
    // Events were streamed into the log while waiting.
    expect(created.stdout).toMatch(/CREATE_IN_PROGRESS\s+Queue \(AWS::SQS::Queue\)/);
    expect(created.stdout).toMatch(/CREATE_COMPLETE\s+bridge-pr-7 \(AWS::CloudFormation::Stack\)/);
    expect(created.summary).toContain("### `bridge-pr-7`: ✅ created");
    expect(created.summary).toContain("| ➕ Add | Queue | AWS::SQS::Queue | - | - |");
    expect(cfn.stackByName(stack)?.tags).toEqual({ environment: "pr" });
    const bot = () => gh.comments.filter((c) => c.body.startsWith("<!-- s3-sftp-bridge/deploy-stack"));
    expect(gh.comments).toHaveLength(4);
    expect(bot()[0]!.body).toMatch(
      /^<!-- s3-sftp-bridge\/deploy-stack stack=bridge-pr-7 -->\n### `bridge-pr-7`: ✅ created/,
    );

    const unchanged = await runAction("deploy-stack", inputs, env(7));
    expect(unchanged.code).toBe(0);
    expect(unchanged.outputs).toMatchObject({ outcome: "no-changes", Greeting: "hello" });
    expect(gh.comments).toHaveLength(4);
    expect(bot()[0]!.body).toContain("✅ no changes");
    expect(bot()[0]!.body).toContain("empty: deleted");
    expect(bot()[0]!.body).not.toContain("**Changes**");
    expect(gh.requests.some((r) => r.method === "GET" && r.path.includes("page=2"))).toBe(true);

    const broken = files("broken", template({ topicFails: "Topic name is reserved", extra: true }));
    const failed = await runAction("deploy-stack", { ...inputs, template: broken.templateFile }, env(7));
    expect(failed.code).toBe(1);
    expect(failed.outputs).toMatchObject({ outcome: "failed", "stack-status": "UPDATE_ROLLBACK_COMPLETE" });
    // The failed resource is annotated as it happens, and the step's failure message repeats it with the outcome.
    expect(failed.errors[0]).toMatch(/UPDATE_FAILED\s+Topic \(AWS::SNS::Topic\): Topic name is reserved$/);
    expect(failed.errors.at(-1)).toContain("stack bridge-pr-7 update failed: UPDATE_ROLLBACK_COMPLETE");
    expect(failed.errors.at(-1)).toContain("Topic (AWS::SNS::Topic) UPDATE_FAILED: Topic name is reserved");
    expect(failed.summary).toContain("| Topic | AWS::SNS::Topic | UPDATE_FAILED | Topic name is reserved |");
    expect(gh.comments).toHaveLength(4);
    expect(bot()[0]!.body).toContain("❌ failed");
    expect(gh.requests.every((r) => r.authorization === `token ${TOKEN}`)).toBe(true);
    // The token is registered as a secret before anything else is printed, and printed nowhere else.
    const lines = failed.stdout.split("\n");
    expect(lines.slice(0, 2)).toContain(`::add-mask::${TOKEN}`);
    expect(lines.filter((l) => l.includes(TOKEN))).toHaveLength(1);
  });

  it("plans without executing, then deletes the stack (outside a PR: no comment)", async () => {
    const stack = "bridge-staging";
    const f = files("plan", template());
    const base = { "stack-name": stack, "poll-interval-seconds": "0", "github-token": TOKEN };
    const commentsBefore = gh.comments.length;

    const plan = await runAction(
      "deploy-stack",
      { ...base, mode: "plan", template: f.templateFile, "parameters-file": f.envFile },
      env(),
    );
    expect(plan.code).toBe(0);
    expect(plan.outputs).toMatchObject({ outcome: "planned", changes: "2", "stack-status": "REVIEW_IN_PROGRESS" });
    expect(
      cfn.calls.filter((c) => c.action === "ExecuteChangeSet" && c.params.StackName?.includes(stack)),
    ).toHaveLength(0);
    expect(plan.summary).toContain("(2 resource(s) would change)");

    const deleted = await runAction("deploy-stack", { ...base, mode: "delete" }, env());
    expect(deleted.code).toBe(0);
    expect(deleted.outputs).toMatchObject({ outcome: "deleted", "stack-status": "DELETE_COMPLETE" });
    expect(cfn.stackByName(stack)).toBeUndefined();

    const again = await runAction("deploy-stack", { ...base, mode: "delete" }, env());
    expect(again.outputs.outcome).toBe("absent");
    expect(gh.comments).toHaveLength(commentsBefore);
  });

  it("deletes a stack whose creation rolled back and creates it again", async () => {
    const stack = "bridge-recover";
    const base = { "stack-name": stack, "poll-interval-seconds": "0" };
    const broken = files("first-create", template({ topicFails: "Invalid parameter: TopicName" }));
    const first = await runAction(
      "deploy-stack",
      { ...base, template: broken.templateFile, "parameters-file": broken.envFile },
      env(),
    );
    expect(first.code).toBe(1);
    expect(first.outputs["stack-status"]).toBe("ROLLBACK_COMPLETE");
    const firstId = cfn.stackByName(stack)!.id;

    const fixed = files("second-create", template());
    const second = await runAction(
      "deploy-stack",
      { ...base, template: fixed.templateFile, "parameters-file": fixed.envFile },
      env(),
    );
    expect(second.errors).toEqual([]);
    expect(second.outputs).toMatchObject({ outcome: "created", "stack-status": "CREATE_COMPLETE" });
    expect(second.outputs["stack-id"]).not.toBe(firstId);
    expect(cfn.stacks.get(firstId)!.status).toBe("DELETE_COMPLETE");
    expect(second.stdout).toContain("::warning::stack bridge-recover is in ROLLBACK_COMPLETE");
    expect(second.summary).toContain("it was deleted and created again");
  });

  it("rejects invalid inputs before calling AWS, naming each", async () => {
    const callsBefore = cfn.calls.length;
    const run = await runAction(
      "deploy-stack",
      {
        "stack-name": "1-bad",
        mode: "apply",
        capabilities: "CAPABILITY_IAM,CAPABILITY_ROOT",
        "timeout-minutes": "0",
        "role-arn": "my-role",
      },
      env(),
    );
    expect(run.code).toBe(1);
    expect(run.errors[0]!.split("\n")).toEqual([
      "6 invalid input(s):",
      '  stack-name: "1-bad" is not a stack name (a letter, then letters, digits, hyphens; max 128)',
      '  mode: "apply" is not one of: deploy, plan, delete',
      "  template: is required: a file path or an https:// S3 URL",
      '  capabilities: "CAPABILITY_ROOT" is not one of CAPABILITY_IAM, CAPABILITY_NAMED_IAM, CAPABILITY_AUTO_EXPAND',
      '  role-arn: "my-role" is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)',
      '  timeout-minutes: "0" is not a whole number between 1 and 1440',
    ]);
    expect(cfn.calls.length).toBe(callsBefore);
  });
});

describe("deploy-stack parameters", () => {
  const body = [
    "Parameters:",
    "  CodeKey: {Type: String}",
    "  LogLevel: {Type: String, Default: INFO}",
    '  AlarmTopicArn: {Type: String, Default: ""}',
    "Resources:",
    "  Queue:",
    "    Type: AWS::SQS::Queue",
    "Outputs:",
    "  LogLevel:",
    "    Value: !Ref LogLevel",
    "  AlarmTopicArn:",
    "    Value: !Ref AlarmTopicArn",
    "",
  ].join("\n");

  it("keeps a parameter an update does not give, instead of reverting it to the template's default", async () => {
    const stack = "bridge-keep";
    const { templateFile } = files("keep", body);
    const base = { "stack-name": stack, template: templateFile, "poll-interval-seconds": "0" };

    const first = await runAction("deploy-stack", { ...base, parameters: "CodeKey=a\nLogLevel=DEBUG" }, env());
    expect(first.errors).toEqual([]);
    expect(first.outputs).toMatchObject({ outcome: "created", LogLevel: "DEBUG" });

    // The next deploy names only the code key: what the stack has for the others stays.
    const second = await runAction("deploy-stack", { ...base, parameters: "CodeKey=b" }, env());
    expect(second.errors).toEqual([]);
    expect(second.outputs).toMatchObject({ outcome: "updated", LogLevel: "DEBUG" });
    const create = cfn.calls.filter((c) => c.action === "CreateChangeSet" && c.params.StackName === stack).at(-1)!;
    const sent = Object.entries(create.params).filter(([k]) => k.startsWith("Parameters.member."));
    expect(Object.fromEntries(sent)).toMatchObject({
      "Parameters.member.1.ParameterKey": "AlarmTopicArn",
      "Parameters.member.1.UsePreviousValue": "true",
      "Parameters.member.2.ParameterKey": "CodeKey",
      "Parameters.member.2.ParameterValue": "b",
      "Parameters.member.3.ParameterKey": "LogLevel",
      "Parameters.member.3.UsePreviousValue": "true",
    });
    expect(second.summary).toContain("kept their previous values: AlarmTopicArn, LogLevel");

    // Asked not to: the template's default again.
    const third = await runAction(
      "deploy-stack",
      { ...base, parameters: "CodeKey=c", "keep-previous-parameters": "false" },
      env(),
    );
    expect(third.errors).toEqual([]);
    expect(third.outputs).toMatchObject({ outcome: "updated", LogLevel: "INFO" });
  });

  it("refuses a deploy that would leave a required parameter empty, before any change set", async () => {
    const stack = "bridge-production-like";
    const { templateFile } = files("required", body);
    const base = {
      "stack-name": stack,
      template: templateFile,
      "poll-interval-seconds": "0",
      "required-parameters": "AlarmTopicArn",
    };

    const empty = await runAction("deploy-stack", { ...base, parameters: "CodeKey=a\nAlarmTopicArn=" }, env());
    expect(empty.code).toBe(1);
    expect(empty.errors.at(-1)).toContain("AlarmTopicArn must not be empty");
    // Not given at all: the template's default ("") counts, and is refused the same way.
    const omitted = await runAction("deploy-stack", { ...base, parameters: "CodeKey=a" }, env());
    expect(omitted.code).toBe(1);
    expect(omitted.errors.at(-1)).toContain("AlarmTopicArn must not be empty");
    expect(cfn.calls.filter((c) => c.action === "CreateChangeSet" && c.params.StackName === stack)).toEqual([]);

    const topic = "arn:aws:sns:us-east-1:123456789012:on-call";
    const ok = await runAction("deploy-stack", { ...base, parameters: `CodeKey=a\nAlarmTopicArn=${topic}` }, env());
    expect(ok.errors).toEqual([]);
    expect(ok.outputs).toMatchObject({ outcome: "created", AlarmTopicArn: topic });
    // Kept from the stack, it still counts.
    const kept = await runAction("deploy-stack", { ...base, parameters: "CodeKey=b" }, env());
    expect(kept.errors).toEqual([]);
    expect(kept.outputs).toMatchObject({ outcome: "updated", AlarmTopicArn: topic });
  });
});

describe("deploy-stack delivers the stream config", () => {
  const PR_CONFIG = join(REPO, "deploy", "environments", "pr.config.yaml");
  const HOST_KEY = "SHA256:" + "Q".repeat(43);
  const VALUES = `SmokeSftpHost=s-1234.server.transfer.us-east-1.amazonaws.com\nSmokeSftpPort=2222\nSmokeSftpHostKey=${HOST_KEY}`;
  let s3server: LocalS3;
  let s3: S3Client;
  let local: LocalCloudFormation;

  beforeAll(async () => {
    s3server = await startLocalS3({ directory: join(work, "s3") });
    s3 = s3server.client();
    // The bucket the bridge template names after the stack's id, made for real so the config has somewhere to go.
    local = await startLocalCloudFormation({
      provision: {
        "AWS::S3::Bucket": async ({ stackId }) => {
          const name = `s3-sftp-bridge-${stackId.split("/")[2]}`;
          await s3server.createBucket(name);
          return name;
        },
      },
    });
  });

  afterAll(async () => {
    s3?.destroy();
    await s3server?.close();
    await local?.close();
  });

  // The bridge template's config outputs, as templates/bridge.yaml declares them for an S3 config.
  const bridgeLike = [
    "Parameters:",
    "  CodeKey: {Type: String}",
    "  ConfigKey: {Type: String, Default: _bridge/config.yaml}",
    "  ReceiptsPrefix: {Type: String, Default: _bridge/receipts/}",
    '  BucketName: {Type: String, Default: ""}',
    "Resources:",
    "  Bucket:",
    "    Type: AWS::S3::Bucket",
    "  Queue:",
    "    Type: AWS::SQS::Queue",
    "Outputs:",
    "  BucketName:",
    "    Value: !Ref Bucket",
    "  ConfigLocation:",
    '    Value: !Sub "s3://${Bucket}/${ConfigKey}"',
    "",
  ].join("\n");

  const localEnv = () => ({
    ...env(),
    AWS_ENDPOINT_URL_CLOUDFORMATION: local.endpoint,
    AWS_ENDPOINT_URL_S3: s3server.endpoint,
    AWS_ACCESS_KEY_ID: s3server.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3server.credentials.secretAccessKey,
  });

  async function stored(location: string): Promise<string> {
    const [, bucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(location)!;
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return out.Body!.transformToString();
  }

  it("takes a new PR stack from nothing to a stack whose config is at its ConfigLocation and names its bucket", async () => {
    const { templateFile } = files("bridge-like", bridgeLike);
    const inputs = {
      "stack-name": "bridge-pr-42",
      template: templateFile,
      parameters: "CodeKey=lambda/abc.zip",
      "config-file": PR_CONFIG,
      "config-values": VALUES,
      "poll-interval-seconds": "0",
    };

    const first = await runAction("deploy-stack", inputs, localEnv());
    expect(first.errors).toEqual([]);
    expect(first.outputs).toMatchObject({ outcome: "created", "config-result": "uploaded" });
    const bucket = first.outputs.BucketName!;
    expect(bucket).toMatch(/^s3-sftp-bridge-[0-9a-f-]{36}$/);
    expect(first.outputs["config-location"]).toBe(`s3://${bucket}/_bridge/config.yaml`);
    expect(first.outputs.ConfigLocation).toBe(first.outputs["config-location"]);

    // What the function will read there: valid for it, naming its bucket and its own folders on the test server.
    const text = await stored(first.outputs["config-location"]!);
    const lines = text.split("\n").filter((l) => !l.trimStart().startsWith("#"));
    expect(lines.filter((l) => l.includes("${"))).toEqual([]);
    expect(createHash("sha256").update(text).digest("hex")).toBe(first.outputs["config-sha256"]);
    const config = parseConfigText(text, "delivered", { allowFileCredentials: false });
    expect(config.streams.smoke).toMatchObject({
      s3: { bucket, prefix: "smoke/" },
      // An unquoted placeholder given a whole number is a number, as YAML reads `port: 2222`.
      sftp: { host: "s-1234.server.transfer.us-east-1.amazonaws.com", port: 2222, hostKeys: [HOST_KEY] },
      push: { to: "/bridge-pr-42/in" },
      pull: { from: "/bridge-pr-42/out" },
    });
    expect(first.summary).toContain(`Stream config written to s3://${bucket}/_bridge/config.yaml`);

    // The same config again: not written again.
    const again = await runAction("deploy-stack", inputs, localEnv());
    expect(again.errors).toEqual([]);
    expect(again.outputs).toMatchObject({ outcome: "no-changes", "config-result": "unchanged" });

    // A changed value is a changed config, even when the stack itself has nothing to change.
    const moved = await runAction(
      "deploy-stack",
      { ...inputs, "config-values": VALUES.replace("s-1234", "s-5678") },
      localEnv(),
    );
    expect(moved.errors).toEqual([]);
    expect(moved.outputs).toMatchObject({ outcome: "no-changes", "config-result": "uploaded" });
    expect(await stored(moved.outputs["config-location"]!)).toContain("host: s-5678.server");
  });

  it("stops before any CloudFormation call when the config would not pass the function's validation", async () => {
    const { templateFile } = files("bridge-like-invalid", bridgeLike);
    const callsBefore = local.calls.length;
    const bad = await runAction(
      "deploy-stack",
      {
        "stack-name": "bridge-pr-43",
        template: templateFile,
        parameters: "CodeKey=lambda/abc.zip",
        "config-file": PR_CONFIG,
        "config-values": "SmokeSftpHost=sftp.example\nSmokeSftpPort=22\nSmokeSftpHostKey=MD5:aa:bb",
        "poll-interval-seconds": "0",
      },
      localEnv(),
    );
    expect(bad.code).toBe(1);
    expect(bad.errors.at(-1)).toContain("streams.smoke.sftp.hostKeys[0]: must be an OpenSSH SHA256 fingerprint");
    expect(bad.errors.at(-1)).toContain("before the stack was touched");

    // A variable that is not set is named as such, not as a config problem somewhere down the line.
    const unset = await runAction(
      "deploy-stack",
      {
        "stack-name": "bridge-pr-43",
        template: templateFile,
        parameters: "CodeKey=lambda/abc.zip",
        "config-file": PR_CONFIG,
        "config-values": `SmokeSftpHost=\nSmokeSftpPort=22\nSmokeSftpHostKey=${HOST_KEY}`,
      },
      localEnv(),
    );
    expect(unset.code).toBe(1);
    expect(unset.errors.at(-1)).toContain("config-values: SmokeSftpHost is empty");

    // A key file is fine for the CLI, never for the function (bridge validate --lambda).
    const fileCredentials = join(work, "file-credentials.yaml");
    writeFileSync(
      fileCredentials,
      readFileSync(PR_CONFIG, "utf8").replace("{ secretsManager: bridge-pr/smoke }", "{ file: /keys/smoke }"),
    );
    const withFile = await runAction(
      "deploy-stack",
      {
        "stack-name": "bridge-pr-43",
        template: templateFile,
        parameters: "CodeKey=lambda/abc.zip",
        "config-file": fileCredentials,
        "config-values": VALUES,
      },
      localEnv(),
    );
    expect(withFile.code).toBe(1);
    expect(withFile.errors.at(-1)).toContain("streams.smoke.sftp.credentials.file: credential files are only allowed");

    expect(local.calls.slice(callsBefore)).toEqual([]);
    expect(local.stackByName("bridge-pr-43")).toBeUndefined();
  });

  it("writes no config that names another bucket than the stack's", async () => {
    const { templateFile } = files("bridge-like-foreign", bridgeLike);
    const foreign = join(work, "foreign-bucket.yaml");
    writeFileSync(foreign, readFileSync(PR_CONFIG, "utf8").replace("${BucketName}", "someone-elses-bucket"));
    const inputs = {
      "stack-name": "bridge-pr-44",
      template: templateFile,
      parameters: "CodeKey=lambda/abc.zip",
      "config-file": foreign,
      "config-values": VALUES,
      "poll-interval-seconds": "0",
    };

    const run = await runAction("deploy-stack", inputs, localEnv());
    expect(run.code).toBe(1);
    expect(run.errors.at(-1)).toMatch(
      /streams\.smoke\.s3\.bucket is someone-elses-bucket, but the stack's bucket is s3-sftp-bridge-[0-9a-f-]+, the only one its function may use/,
    );
    const bucket = local.stackByName("bridge-pr-44")!.physicalIds.Bucket!;
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(listed.Contents ?? []).toEqual([]);

    // Known before the stack is touched when the bucket is named by a parameter.
    const callsBefore = local.calls.length;
    const named = await runAction(
      "deploy-stack",
      { ...inputs, "stack-name": "bridge-pr-45", parameters: "CodeKey=x\nBucketName=my-bridge-bucket" },
      localEnv(),
    );
    expect(named.code).toBe(1);
    expect(named.errors.at(-1)).toContain("the stack's bucket is my-bridge-bucket");
    expect(local.calls.slice(callsBefore)).toEqual([]);
  });
});
