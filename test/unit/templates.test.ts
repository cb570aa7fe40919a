import { readFileSync } from "node:fs";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { join } from "node:path";
import { ENV, readEnv, REQUIRED_ENV } from "../../lambda/env";
import { parseConfigLocation } from "../../lambda/bridge/config/load";
import { configSchema, STREAM_NAME } from "../../lambda/bridge/config/schema";
import { giltLine, type StreamReport } from "../../lambda/bridge/report";
import { PULL_REFUSED } from "../../lambda/bridge/pull";
import { EVENT_SOURCE } from "../../lambda/bridge/file-events";
import { METRIC_NAMES } from "../../lambda/bridge/metrics";
import { parseCfnYaml, type CfnObject, type CfnTemplate, type CfnValue } from "../support/cfn-yaml";
import {
  evaluateTemplate,
  TEST_ACCOUNT,
  TEST_REGION,
  TEST_STACK,
  type ResolvedTemplate,
} from "../support/template-eval";
import {
  BRIDGE_PARAMS,
  DEPLOY_ROLES_PARAMS,
  SFTP_PARAMS,
  bridge,
  deployRoles,
  evalBridge,
  evalDeployRoles,
  evalSftpServer,
  sftpServer,
} from "../support/template-fixtures";
import { PSEUDO_PARAMETERS, templateReferences } from "../support/template-refs";
import { checkAgainstSpec } from "../support/template-spec";
import { esbuildOptions } from "../../scripts/package";

/**
 * Static checks of the CloudFormation templates (what the stale npm cfn-lint cannot do, see FIELD-NOTES.md), and
 * behaviour checks: each template evaluated under concrete parameters the way CloudFormation would deploy it.
 * IAM actions and least privilege are in templates-iam.test.ts.
 */

const BRIDGE_TEMPLATE_PATH = join(__dirname, "../../templates/bridge.yaml");

const templates: [string, CfnTemplate, Record<string, string>][] = [
  ["bridge.yaml", bridge, BRIDGE_PARAMS],
  ["sftp-server.yaml", sftpServer, SFTP_PARAMS],
  ["deploy-roles.yaml", deployRoles, DEPLOY_ROLES_PARAMS],
];

describe("cfn-yaml", () => {
  it("turns every intrinsic short form into its long form", () => {
    const parsed = parseCfnYaml(`
Resources:
  R:
    Type: X
    Properties:
      ref: !Ref P
      attDot: !GetAtt Res.Attr.Nested
      attList: !GetAtt [Res, Attr]
      sub: !Sub "\${AWS::Region}-\${P}"
      subList: !Sub ["\${A}", { A: !Ref P }]
      join: !Join ["", [a, b]]
      select: !Select [0, !GetAZs ""]
      split: !Split [",", "a,b"]
      if: !If [C, !Base64 x, !Ref AWS::NoValue]
      conds: [!Equals [a, b], !Not [!Condition C], !And [!Condition C, !Condition D], !Or [!Condition C, !Condition D]]
      map: !FindInMap [M, k1, k2]
      import: !ImportValue exported
      cidr: !Cidr ["10.0.0.0/16", 4, 8]
      base64Map: !Base64 { "Fn::Sub": x }
`);
    expect(parsed.Resources.R!.Properties).toEqual({
      ref: { Ref: "P" },
      attDot: { "Fn::GetAtt": ["Res", "Attr.Nested"] },
      attList: { "Fn::GetAtt": ["Res", "Attr"] },
      sub: { "Fn::Sub": "${AWS::Region}-${P}" },
      subList: { "Fn::Sub": ["${A}", { A: { Ref: "P" } }] },
      join: { "Fn::Join": ["", ["a", "b"]] },
      select: { "Fn::Select": [0, { "Fn::GetAZs": "" }] },
      split: { "Fn::Split": [",", "a,b"] },
      if: { "Fn::If": ["C", { "Fn::Base64": "x" }, { Ref: "AWS::NoValue" }] },
      conds: [
        { "Fn::Equals": ["a", "b"] },
        { "Fn::Not": [{ Condition: "C" }] },
        { "Fn::And": [{ Condition: "C" }, { Condition: "D" }] },
        { "Fn::Or": [{ Condition: "C" }, { Condition: "D" }] },
      ],
      map: { "Fn::FindInMap": ["M", "k1", "k2"] },
      import: { "Fn::ImportValue": "exported" },
      cidr: { "Fn::Cidr": ["10.0.0.0/16", 4, 8] },
      base64Map: { "Fn::Base64": { "Fn::Sub": "x" } },
    });
  });

  it("rejects unknown tags and duplicate keys", () => {
    expect(() => parseCfnYaml("a: !NotAFunction x\n")).toThrow(/NotAFunction/);
    expect(() => parseCfnYaml("a: 1\na: 2\n")).toThrow(/unique|duplicate/i);
  });
});

/** Ref/GetAtt/Sub/DependsOn/FindInMap targets that do not exist; Conditions and Rules may name parameters only. */
function referenceProblems(template: CfnTemplate): string[] {
  const parameters = Object.keys(template.Parameters ?? {});
  const resources = Object.keys(template.Resources);
  return templateReferences(template).flatMap((r) => {
    const at = `${r.path}: ${r.kind} ${r.target}${r.attribute ? "." + r.attribute : ""}`;
    const isParameter = parameters.includes(r.target) || PSEUDO_PARAMETERS.has(r.target);
    const isResource = resources.includes(r.target);
    switch (r.kind) {
      case "Condition":
        return [];
      case "DependsOn":
        return isResource ? [] : [at];
      case "FindInMap": {
        const map = template.Mappings?.[r.target];
        if (!map) return [at];
        return r.keys && map[r.keys[0]]?.[r.keys[1]] === undefined ? [`${at}: no key ${r.keys.join(".")}`] : [];
      }
      default:
        if (r.section === "Conditions" || r.section === "Rules") return isParameter && !r.attribute ? [] : [at];
        if (r.attribute !== undefined) return isResource ? [] : [at];
        return isParameter || isResource ? [] : [at];
    }
  });
}

