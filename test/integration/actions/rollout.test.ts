import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { parseS3Uri } from "../../../lambda/bridge";
import { parseConfigText } from "../../../lambda/bridge/config";
import { generateUserKey, startSftpServer, type EmbeddedSftpServer } from "../../../scripts/local/sftp-server";
import { startLocalAccount, type LocalAccount } from "../../support/local-account";
import { startLocalGitHub, type LocalGitHub } from "../../support/local-github";
import { dryRun, type JobRecord } from "../../support/workflow-dry-run";
import { REPO } from "./run-action";

/**
 * A first rollout, as the workflows run it, from nothing: pr-stack.yml and release.yml taken step by step by a dry-run
 * runner (test/support/workflow-dry-run.ts) against a local AWS account (test/support/local-account.ts) whose
 * CloudFormation evaluates templates/bridge.yaml and runs what it provisions: the bucket and its notifications, the
 * queue, and the function from the zip the build job made and the publish step uploaded, with the environment the
 * template gives it. The deploy delivers the environment's stream config; the function reads it from there; the smoke
 * test sends one file each way through the stack, against an SFTP server standing in for the Transfer Family test
 * server. Nothing between the workflow files and the SFTP server is mocked.
 */

// A dry run builds the zip, then runs an action process per step, each about a second, and the smoke test's two
// round trips; a loaded machine running every suite needs headroom.
jest.setTimeout(300_000);

const REPOSITORY = "acme/s3-sftp-bridge";
const TOKEN = "ghs_rolloutdryruntoken000000000000000000";
const DEPLOY_BUCKET = "acme-bridge-deploys";
const SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

let work: string;
let account: LocalAccount;
let sftp: EmbeddedSftpServer;
let github: LocalGitHub;
let s3: S3Client;
let bin: string;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), "rollout-"));
  account = await startLocalAccount({ dir: path.join(work, "account"), buckets: [DEPLOY_BUCKET] });
  s3 = account.s3.client();
  // One test user on one test server, shared by every stack as the Transfer Family server is; each stack's secret
  // holds the user's key.
  const user = generateUserKey();
  sftp = await startSftpServer({
    root: path.join(work, "sftp"),
    port: 0,
    users: [{ username: "bridge-smoke", publicKey: user.publicKey }],
  });
  for (const prefix of ["bridge-pr", "bridge-staging", "bridge-production"]) {
    account.aws.secrets.set(`${prefix}/smoke`, user.privateKey);
  }
  github = await startLocalGitHub({ token: TOKEN, pageSize: 30 });
  // gh as the deploy guard calls it (gh api ROUTE --jq FILTER), answered by the GitHub stand-in.
  bin = path.join(work, "bin");
  mkdirSync(bin);
  writeFileSync(
    path.join(bin, "gh"),
    [
      "#!/usr/bin/env bash",
      "set -euo pipefail",
      '[ "$1" = api ] || { echo "gh stand-in: api only" >&2; exit 2; }',
      "route=$2; shift 2; filter=.",
      'while [ $# -gt 0 ]; do case "$1" in --jq) filter=$2; shift 2 ;; *) shift ;; esac; done',
      'curl -sSf -H "Authorization: token $GH_TOKEN" "$GITHUB_API_URL/$route" | jq -r "$filter"',
      "",
    ].join("\n"),
  );
  chmodSync(path.join(bin, "gh"), 0o755);
});

