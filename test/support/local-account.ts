// An AWS account on loopback for a dry run of the release and PR workflows: the local CloudFormation (evaluating
// templates/bridge.yaml for real) provisions the parts of the bridge stack that move data, from what the template
// resolves to, and runs them:
//   - AWS::S3::Bucket            a bucket in the local S3, with the template's queue notifications (event + prefix);
//   - AWS::SQS::Queue            a local queue (batching, visibility timeout, redrive count from the RedrivePolicy);
//   - AWS::Lambda::EventSourceMapping  the queue's batches go to the function it names;
//   - AWS::Lambda::Function      the zip at Code.S3Bucket/S3Key, read from the local S3 (a missing object fails the
//                                resource, as in AWS), run with the template's Environment (test/support/zip-function.ts).
// Everything else in the template (IAM, logs, alarms, schedules) is accepted and not run: IAM is proven by the
// template's policy simulation tests, not here. Secrets Manager, SSM and EventBridge are the local AWS endpoint.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { S3EventRecord, SQSEvent } from "aws-lambda";
import { LocalQueue } from "../../scripts/local/event-queue";
import { startInvokeEndpoint, type InvokeEndpoint } from "../../scripts/local/invoke-endpoint";
import { decodeS3EventKey } from "../../lambda/bridge";
import { startLocalS3, type LocalS3 } from "../../scripts/local/s3-server";
import { startLocalAws, type LocalAws } from "./local-aws";
import { startLocalCloudFormation, type LocalCloudFormation } from "./local-cloudformation";
import type { CfnObject, CfnValue } from "./cfn-yaml";
import { ZipFunction } from "./zip-function";

export interface LocalAccount {
  s3: LocalS3;
  aws: LocalAws;
  cfn: LocalCloudFormation;
  /** Functions by name, as deployed. */
  functions: Map<string, ZipFunction>;
  region: string;
  /** Endpoints of every service, for any client on this machine (no credentials: see `credentials`). */
  endpoints(): Record<string, string>;
  /** What an OIDC role assumption would hand a job. */
  credentials(): Record<string, string>;
  close(): Promise<void>;
}

interface QueueNotification {
  queueArn: string;
  events: string[];
  prefix: string;
}

export interface LocalAccountOptions {
  dir: string;
  /** Created at start: the deploy bucket publish writes to. */
  buckets?: string[];
  /** Until a failed SQS message comes back (AWS: the queue's visibility timeout). Short keeps retries in a test. */
  visibilityTimeoutMs?: number;
}