/** Parameters without a Description or never used (outside Rules); Outputs without a Description. */
function documentationProblems(template: CfnTemplate): string[] {
  const used = new Set(
    templateReferences(template)
      .filter((r) => r.section !== "Rules" && r.attribute === undefined)
      .map((r) => r.target),
  );
  const documented = (spec: CfnObject) => typeof spec.Description === "string" && spec.Description.trim().length > 10;
  return [
    ...Object.entries(template.Parameters ?? {}).flatMap(([name, spec]) => [
      ...(documented(spec) ? [] : [`Parameters.${name}: no Description`]),
      ...(used.has(name) ? [] : [`Parameters.${name}: never used`]),
    ]),
    ...Object.entries(template.Outputs ?? {}).flatMap(([name, output]) => [
      ...(documented(output) ? [] : [`Outputs.${name}: no Description`]),
      ...(output.Value === undefined ? [`Outputs.${name}: no Value`] : []),
    ]),
  ];
}

/** Conditions used but not defined, and defined but never used. */
function conditionProblems(template: CfnTemplate): string[] {
  const defined = Object.keys(template.Conditions ?? {});
  const used = templateReferences(template).filter((r) => r.kind === "Condition");
  const usedNames = new Set(used.map((r) => r.target));
  return [
    ...used.filter((r) => !defined.includes(r.target)).map((r) => `${r.path}: no condition ${r.target}`),
    ...defined.filter((c) => !usedNames.has(c)).map((c) => `Conditions.${c}: never used`),
  ];
}

describe("structure checks", () => {
  it("find what they look for (a checker that finds nothing proves nothing)", () => {
    const broken = parseCfnYaml(`
Parameters:
  Used: { Type: String, Description: documented and used }
  Unused: { Type: String, Description: "documented but never used" }
  Undocumented: { Type: String }
Conditions:
  C: !Equals [!Ref Used, x]
  Orphan: !Equals [!Ref Used, y]
  FromResource: !Equals [!Ref Q, x]
Resources:
  Q:
    Type: AWS::SQS::Queue
    Condition: Missing
    DependsOn: Ghost
    Properties:
      QueueName: !Sub "\${Used}-\${Nope}-\${Q.Arn}-\${Gone.Arn}-\${!Literal}"
      DelaySeconds: !If [C, !FindInMap [M, a, b], !Ref Undocumented]
      VisibilityTimeout: !GetAtt Nothing.Arn
Outputs:
  O: { Value: !Ref Q }
`);
    expect(referenceProblems(broken)).toEqual([
      "Conditions.FromResource.Fn::Equals[0]: Ref Q",
      "Resources.Q: DependsOn Ghost",
      "Resources.Q.Properties.QueueName: Sub Nope",
      "Resources.Q.Properties.QueueName: Sub Gone.Arn",
      "Resources.Q.Properties.DelaySeconds.Fn::If[1]: FindInMap M",
      "Resources.Q.Properties.VisibilityTimeout: GetAtt Nothing.Arn",
    ]);
    expect(documentationProblems(broken)).toEqual([
      "Parameters.Unused: never used",
      "Parameters.Undocumented: no Description",
      "Outputs.O: no Description",
    ]);
    expect(conditionProblems(broken)).toEqual([
      "Resources.Q: no condition Missing",
      "Conditions.Orphan: never used",
      "Conditions.FromResource: never used",
    ]);
  });
});

describe.each(templates)("%s: structure", (_name, template, parameters) => {
  it("every Ref, GetAtt and Sub target exists (Conditions and Rules name parameters only); DependsOn and FindInMap too", () => {
    expect(referenceProblems(template)).toEqual([]);
  });

  it("every Parameter is documented and used, every Output documented", () => {
    expect(documentationProblems(template)).toEqual([]);
  });

  it("every condition used exists, and every condition defined is used", () => {
    expect(conditionProblems(template)).toEqual([]);
  });

  it("resource types, properties and GetAtt attributes are valid per @aws-cdk/aws-service-spec", () => {
    expect(checkAgainstSpec(template)).toEqual([]);
  });

  it("every Parameter's Default satisfies its own constraints (the template deploys with defaults)", () => {
    expect(() => evaluateTemplate(template, { parameters })).not.toThrow();
  });
});

describe("spec checker", () => {
  it("catches a misspelt property, a wrong nested shape, a missing required property and a bad attribute", () => {
    const broken = parseCfnYaml(`
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: nodejs24.x
      Handlr: index.handler
      Code: { S3Bucket: b, S3Keyy: k }
      MemorySize: lots
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !If [C, 60, many]
  Nope:
    Type: AWS::Nothing::Here
Outputs:
  O:
    Value: !GetAtt Fn.NoSuchAttribute
`);
    const problems = checkAgainstSpec(broken).join("\n");
    expect(problems).toMatch(/Fn\.Properties\.Handlr: AWS::Lambda::Function has no property Handlr/);
    expect(problems).toMatch(/Code\.S3Keyy: Code has no property S3Keyy/);
    expect(problems).toMatch(/MemorySize: expected a integer/);
    expect(problems).toMatch(/AWS::Lambda::Function requires Role/);
    expect(problems).toMatch(/VisibilityTimeout: expected a integer, got "many"/);
    expect(problems).toMatch(/unknown resource type AWS::Nothing::Here/);
    expect(problems).toMatch(/has no attribute NoSuchAttribute/);
  });

  it("catches a deletion or replacement policy CloudFormation would refuse", () => {
    const broken = parseCfnYaml(`
Resources:
  Misspelt: { Type: AWS::SQS::Queue, DeletionPolicy: Retian }
  OnlyOnDelete: { Type: AWS::SQS::Queue, DeletionPolicy: Retain, UpdateReplacePolicy: RetainExceptOnCreate }
  NoSnapshots: { Type: AWS::S3::Bucket, DeletionPolicy: Snapshot }
  Fine: { Type: AWS::S3::Bucket, DeletionPolicy: RetainExceptOnCreate, UpdateReplacePolicy: Retain }
  Db: { Type: AWS::RDS::DBCluster, Properties: { Engine: aurora-postgresql }, DeletionPolicy: Snapshot }
`);
    expect(checkAgainstSpec(broken).filter((p) => /Policy/.test(p))).toEqual([
      'Resources.Misspelt.DeletionPolicy: "Retian" is not one of Delete, Retain, RetainExceptOnCreate, Snapshot',
      'Resources.OnlyOnDelete.UpdateReplacePolicy: "RetainExceptOnCreate" is not one of Delete, Retain, Snapshot',
      "Resources.NoSnapshots.DeletionPolicy: AWS::S3::Bucket cannot take a Snapshot",
    ]);
  });
});