afterAll(async () => {
  s3?.destroy();
  await sftp?.close();
  await github?.close();
  await account?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A runner's workspace: a checkout of the repository (its files linked in), with room for build/ and artifact/. */
function workspace(name: string): string {
  const dir = path.join(work, name);
  mkdirSync(dir);
  for (const entry of ["actions", "deploy", "scripts", "templates", "package.json"]) {
    symlinkSync(path.join(REPO, entry), path.join(dir, entry));
  }
  return dir;
}

function options(context: Record<string, unknown>, environmentVars: Record<string, Record<string, string>>) {
  return {
    workspace: workspace(`ws-${String(context.run_id)}`),
    github: { repository: REPOSITORY, token: TOKEN, run_id: "0", ...context },
    vars: { AWS_REGION: account.region, DEPLOY_BUCKET },
    environments: environmentVars,
    env: () => ({
      ...account.endpoints(),
      AWS_ENDPOINT_URL_CLOUDFORMATION: account.cfn.endpoint,
      GITHUB_API_URL: github.url,
      GITHUB_SERVER_URL: "https://github.com",
    }),
    credentials: () => account.credentials(),
    // Polling at the actions' defaults (5 s, 2 s) only makes the run slower here, and a broken round trip should
    // fail within the test's time, not after the workflow's 300 s.
    inputOverrides: {
      "deploy-stack": { "poll-interval-seconds": "0" },
      "smoke-test": { "poll-interval-seconds": "1", "timeout-seconds": "30" },
    },
    path: [bin],
    // Enough for both round trips to run out their 30 s and say what they saw.
    timeoutMs: 200_000,
  };
}

/** pr-stack.yml's build and deploy jobs for a pull request event. */
function prStack(pr: number, action: string, runId: string): Promise<JobRecord[]> {
  const event = {
    action,
    number: pr,
    pull_request: { number: pr, head: { sha: SHA, repo: { full_name: REPOSITORY } } },
  };
  return dryRun(
    path.join(REPO, ".github", "workflows", "pr-stack.yml"),
    ["build", "deploy"],
    options(
      { event, event_name: "pull_request", ref: `refs/pull/${pr}/merge`, sha: SHA, run_id: runId },
      { pr: deployVars() },
    ),
  );
}

/** release.yml for a push to main, with production's alarm topic as given. */
function release(runId: string, productionAlarmTopic: string): Promise<JobRecord[]> {
  return dryRun(
    path.join(REPO, ".github", "workflows", "release.yml"),
    ["build", "publish", "staging", "production"],
    options(
      { event: {}, event_name: "push", ref: "refs/heads/main", sha: SHA, run_id: runId },
      {
        artifacts: { AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/bridge-artifacts" },
        staging: deployVars({ ALARM_TOPIC_ARN: "" }),
        production: deployVars({ ALARM_TOPIC_ARN: productionAlarmTopic }),
      },
    ),
  );
}

/** The variables of an environment that deploys and smoke-tests a stack (.github/environments.yml). */
function deployVars(extra: Record<string, string> = {}): Record<string, string> {
  return {
    AWS_ROLE_ARN: "arn:aws:iam::123456789012:role/bridge-deployer",
    CLOUDFORMATION_ROLE_ARN: "arn:aws:iam::123456789012:role/bridge-cloudformation",
    SMOKE_SFTP_HOST: sftp.host,
    SMOKE_SFTP_PORT: String(sftp.port),
    SMOKE_SFTP_HOST_KEY: sftp.hostKeyFingerprint,
    ...extra,
  };
}

/** Every step that ran, with what failed first in full: a failing dry run says which step broke and why. */
function expectAllOk(jobs: JobRecord[]) {
  const failed = jobs.flatMap((j) => j.steps).find((s) => !s.ok);
  expect(failed ? `${failed.label} failed:\n${failed.log ?? ""}` : "every step passed").toBe("every step passed");
}

const ran = (job: JobRecord) => job.steps.filter((s) => !s.skipped).map((s) => s.label.split(" / ")[1]);
const step = (job: JobRecord, name: string) => job.steps.find((s) => s.label.endsWith(`/ ${name}`))!;

/** The config at a stack's ConfigLocation, read as the function reads it. */
async function deliveredConfig(location: string) {
  const { bucket, key } = parseS3Uri(location)!;
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return parseConfigText(await out.Body!.transformToString(), "delivered", { allowFileCredentials: false });
}

describe("first rollout, dry run of the workflows against a local account", () => {
  it("pr-stack.yml takes a pull request from nothing to a smoke-tested stack that reads its delivered config", async () => {
    github.pulls.set(`${REPOSITORY}#42`, { state: "open", headSha: SHA });
    const jobs = await prStack(42, "opened", "4201");
    expectAllOk(jobs);
    const [build, deploy] = jobs as [JobRecord, JobRecord];
    expect(build.outputs["zip-name"]).toMatch(/^bridge-arm64-[0-9a-f]{64}\.zip$/);
    expect(ran(deploy)).toEqual([
      "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8",
      "actions/download-artifact@634f93cb2916e3fdff6788551b99b062d0335ce0",
      "aws-actions/configure-aws-credentials@a03048d87541d1d9fcf2ecf528a4a65ba9bd7838",
      "publish",
      "current",
      "deploy",
      "./actions/smoke-test",
    ]);

    // The stack: created from the published template, its function deployed from the published zip.
    const deployed = step(deploy, "deploy").outputs;
    expect(deployed).toMatchObject({ outcome: "created", "config-result": "uploaded" });
    const stack = account.cfn.stackByName("bridge-pr-42")!;
    expect(stack.status).toBe("CREATE_COMPLETE");
    expect(stack.parameters.CodeKey).toBe(`pr/lambda/${build.outputs.sha256}.zip`);
    const fn = account.functions.get(deployed.FunctionName!)!;
    expect(fn).toBeDefined();

    // The config the deploy delivered is where the function reads it, and names the stack's bucket and folders.
    expect(deployed.ConfigLocation).toBe(`s3://${deployed.BucketName}/_bridge/config.yaml`);
    const config = await deliveredConfig(deployed.ConfigLocation!);
    expect(config.streams.smoke).toMatchObject({
      s3: { bucket: deployed.BucketName, prefix: "smoke/" },
      sftp: { host: sftp.host, port: sftp.port, hostKeys: [sftp.hostKeyFingerprint] },
      push: { to: "/bridge-pr-42/in" },
      pull: { from: "/bridge-pr-42/out" },
    });

    // The smoke test passed both ways, through that function: its push came by the bucket's notification.
    const smoke = step(deploy, "./actions/smoke-test").outputs;
    expect(smoke.result).toBe("passed");
    const steps = JSON.parse(smoke.steps!) as { direction: string; ok: boolean }[];
    expect(steps.filter((s) => s.ok).map((s) => s.direction)).toEqual([
      ...Array(3).fill("push"),
      ...Array(4).fill("pull"),
    ]);
    expect(fn.environment.BRIDGE_CONFIG).toBe(deployed.ConfigLocation);
    expect(fn.logs.join("\n")).toContain(`"destination":"/bridge-pr-42/in/bridge-smoke-push-`);

    // One comment on the pull request with the change set and outcome.
    const comments = github.comments.filter((c) => c.issue === 42);
    expect(comments).toHaveLength(1);
    expect(comments[0]!.body).toContain("`bridge-pr-42`: ✅ created");
  });

  it("pr-stack.yml does not bring back the stack of a pull request closed while its build ran", async () => {
    github.pulls.set(`${REPOSITORY}#43`, { state: "closed", headSha: SHA });
    const jobs = await prStack(43, "synchronize", "4301");
    expectAllOk(jobs);
    const deploy = jobs[1]!;
    expect(step(deploy, "current").outputs).toMatchObject({ deploy: "false" });
    expect(ran(deploy)).not.toContain("deploy");
    expect(ran(deploy)).not.toContain("./actions/smoke-test");
    expect(account.cfn.stackByName("bridge-pr-43")).toBeUndefined();
  });

  it("release.yml takes main from nothing to smoke-tested staging and production stacks, the same zip in both", async () => {
    github.comparisons.set(`${REPOSITORY}:main...${SHA}`, "identical");
    const jobs = await release("5001", "arn:aws:sns:us-east-1:123456789012:bridge-oncall");
    expectAllOk(jobs);
    const publish = jobs[1]!;
    for (const env of ["staging", "production"]) {
      const job = jobs.find((j) => j.job === env)!;
      expect(ran(job)).toContain("deploy");
      const deployed = step(job, "deploy").outputs;
      expect(deployed).toMatchObject({ outcome: "created", "config-result": "uploaded" });
      const stack = account.cfn.stackByName(`bridge-${env}`)!;
      expect(stack.parameters.CodeKey).toBe(publish.outputs["lambda-key"]);
      expect(stack.protection).toBe(true);
      const config = await deliveredConfig(deployed.ConfigLocation!);
      expect(config.streams.smoke?.push?.to).toBe(`/bridge-${env}/in`);
      const smoke = step(job, "./actions/smoke-test").outputs;
      expect(smoke.result).toBe("passed");
    }
    expect(account.cfn.stackByName("bridge-production")!.parameters.AlarmTopicArn).toBe(
      "arn:aws:sns:us-east-1:123456789012:bridge-oncall",
    );
  });

  it("release.yml stops at production when its alarm topic is unset, and production keeps what it had", async () => {
    // Runs after the release above: staging and production exist.
    const before = { ...account.cfn.stackByName("bridge-production")!.parameters };
    const jobs = await release("5002", "");
    const staging = jobs.find((j) => j.job === "staging")!;
    expect(staging.ok).toBe(true);
    expect(step(staging, "deploy").outputs).toMatchObject({ outcome: "no-changes" });
    const production = jobs.find((j) => j.job === "production")!;
    expect(production.ok).toBe(false);
    const deploy = step(production, "deploy");
    expect(deploy.ok).toBe(false);
    expect(deploy.run!.errors.join("\n")).toContain("AlarmTopicArn");
    // Its smoke test does not run after a failed deploy, and the stack was not touched.
    expect(step(production, "./actions/smoke-test").skipped).toBe(true);
    expect(account.cfn.stackByName("bridge-production")!.parameters).toEqual(before);
  });
});