export async function startLocalAccount(options: LocalAccountOptions): Promise<LocalAccount> {
  const closers: (() => Promise<void>)[] = [];
  const s3 = await startLocalS3({ directory: path.join(options.dir, "s3"), buckets: options.buckets ?? [] });
  closers.push(() => s3.close());
  const client: S3Client = s3.client();
  closers.push(async () => client.destroy());
  const aws = await startLocalAws();
  closers.push(() => aws.close());

  const functions = new Map<string, ZipFunction>();
  const queues = new Map<string, LocalQueue>();
  const mappings = new Map<string, string>(); // queue ARN -> function name
  const notifications = new Map<string, QueueNotification[]>(); // bucket -> queue configurations

  const endpoints = (): Record<string, string> => ({
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ENDPOINT_URL_LAMBDA: invoke.url,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: aws.endpoint,
    AWS_ENDPOINT_URL_SSM: aws.endpoint,
    AWS_ENDPOINT_URL_EVENTBRIDGE: aws.endpoint,
    // s3rver stores streamed bodies with the SDK's checksum framing inside them otherwise (docs/field-notes.md).
    AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED",
    AWS_RESPONSE_CHECKSUM_VALIDATION: "WHEN_REQUIRED",
    AWS_EC2_METADATA_DISABLED: "true",
  });
  const credentials = () => ({
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
  });

  const unsubscribe = s3.onEvent((record: S3EventRecord) => {
    const key = decodeS3EventKey(record.s3.object.key);
    const eventName = `s3:${record.eventName}`;
    for (const n of notifications.get(record.s3.bucket.name) ?? []) {
      if (!key.startsWith(n.prefix) || !n.events.some((e) => matchesEvent(e, eventName))) continue;
      queues.get(n.queueArn)?.send(JSON.stringify({ Records: [record] }));
    }
  });
  closers.push(async () => unsubscribe());

  const deliver = async (queueArn: string, event: SQSEvent): Promise<string[] | "all"> => {
    const fn = functions.get(mappings.get(queueArn) ?? "");
    if (!fn) return "all"; // no mapping yet: messages wait in the queue, as in AWS
    const invocation = await fn.invoke(event);
    if (invocation.error) return "all";
    const answer = invocation.result as { batchItemFailures?: { itemIdentifier: string }[] } | undefined;
    return (answer?.batchItemFailures ?? []).map((f) => f.itemIdentifier);
  };

  const cfn = await startLocalCloudFormation({
    evaluate: true,
    provision: {
      "AWS::S3::Bucket": async ({ resolved }) => {
        const name = resolved!.ref;
        await s3.createBucket(name);
        const configs = (resolved!.Properties.NotificationConfiguration as CfnObject | undefined)
          ?.QueueConfigurations as CfnObject[] | undefined;
        notifications.set(
          name,
          (configs ?? []).map((c) => ({
            queueArn: String(c.Queue),
            events: [String(c.Event)],
            prefix: prefixRule(c),
          })),
        );
        return name;
      },
      "AWS::SQS::Queue": ({ resolved }) => {
        const arn = resolved!.attributes.Arn!;
        const redrive = resolved!.Properties.RedrivePolicy as CfnObject | undefined;
        queues.set(
          arn,
          new LocalQueue({
            queueArn: arn,
            visibilityTimeoutMs: options.visibilityTimeoutMs ?? 2_000,
            maxReceiveCount: redrive ? Number(redrive.maxReceiveCount) : Number.MAX_SAFE_INTEGER,
            deliver: (event) => deliver(arn, event),
          }),
        );
        return resolved!.ref;
      },
      "AWS::Lambda::EventSourceMapping": ({ resolved }) => {
        mappings.set(String(resolved!.Properties.EventSourceArn), String(resolved!.Properties.FunctionName));
        return resolved!.ref;
      },
      "AWS::Lambda::Function": async ({ resolved }) => {
        const p = resolved!.Properties;
        const code = p.Code as CfnObject;
        const zip = await client
          .send(
            new GetObjectCommand({
              Bucket: String(code.S3Bucket),
              Key: String(code.S3Key),
              VersionId: code.S3ObjectVersion === undefined ? undefined : String(code.S3ObjectVersion),
            }),
          )
          .then(async (o) => Buffer.from(await o.Body!.transformToByteArray()))
          .catch((err: Error) => {
            throw new Error(
              `Error occurred while GetObject. S3 Error Code: ${err.name}. S3 Error Message: ${err.message}`,
            );
          });
        const name = resolved!.ref;
        const dir = path.join(options.dir, "functions", name);
        mkdirSync(dir, { recursive: true });
        const variables = ((p.Environment as CfnObject | undefined)?.Variables ?? {}) as Record<string, CfnValue>;
        const fn = await ZipFunction.deploy({
          name,
          zip,
          dir,
          handler: String(p.Handler),
          env: {
            ...Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(v)])),
            ...endpoints(),
            ...credentials(),
          },
          timeoutSeconds: Number(p.Timeout ?? 3),
          memoryMb: Number(p.MemorySize ?? 128),
          region: cfn.region,
          accountId: cfn.accountId,
        });
        functions.set(name, fn);
        return name;
      },
    },
  });
  closers.push(() => cfn.close());
  const invoke: InvokeEndpoint = await startInvokeEndpoint({
    functions: (name) => functions.get(name),
    arnPrefix: `arn:aws:lambda:${cfn.region}:${cfn.accountId}:function:`,
  });
  closers.push(() => invoke.close());
  closers.push(async () => {
    for (const q of queues.values()) await q.close();
    for (const f of functions.values()) await f.close();
  });

  return {
    s3,
    aws,
    cfn,
    functions,
    region: cfn.region,
    endpoints,
    credentials,
    close: async () => {
      for (const close of closers.reverse()) await close().catch(() => undefined);
    },
  };
}

/** The value of a notification's `prefix` filter rule; "" (every key) without one. */
function prefixRule(config: CfnObject): string {
  const rules = ((config.Filter as CfnObject | undefined)?.S3Key as CfnObject | undefined)?.Rules;
  const prefix = Array.isArray(rules) ? (rules as CfnObject[]).find((r) => r.Name === "prefix") : undefined;
  return prefix ? String(prefix.Value) : "";
}

/** `s3:ObjectCreated:*` covers every ObjectCreated event, as S3 matches notification event types. */
function matchesEvent(configured: string, eventName: string): boolean {
  return configured.endsWith(":*") ? eventName.startsWith(configured.slice(0, -1)) : configured === eventName;
}