// ------------------------------------------------------------------------------------------------ bridge.yaml

function fn(resolved: ResolvedTemplate): CfnObject {
  return resolved.resources.Function!.Properties;
}

describe("bridge.yaml: the function", () => {
  const raw = bridge.Resources.Function!.Properties!;

  it("runs nodejs24.x, index.handler, arm64 by default, code from DeployBucket + CodeKey", () => {
    expect(raw.Runtime).toBe("nodejs24.x");
    expect(raw.Handler).toBe("index.handler");
    expect(raw.Architectures).toEqual([{ Ref: "Architecture" }]);
    expect(bridge.Parameters!.Architecture).toMatchObject({ Default: "arm64", AllowedValues: ["arm64", "x86_64"] });
    expect(raw.MemorySize).toEqual({ Ref: "MemorySize" });
    expect(raw.Timeout).toEqual({ Ref: "FunctionTimeout" });
    const resolved = fn(evalBridge({ DeployBucket: "deploys", CodeKey: "lambda/abc.zip" }));
    expect(resolved.Code).toEqual({ S3Bucket: "deploys", S3Key: "lambda/abc.zip" });
    expect(resolved.Architectures).toEqual(["arm64"]);
  });

  it("deploys the very object version publish checked when given one (CodeObjectVersion), else the key's latest", () => {
    // A writer of the deploy bucket can put new bytes under a content-addressed key after publish checked it; in a
    // versioned bucket the version id publish reports still names the bytes it checked.
    const pinned = fn(evalBridge({ DeployBucket: "deploys", CodeKey: "lambda/abc.zip", CodeObjectVersion: "v3.Lx" }));
    expect(pinned.Code).toEqual({ S3Bucket: "deploys", S3Key: "lambda/abc.zip", S3ObjectVersion: "v3.Lx" });
    expect(bridge.Parameters!.CodeObjectVersion).toMatchObject({ Type: "String", Default: "" });
  });

  it("sets exactly the environment names of lambda/env.ts, and the runtime's NODE_OPTIONS", () => {
    const variables = (raw.Environment as CfnObject).Variables as CfnObject;
    expect(Object.keys(variables).sort()).toEqual([...Object.values(ENV), "NODE_OPTIONS"].sort());
    const resolved = (fn(evalBridge()).Environment as CfnObject).Variables as Record<string, string>;
    for (const name of REQUIRED_ENV) expect([name, resolved[name]]).toEqual([name, expect.stringMatching(/\S/)]);
    expect(resolved[ENV.allowFileCredentials]).toBe("false");
  });

  it("points BRIDGE_CONFIG at the bucket's config key, or at the SSM parameter, as the config loader reads them", () => {
    const location = (r: ResolvedTemplate) =>
      String(((fn(r).Environment as CfnObject).Variables as CfnObject)[ENV.config]);
    const s3 = evalBridge();
    expect(parseConfigLocation(location(s3))).toEqual({
      kind: "s3",
      bucket: s3.resources.Bucket!.ref,
      key: "_bridge/config.yaml",
    });
    // Even a name that looks like a file (".yaml") stays an SSM parameter: the template uses the explicit ssm: form.
    const ssm = evalBridge({ ConfigParameterName: "/bridge/config.yaml" });
    expect(parseConfigLocation(location(ssm))).toEqual({ kind: "ssm", name: "/bridge/config.yaml" });
    expect(ssm.outputs.ConfigLocation).toBe(location(ssm));
  });

  it("names the event bus for per-file events only when EventBusName is given", () => {
    const variables = (r: ResolvedTemplate) => (fn(r).Environment as CfnObject).Variables as Record<string, string>;
    // Empty means "no bus" to lambda/env.ts, as if the variable were not set.
    expect(readEnv({ ...variables(evalBridge()) }).eventBus).toBeUndefined();
    expect(variables(evalBridge({ EventBusName: "partner-files" }))[ENV.eventBus]).toBe("partner-files");
    expect(() => evalBridge({ EventBusName: "arn:aws:events:eu-west-1:123456789012:event-bus/x" })).toThrow(
      /AllowedPattern/,
    );
  });

  it("applies the source map the package ships to stack traces", () => {
    // scripts/package.ts links index.js.map and ships it in the zip; Node reads it only when asked to.
    expect(esbuildOptions().sourcemap).toBe("linked");
    const variables = (fn(evalBridge()).Environment as CfnObject).Variables as Record<string, string>;
    expect(variables.NODE_OPTIONS!.split(/\s+/)).toContain("--enable-source-maps");
  });

  it("joins a VPC only when subnets are given", () => {
    expect(fn(evalBridge()).VpcConfig).toBeUndefined();
    const vpc = evalBridge({ SubnetIds: "subnet-1,subnet-2", SecurityGroupIds: "sg-1" });
    expect(fn(vpc).VpcConfig).toEqual({ SubnetIds: ["subnet-1", "subnet-2"], SecurityGroupIds: ["sg-1"] });
    expect(() => evalBridge({ SubnetIds: "subnet-1" })).toThrow(/SecurityGroupIds is required/);
  });

  it("logs to its own log group with retention, in the Text format the timeout filter expects", () => {
    const resolved = evalBridge({ LogRetentionDays: "30" });
    expect(fn(resolved).LoggingConfig).toEqual({ LogGroup: resolved.resources.LogGroup!.ref, LogFormat: "Text" });
    expect(resolved.resources.LogGroup!.Properties.RetentionInDays).toBe("30");
  });
});

describe("bridge.yaml: roles", () => {
  const roles = Object.entries(bridge.Resources).filter(([, res]) => res.Type === "AWS::IAM::Role");

  it("gives every role it creates a permissions boundary, the deploy roles' one by default", () => {
    expect(roles.map(([id]) => id).sort()).toEqual(["FunctionRole", "SchedulerRole"]);
    for (const environment of ["pr", "staging", "production"]) {
      const r = evalBridge({
        Environment: environment,
        PullStreams1: "psp",
        AlarmTopicArn: `arn:aws:sns:${TEST_REGION}:${TEST_ACCOUNT}:on-call`,
      });
      const boundary = evalDeployRoles({ Environment: environment }).resources.BoundaryPolicy!.ref;
      expect(boundary).toBe(`arn:aws:iam::${TEST_ACCOUNT}:policy/s3-sftp-bridge-${environment}-boundary`);
      for (const [id] of roles) expect([id, r.resources[id]!.Properties.PermissionsBoundary]).toEqual([id, boundary]);
    }
  });

  it("takes another boundary by ARN, never none", () => {
    const own = `arn:aws:iam::${TEST_ACCOUNT}:policy/org/workload-boundary`;
    const r = evalBridge({ PermissionsBoundaryArn: own, PullStreams1: "psp" });
    for (const [id] of roles) expect(r.resources[id]!.Properties.PermissionsBoundary).toBe(own);
    for (const bad of ["workload-boundary", `arn:aws:iam::${TEST_ACCOUNT}:role/admin`, "arn:aws:iam::aws:policy/x y"]) {
      expect(() => evalBridge({ PermissionsBoundaryArn: bad })).toThrow(/PermissionsBoundaryArn.*AllowedPattern/);
    }
  });
});

describe("bridge.yaml: bucket, queue and event source", () => {
  const resolved = evalBridge({ PushPrefixes: "psp/outbound/,acme/out/" });
  const bucket = resolved.resources.Bucket!;

  it("encrypts (SSE-S3 by default, the KMS key when given), versions, and blocks public access", () => {
    const props = bucket.Properties;
    expect(props.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
    });
    expect(props.VersioningConfiguration).toEqual({ Status: "Enabled" });
    expect(props.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    const key = `arn:aws:kms:${TEST_REGION}:${TEST_ACCOUNT}:key/0000-1111`;
    const kms = evalBridge({ BucketKmsKeyArn: key }).resources.Bucket!.Properties;
    expect(kms.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [
        { ServerSideEncryptionByDefault: { SSEAlgorithm: "aws:kms", KMSMasterKeyID: key }, BucketKeyEnabled: true },
      ],
    });
  });

  it("keeps the bucket when the stack is deleted or the bucket replaced, but not after a failed first create", () => {
    // Retained on delete and replacement: it holds the partners' files and receipts. A stack whose creation rolls
    // back has moved nothing yet, so its empty bucket goes with it instead of piling up.
    expect(bridge.Resources.Bucket).toMatchObject({
      DeletionPolicy: "RetainExceptOnCreate",
      UpdateReplacePolicy: "Retain",
    });
  });

  it("expires receipts after ReceiptsRetentionDays, and keeps them by default (0)", () => {
    const rules = (r: ResolvedTemplate) =>
      ((r.resources.Bucket!.Properties.LifecycleConfiguration as CfnObject).Rules as CfnObject[]).filter(
        (rule) => rule.Id === "expire-receipts",
      );
    expect(rules(evalBridge())).toEqual([]);
    expect(rules(evalBridge({ ReceiptsRetentionDays: "400" }))).toEqual([
      { Id: "expire-receipts", Status: "Enabled", Prefix: "_bridge/receipts/", ExpirationInDays: "400" },
    ]);
    const moved = rules(evalBridge({ ReceiptsRetentionDays: "400", ReceiptsPrefix: "audit/receipts/" }));
    expect(moved[0]!.Prefix).toBe("audit/receipts/");
    // A receipt is also the duplicate check of its object version: it must outlive every S3 event that can still be
    // delivered or redriven, i.e. the dead-letter queue's 14 days.
    expect(bridge.Resources.DeadLetterQueue!.Properties!.MessageRetentionPeriod).toBe(14 * 24 * 3600);
    for (const days of ["1", "7", "14"]) {
      expect(() => evalBridge({ ReceiptsRetentionDays: days })).toThrow(/ReceiptsRetentionDays/);
    }
    expect(() => evalBridge({ ReceiptsRetentionDays: "15" })).not.toThrow();
    expect(() => evalBridge({ ReceiptsRetentionDays: "-1" })).toThrow(/MinValue/);
  });

  it("has a TLS-only bucket policy", () => {
    const statements = (resolved.resources.BucketPolicy!.Properties.PolicyDocument as CfnObject)
      .Statement as CfnObject[];
    expect(statements).toContainEqual(
      expect.objectContaining({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
    );
  });

  it("names the bucket uniquely per stack, or as given; the queue policy names the same bucket", () => {
    expect(bucket.ref).toMatch(/^s3-sftp-bridge-[0-9a-f-]{36}$/);
    const named = evalBridge({ BucketName: "my-bridge" });
    expect(named.resources.Bucket!.ref).toBe("my-bridge");
    for (const r of [resolved, named]) {
      const statements = (r.resources.QueuePolicy!.Properties.PolicyDocument as CfnObject).Statement as CfnObject[];
      expect(statements[0]!.Condition).toMatchObject({
        ArnEquals: { "aws:SourceArn": r.resources.Bucket!.attributes.Arn },
        StringEquals: { "aws:SourceAccount": TEST_ACCOUNT },
      });
    }
  });

  it("notifies the queue for exactly the push prefixes, one filter per prefix, up to 10", () => {
    const filters = (list: string) => {
      const r = evalBridge({ PushPrefixes: list });
      const notifications = r.resources.Bucket!.Properties.NotificationConfiguration as CfnObject;
      return (notifications.QueueConfigurations as CfnObject[]).map((q) => {
        expect(q.Queue).toBe(r.resources.Queue!.attributes.Arn);
        expect(q.Event).toBe("s3:ObjectCreated:*");
        return ((q.Filter as CfnObject).S3Key as { Rules: { Name: string; Value: string }[] }).Rules;
      });
    };
    expect(filters("")).toEqual([]);
    expect(filters("psp/outbound/,acme/out/")).toEqual([
      [{ Name: "prefix", Value: "psp/outbound/" }],
      [{ Name: "prefix", Value: "acme/out/" }],
    ]);
    const ten = Array.from({ length: 10 }, (_, i) => `s${i}/out/`);
    expect(filters(ten.join(",")).map((rules) => rules[0]!.Value)).toEqual(ten);
    for (const bad of [[...ten, "s10/out/"].join(","), "a/,,b/", "*", "/abs/", "a/ b/"]) {
      expect(() => evalBridge({ PushPrefixes: bad })).toThrow(/AllowedPattern/);
    }
  });

  it("sets the queue's visibility timeout to at least 6x the function timeout, for every allowed timeout", () => {
    for (const timeout of bridge.Parameters!.FunctionTimeout!.AllowedValues as number[]) {
      const r = evalBridge({ FunctionTimeout: String(timeout) });
      expect(Number(r.resources.Queue!.Properties.VisibilityTimeout)).toBeGreaterThanOrEqual(6 * Number(fn(r).Timeout));
    }
  });

  it("sends a message to the dead-letter queue after MaxReceiveCount deliveries", () => {
    const r = evalBridge({ MaxReceiveCount: "3" });
    expect(r.resources.Queue!.Properties.RedrivePolicy).toEqual({
      deadLetterTargetArn: r.resources.DeadLetterQueue!.attributes.Arn,
      maxReceiveCount: "3",
    });
  });

  it("feeds the function from the queue with partial batch failures and a concurrency cap (min 2)", () => {
    const r = evalBridge({ MaximumConcurrency: "4", BatchSize: "5" });
    expect(r.resources.QueueEventSource!.Properties).toMatchObject({
      EventSourceArn: r.resources.Queue!.attributes.Arn,
      FunctionName: r.resources.Function!.ref,
      BatchSize: "5",
      FunctionResponseTypes: ["ReportBatchItemFailures"],
      ScalingConfig: { MaximumConcurrency: "4" },
    });
    expect(bridge.Parameters!.MaximumConcurrency!.MinValue).toBeGreaterThanOrEqual(2);
    // Batches above 10 messages need a batching window (a Rules assertion, checked before anything is created).
    expect(() => evalBridge({ BatchSize: "100" })).toThrow(/BatchSize above 10 needs BatchingWindowSeconds/);
    expect(() => evalBridge({ BatchSize: "100", BatchingWindowSeconds: "5" })).not.toThrow();
    expect(() => evalBridge({ MaximumConcurrency: "1" })).toThrow(/MinValue/);
  });
});

describe("bridge.yaml: per-file events", () => {
  it("gives the function the bus and the example rule only when EventBusName is set", () => {
    const off = evalBridge();
    expect(off.resources.FileFailedEventsRule).toBeUndefined();
    expect(off.resources.FileFailedEventsLogGroup).toBeUndefined();
    const on = evalBridge({ EventBusName: "partner-files" });
    const vars = (on.resources.Function!.Properties.Environment as CfnObject).Variables as Record<string, string>;
    expect(vars[ENV.eventBus]).toBe("partner-files");
  });

  it("the example rule sends the function's File Failed events to a log group that lets EventBridge write", () => {
    const r = evalBridge({ EventBusName: "partner-files" });
    const rule = r.resources.FileFailedEventsRule!.Properties;
    expect(rule.EventBusName).toBe("partner-files");
    expect(rule.EventPattern).toEqual({ source: [EVENT_SOURCE], "detail-type": ["File Failed"] });
    const group = r.resources.FileFailedEventsLogGroup!;
    expect(rule.Targets).toEqual([{ Id: "file-failed-log", Arn: group.attributes.Arn }]);
    const policy = JSON.parse(String(r.resources.FileFailedEventsLogPolicy!.Properties.PolicyDocument)) as {
      Statement: { Principal: { Service: string[] }; Action: string[]; Resource: string }[];
    };
    expect(policy.Statement[0]).toMatchObject({
      Principal: { Service: expect.arrayContaining(["events.amazonaws.com"]) as string[] },
      Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
      Resource: group.attributes.Arn,
    });
  });
});

describe("bridge.yaml: pull schedules", () => {
  it("creates one schedule per non-empty group, whose input names the group's streams", () => {
    const r = evalBridge({
      PullStreams1: "psp-merchants,acme",
      PullSchedule1: "rate(5 minutes)",
      PullStreams3: "daily_x",
    });
    expect(Object.keys(r.resources).filter((id) => r.resources[id]!.Type === "AWS::Scheduler::Schedule")).toEqual([
      "PullSchedule1Schedule",
      "PullSchedule3Schedule",
    ]);
    const first = r.resources.PullSchedule1Schedule!.Properties;
    expect(first.ScheduleExpression).toBe("rate(5 minutes)");
    const target = first.Target as Record<string, string>;
    expect(JSON.parse(target.Input!)).toEqual({ streams: ["psp-merchants", "acme"] });
    expect(target.Arn).toBe(r.resources.Function!.attributes.Arn);
    expect(target.RoleArn).toBe(r.resources.SchedulerRole!.attributes.Arn);
    const third = r.resources.PullSchedule3Schedule!.Properties.Target as Record<string, string>;
    expect(JSON.parse(third.Input!)).toEqual({ streams: ["daily_x"] });
  });

  it("creates no schedule (and no scheduler role) without pull streams, and refuses names that would break the JSON", () => {
    const r = evalBridge();
    expect(Object.values(r.resources).filter((res) => res.Type === "AWS::Scheduler::Schedule")).toEqual([]);
    expect(r.resources.SchedulerRole).toBeUndefined();
    for (const bad of ['a"b', "a, b", "a,", "../x"]) {
      expect(() => evalBridge({ PullStreams2: bad })).toThrow(/AllowedPattern/);
    }
  });
});

describe("bridge.yaml: prefixes end at a folder", () => {
  // IAM grants <prefix>*: without the final "/", bridge-production would also open bridge-production-old/.
  it.each([
    ["SecretsPrefix", "bridge-production", "bridge-production/"],
    ["SsmParameterPath", "/bridge-production", "/bridge-production/"],
    ["CredentialsObjectPrefix", "_bridge/credentials", "_bridge/credentials/"],
    ["ReceiptsPrefix", "_bridge/receipts", "_bridge/receipts/"],
  ])("%s refuses %j and takes %j", (name, without, withSlash) => {
    expect(() => evalBridge({ [name]: without })).toThrow(new RegExp(`${name}.*AllowedPattern`));
    expect(() => evalBridge({ [name]: withSlash })).not.toThrow();
  });

  it("SecretsPrefix takes nested prefixes and refuses a leading slash or a wildcard", () => {
    expect(() => evalBridge({ SecretsPrefix: "bridge/production/" })).not.toThrow();
    for (const bad of ["/bridge/", "bridge*/", "/"]) {
      expect(() => evalBridge({ SecretsPrefix: bad })).toThrow(/AllowedPattern/);
    }
  });
});

describe("bridge.yaml: agrees with the stream config schema", () => {
  it("defaults the receipts prefix to the config's default", () => {
    expect(bridge.Parameters!.ReceiptsPrefix!.Default).toBe(configSchema.parse({ streams: {} }).receipts.prefix);
  });

  it("accepts exactly the config's stream names in PullStreams1..3", () => {
    const name = STREAM_NAME.source.replace(/^\^/, "").replace(/\$$/, "");
    for (const group of ["PullStreams1", "PullStreams2", "PullStreams3"]) {
      expect(bridge.Parameters![group]!.AllowedPattern).toBe(`^$|^${name}(,${name})*$`);
    }
  });
});

describe("bridge.yaml: metric filters and alarms", () => {
  const topic = `arn:aws:sns:${TEST_REGION}:${TEST_ACCOUNT}:bridge-alarms`;
  const r = evalBridge({ AlarmTopicArn: topic });
  const ofType = (type: string) => Object.entries(r.resources).filter(([, res]) => res.Type === type);
  const filters = ofType("AWS::Logs::MetricFilter").map(
    ([id, res]) => ({ ...res.Properties, id }) as CfnObject & { id: string },
  );
  const alarms = Object.fromEntries(ofType("AWS::CloudWatch::Alarm").map(([id, res]) => [id, res.Properties]));
  const logMetrics = new Set(
    filters.flatMap((f) => (f.MetricTransformations as CfnObject[]).map((m) => `${m.MetricNamespace}/${m.MetricName}`)),
  );

  it("puts every metric filter on the function's log group", () => {
    for (const f of filters) expect([f.id, f.LogGroupName]).toEqual([f.id, r.resources.LogGroup!.ref]);
  });

  it("counts files moved from the gilt line report.ts writes, in both directions and both log forms", () => {
    const line = (direction: "push" | "pull") =>
      giltLine({ stream: "s", direction, files: 3 } as StreamReport).replace("[s]: Moved 3 ", "");
    for (const [direction, metric] of [
      ["push", "FilesMovedS3ToSftp"],
      ["pull", "FilesMovedSftpToS3"],
    ] as const) {
      const feeding = filters.filter((f) => (f.MetricTransformations as CfnObject[])[0]!.MetricName === metric);
      const json = feeding.find((f) => String(f.FilterPattern).startsWith("{"))!;
      expect(json.FilterPattern).toContain(`$.message = "*${line(direction)}"`);
      expect((json.MetricTransformations as CfnObject[])[0]!.MetricValue).toBe("$.files");
      const text = feeding.find((f) => String(f.FilterPattern).startsWith("["))!;
      const words = line(direction).split(" ");
      expect(text.FilterPattern).toContain(`moved = Moved, count, unit = ${words[0]}, from = ${words[1]}`);
      expect(text.FilterPattern).toContain(`source = ${words[2]}, to = ${words[3]}, destination = ${words[4]}]`);
      expect((text.MetricTransformations as CfnObject[])[0]!.MetricValue).toBe("$count");
    }
  });

  it("alarms on errors, timeouts, connection timeouts, refused files, the dead-letter queue and a missing heartbeat", () => {
    const logAlarm = (id: string, metric: string) => {
      const alarm = alarms[id]!;
      expect([id, logMetrics.has(`${alarm.Namespace}/${alarm.MetricName}`)]).toEqual([id, true]);
      expect(alarm.MetricName).toBe(metric);
    };
    logAlarm("ErrorsAlarm", "ErrorLines");
    logAlarm("TimeoutsAlarm", "Timeouts");
    logAlarm("ConnectionTimeoutsAlarm", "ConnectionTimeouts");
    logAlarm("FilesRefusedAlarm", "FilesRefused");
    expect(filters.find((f) => f.id === "FilesRefusedFilter")!.FilterPattern).toBe(`"${PULL_REFUSED}"`);
    expect(filters.find((f) => f.id === "ErrorLinesFilter")!.FilterPattern).toBe('{ $.level = "ERROR" }');
    expect(filters.find((f) => f.id === "TimeoutsFilter")!.FilterPattern).toBe('"Task timed out"');
    expect(alarms.DeadLetterQueueAlarm).toMatchObject({
      Namespace: "AWS/SQS",
      MetricName: "ApproximateNumberOfMessagesVisible",
      Dimensions: [{ Name: "QueueName", Value: r.resources.DeadLetterQueue!.attributes.QueueName }],
      Threshold: 0,
      ComparisonOperator: "GreaterThanThreshold",
    });
    const heartbeat = alarms.HeartbeatAlarm!;
    // CloudWatch caps an alarm's evaluation range at 7 days for periods of an hour or more.
    expect(Number(bridge.Parameters!.HeartbeatHours!.MaxValue) * 3600).toBeLessThanOrEqual(7 * 24 * 3600);
    expect(heartbeat).toMatchObject({ TreatMissingData: "breaching", ComparisonOperator: "LessThanThreshold" });
    expect(heartbeat.EvaluationPeriods).toBe("24");
    for (const m of (heartbeat.Metrics as CfnObject[]).filter((x) => x.MetricStat)) {
      const metric = (m.MetricStat as CfnObject).Metric as CfnObject;
      expect(logMetrics.has(`${metric.Namespace}/${metric.MetricName}`)).toBe(true);
    }
  });

  it("notifies the SNS topic when one is given, and nobody otherwise; HeartbeatHours 0 drops the heartbeat", () => {
    for (const [id, alarm] of Object.entries(alarms)) expect([id, alarm.AlarmActions]).toEqual([id, [topic]]);
    const quiet = evalBridge({ HeartbeatHours: "0" });
    expect(quiet.resources.HeartbeatAlarm).toBeUndefined();
    for (const res of Object.values(quiet.resources).filter((x) => x.Type === "AWS::CloudWatch::Alarm")) {
      expect(res.Properties.AlarmActions).toBeUndefined();
    }
  });
});

describe("bridge.yaml: alarms reach someone in production", () => {
  const topic = `arn:aws:sns:${TEST_REGION}:${TEST_ACCOUNT}:on-call`;

  it("refuses a production stack without an alarm topic, before anything is created", () => {
    expect(() => evalBridge({ Environment: "production" })).toThrow(/production.*AlarmTopicArn/);
    const r = evalBridge({ Environment: "production", AlarmTopicArn: topic });
    expect(r.resources.ErrorsAlarm!.Properties.AlarmActions).toEqual([topic]);
    // Other environments may run quiet (a PR stack's alarms reach nobody on purpose).
    for (const environment of ["staging", "pr"]) expect(() => evalBridge({ Environment: environment })).not.toThrow();
  });

  it("takes production as the default, so a stack that does not say what it is gets production's rule", () => {
    expect(bridge.Parameters!.Environment).toMatchObject({
      Default: "production",
      AllowedValues: ["pr", "staging", "production"],
    });
    const { Environment: _given, ...withoutEnvironment } = BRIDGE_PARAMS as Record<string, string>;
    expect(() => evaluateTemplate(bridge, { parameters: withoutEnvironment })).toThrow(/AlarmTopicArn/);
  });
});

/** A metric a dashboard widget draws: a SEARCH over one schema, or one metric named in full. */
type DrawnMetric =
  | { kind: "search"; namespace: string; dimensions: string[]; name: string; filters: Record<string, string> }
  | { kind: "metric"; namespace: string; name: string; dimensions: Record<string, string> };

const SEARCH =
  /^SEARCH\('\{"([^"]+)",([^}]*)\} MetricName="([^"]+)"((?: [A-Za-z]+="[^"]*")*)', '([A-Za-z]+)', (\d+)\)$/;

function drawnMetrics(body: CfnObject): DrawnMetric[] {
  const out: DrawnMetric[] = [];
  for (const widget of body.widgets as CfnObject[]) {
    if (widget.type !== "metric") continue;
    for (const row of (widget.properties as CfnObject).metrics as CfnValue[][]) {
      const first = row[0];
      if (first !== null && typeof first === "object" && !Array.isArray(first)) {
        const expression = String(first.expression);
        const m = SEARCH.exec(expression);
        if (!m) throw new Error(`not a SEARCH the test reads: ${expression}`);
        const filters = Object.fromEntries([...m[4]!.matchAll(/ ([A-Za-z]+)="([^"]*)"/g)].map((f) => [f[1]!, f[2]!]));
        out.push({ kind: "search", namespace: m[1]!, dimensions: m[2]!.split(","), name: m[3]!, filters });
        continue;
      }
      const parts = row.filter((x) => typeof x === "string") as string[];
      const dimensions: Record<string, string> = {};
      for (let i = 2; i < parts.length; i += 2) dimensions[parts[i]!] = parts[i + 1]!;
      out.push({ kind: "metric", namespace: parts[0]!, name: parts[1]!, dimensions });
    }
  }
  return out;
}

/** Namespace and dimension set of the function's EMF lines, as Powertools writes them for the handler. */
function emfShape(namespace: string, service: string): { namespace: string; dimensions: string[] } {
  const metrics = new Metrics({ namespace, serviceName: service });
  metrics.addDimensions({ stream: "s", direction: "push" });
  metrics.addMetric("FilesMoved", MetricUnit.Count, 1);
  const emf = metrics.serializeMetrics()._aws.CloudWatchMetrics[0]!;
  return { namespace: emf.Namespace, dimensions: emf.Dimensions[0]! };
}

describe("bridge.yaml: the dashboard", () => {
  const variants: [string, Record<string, string>][] = [
    ["defaults", {}],
    [
      "own namespace and service, no heartbeat",
      { MetricsNamespace: "Acme/Bridge", ServiceName: "acme-bridge", HeartbeatHours: "0" },
    ],
  ];

  it.each(variants)("%s: its body is JSON once substituted, named after the stack", (_name, parameters) => {
    const r = evalBridge(parameters);
    const dashboard = r.resources.Dashboard!;
    expect(dashboard.Type).toBe("AWS::CloudWatch::Dashboard");
    expect(dashboard.ref).toBe(`${TEST_STACK}-${TEST_REGION}`);
    const body = JSON.parse(String(dashboard.Properties.DashboardBody)) as CfnObject;
    for (const widget of body.widgets as CfnObject[]) {
      if (widget.type === "metric") expect((widget.properties as CfnObject).region).toBe(TEST_REGION);
    }
  });

  it.each(variants)(
    "%s: every metric it draws exists, under the names and dimensions that publish it",
    (_name, parameters) => {
      const r = evalBridge(parameters);
      const namespace = String(r.parameters.MetricsNamespace);
      const emf = emfShape(namespace, String(r.parameters.ServiceName));
      const logMetrics = new Set(
        Object.values(r.resources)
          .filter((res) => res.Type === "AWS::Logs::MetricFilter")
          .flatMap((f) =>
            (f.Properties.MetricTransformations as CfnObject[]).map((m) => `${m.MetricNamespace}|${m.MetricName}`),
          ),
      );
      const queues = [r.resources.Queue!.attributes.QueueName, r.resources.DeadLetterQueue!.attributes.QueueName];
      const SQS_METRICS = [
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "NumberOfMessagesSent",
      ];
      const LAMBDA_METRICS = ["Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"];
      const drawn = drawnMetrics(JSON.parse(String(r.resources.Dashboard!.Properties.DashboardBody)) as CfnObject);
      const problems = drawn.flatMap((m): string[] => {
        const at = `${m.namespace} ${m.name} ${JSON.stringify(m.dimensions)}`;
        if (m.kind === "search") {
          const ok =
            m.namespace === emf.namespace &&
            JSON.stringify(m.dimensions) === JSON.stringify(emf.dimensions) &&
            (METRIC_NAMES as readonly string[]).includes(m.name) &&
            JSON.stringify(m.filters) === JSON.stringify({ service: r.parameters.ServiceName });
          return ok ? [] : [`SEARCH ${at} ${JSON.stringify(m.filters)}`];
        }
        if (m.namespace === "AWS/SQS") {
          const ok =
            SQS_METRICS.includes(m.name) &&
            Object.keys(m.dimensions).join() === "QueueName" &&
            queues.includes(m.dimensions.QueueName);
          return ok ? [] : [at];
        }
        if (m.namespace === "AWS/Lambda") {
          const ok =
            LAMBDA_METRICS.includes(m.name) &&
            JSON.stringify(m.dimensions) === JSON.stringify({ FunctionName: r.resources.Function!.ref });
          return ok ? [] : [at];
        }
        return logMetrics.has(`${m.namespace}|${m.name}`) && Object.keys(m.dimensions).length === 0 ? [] : [at];
      });
      expect(problems).toEqual([]);

      // What it is for: every EMF metric per stream and direction, every log-derived count, the function's errors,
      // the dead-letter queue's depth and the age of the queue's oldest message.
      const searched = drawn.filter((m) => m.kind === "search").map((m) => m.name);
      expect([...new Set(searched)].sort()).toEqual([...METRIC_NAMES].sort());
      const named = drawn
        .filter((m) => m.kind === "metric")
        .map((m) => `${m.namespace}|${m.name}|${Object.values(m.dimensions).join()}`);
      expect(named).toEqual(expect.arrayContaining([...logMetrics].map((x) => `${x}|`)));
      expect(named).toEqual(
        expect.arrayContaining([
          `AWS/SQS|ApproximateNumberOfMessagesVisible|${r.resources.DeadLetterQueue!.attributes.QueueName}`,
          `AWS/SQS|ApproximateAgeOfOldestMessage|${r.resources.Queue!.attributes.QueueName}`,
          `AWS/Lambda|Errors|${r.resources.Function!.ref}`,
        ]),
      );
    },
  );

  it.each(variants)("%s: shows the state of every alarm of the stack", (_name, parameters) => {
    const r = evalBridge(parameters);
    const body = JSON.parse(String(r.resources.Dashboard!.Properties.DashboardBody)) as CfnObject;
    const shown = (body.widgets as CfnObject[])
      .filter((w) => w.type === "alarm")
      .flatMap((w) => (w.properties as CfnObject).alarms as string[]);
    const alarms = Object.values(r.resources)
      .filter((res) => res.Type === "AWS::CloudWatch::Alarm")
      .map((a) => a.attributes.Arn);
    expect(alarms.length).toBeGreaterThan(5);
    expect(shown.sort()).toEqual(alarms.sort());
  });

  it("reads a SEARCH the way the checks above do (a reader that matches nothing proves nothing)", () => {
    const body = {
      widgets: [
        {
          type: "metric",
          properties: {
            metrics: [
              [
                {
                  expression: `SEARCH('{"NS",service,stream,direction} MetricName="FilesMoved" service="svc"', 'Sum', 300)`,
                },
              ],
              ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "q", { stat: "Maximum" }],
            ],
          },
        },
      ],
    };
    expect(drawnMetrics(body as unknown as CfnObject)).toEqual([
      {
        kind: "search",
        namespace: "NS",
        dimensions: ["service", "stream", "direction"],
        name: "FilesMoved",
        filters: { service: "svc" },
      },
      { kind: "metric", namespace: "AWS/SQS", name: "ApproximateAgeOfOldestMessage", dimensions: { QueueName: "q" } },
    ]);
    expect(() =>
      drawnMetrics({
        widgets: [{ type: "metric", properties: { metrics: [[{ expression: "SEARCH('x')" }]] } }],
      } as unknown as CfnObject),
    ).toThrow(/not a SEARCH/);
    expect(emfShape("NS", "svc")).toEqual({ namespace: "NS", dimensions: ["service", "stream", "direction"] });
  });
});

describe("bridge.yaml: parameters", () => {
  it("labels every parameter group with one string, as written (YAML splits an unquoted label at its commas)", () => {
    const groups = (bridge.Metadata!["AWS::CloudFormation::Interface"] as CfnObject).ParameterGroups as CfnObject[];
    const written = [
      ...readFileSync(BRIDGE_TEMPLATE_PATH, "utf8").matchAll(/^\s*- Label: \{ default: (.+) \}\s*$/gm),
    ].map((m) => m[1]!.replace(/^"(.*)"$/, "$1"));
    expect(written).toHaveLength(groups.length);
    expect(groups.map((g) => g.Label)).toEqual(written.map((label) => ({ default: label })));
    expect(written).toContain("Logs, metrics and alarms");
  });

  it("groups every parameter exactly once in the console interface", () => {
    const groups = ((bridge.Metadata!["AWS::CloudFormation::Interface"] as CfnObject).ParameterGroups as CfnObject[])
      .flatMap((g) => g.Parameters as string[])
      .sort();
    expect(groups).toEqual(Object.keys(bridge.Parameters!).sort());
  });

  it("outputs the bucket, function name and ARN, queue URLs and log group", () => {
    const outputs = evalBridge().outputs;
    expect(Object.keys(outputs)).toEqual(
      expect.arrayContaining([
        "BucketName",
        "FunctionName",
        "FunctionArn",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "LogGroupName",
      ]),
    );
    expect(outputs.QueueUrl).toMatch(/^https:\/\/sqs\./);
  });
});

// ------------------------------------------------------------------------------------------------ sftp-server.yaml

describe("sftp-server.yaml", () => {
  const r = evalSftpServer();
  const bucket = r.resources.Bucket!;

  it("runs an SFTP-only, service-managed Transfer Family server backed by S3, with a logging role", () => {
    expect(r.resources.Server!.Properties).toMatchObject({
      Domain: "S3",
      Protocols: ["SFTP"],
      IdentityProviderType: "SERVICE_MANAGED",
      LoggingRole: r.resources.LoggingRole!.attributes.Arn,
    });
  });

  it("encrypts the bucket at rest and blocks public access", () => {
    expect(bucket.Properties.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
    });
    expect(bucket.Properties.PublicAccessBlockConfiguration).toMatchObject({
      BlockPublicPolicy: true,
      RestrictPublicBuckets: true,
    });
  });

  it("chroots the test user to its home directory and gives it the SSH key", () => {
    const user = r.resources.User!.Properties;
    expect(user).toMatchObject({
      UserName: "bridge-smoke",
      HomeDirectoryType: "LOGICAL",
      HomeDirectoryMappings: [{ Entry: "/", Target: `/${bucket.ref}/home/bridge-smoke` }],
      SshPublicKeys: [SFTP_PARAMS.UserPublicKey],
    });
    expect(() => JSON.parse(String(user.Policy))).not.toThrow();
    expect(String(user.Policy).length).toBeLessThanOrEqual(2048);
  });

  it("outputs what the smoke test needs: endpoint, user name and home path", () => {
    const serverId = r.resources.Server!.attributes.ServerId;
    expect(r.outputs).toMatchObject({
      Endpoint: `${serverId}.server.transfer.${TEST_REGION}.amazonaws.com`,
      UserName: "bridge-smoke",
      HomePath: "/",
      HomeS3Uri: `s3://${bucket.ref}/home/bridge-smoke/`,
    });
  });

  it("refuses a malformed public key", () => {
    expect(() => evalSftpServer({ UserPublicKey: "not a key" })).toThrow(/AllowedPattern/);
  });
});
