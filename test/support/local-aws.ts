// A tiny Secrets Manager + SSM + EventBridge endpoint on loopback speaking the real AWS JSON 1.1 wire protocol, so
// tests run the real SDK clients (serialisation, signing, error parsing, retries) instead of mocking them. Only what
// the bridge calls is implemented: secretsmanager.GetSecretValue, AmazonSSM.GetParameter and AWSEvents.PutEvents,
// with the error shapes and limits AWS has.
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SSMClient } from "@aws-sdk/client-ssm";

const REGION = "us-east-1";
const ACCOUNT = "123456789012";
const CREDENTIALS = { accessKeyId: "AKIDLOCALTEST", secretAccessKey: "local-test-secret-key" };

export interface StoredParameter {
  value: string;
  type?: "String" | "StringList" | "SecureString";
}

export interface AwsCall {
  target: string;
  body: Record<string, unknown>;
}

export interface PutEvent {
  bus: string;
  source: string;
  detailType: string;
  detail: unknown;
}

export interface LocalAws {
  endpoint: string;
  region: string;
  /** Secret name -> SecretString (string) or SecretBinary (bytes). */
  secrets: Map<string, string | Uint8Array>;
  parameters: Map<string, StoredParameter>;
  /** Events accepted by PutEvents, in order. */
  events: PutEvent[];
  /**
   * PutEvents faults: `refuseEntries` entries are answered as failed (FailedEntryCount, as a throttled bus does) before
   * entries are accepted again; `failCalls` whole calls get HTTP 500.
   */
  eventFaults: { refuseEntries: number; failCalls: number };
  /** Every request received, in order (target and parsed body), for asserting what was called and how. */
  calls: AwsCall[];
  callsTo(target: string): AwsCall[];
  /** New clients pointed at this endpoint; the caller owns them (destroy() when done). */
  secretsManager(): SecretsManagerClient;
  ssm(): SSMClient;
  eventBridge(): EventBridgeClient;
  close(): Promise<void>;
}

class AwsFault extends Error {
  constructor(
    readonly type: string,
    message: string | undefined,
    readonly status = 400,
  ) {
    super(message ?? type);
  }
  /** Secrets Manager puts `Message`, SSM often only `__type`; both are what the SDK's JSON 1.1 error parser reads. */
  body(messageField: "Message" | "message" | undefined): Record<string, string> {
    return messageField ? { __type: this.type, [messageField]: this.message } : { __type: this.type };
  }
}

function requireString(body: Record<string, unknown>, field: string): string {
  const v = body[field];
  if (typeof v !== "string" || v === "") {
    throw new AwsFault(
      "ValidationException",
      `1 validation error detected: Value null at '${field}' failed to satisfy constraint: Member must not be null`,
    );
  }
  return v;
}

function getSecretValue(store: LocalAws["secrets"], body: Record<string, unknown>): object {
  const id = requireString(body, "SecretId");
  const arnPrefix = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:`;
  const name = id.startsWith(arnPrefix) ? id.slice(arnPrefix.length).replace(/-[A-Za-z0-9]{6}$/, "") : id;
  const value = store.get(name);
  if (value === undefined)
    throw new AwsFault("ResourceNotFoundException", "Secrets Manager can't find the specified secret.");
  const common = {
    ARN: `${arnPrefix}${name}-AbCdEf`,
    Name: name,
    VersionId: "00000000-0000-0000-0000-000000000001",
    VersionStages: ["AWSCURRENT"],
    CreatedDate: 1_795_000_000,
  };
  return typeof value === "string"
    ? { ...common, SecretString: value }
    : { ...common, SecretBinary: Buffer.from(value).toString("base64") };
}

function getParameter(store: LocalAws["parameters"], body: Record<string, unknown>): object {
  const name = requireString(body, "Name");
  const p = store.get(name);
  if (!p) throw new AwsFault("ParameterNotFound", undefined);
  const type = p.type ?? "String";
  // Like SSM: a SecureString read without WithDecryption returns ciphertext, so a resolver that forgets the flag fails.
  const value =
    type === "SecureString" && body.WithDecryption !== true
      ? Buffer.from(`kms-ciphertext:${randomUUID()}`).toString("base64")
      : p.value;
  return {
    Parameter: {
      Name: name,
      Type: type,
      Value: value,
      Version: 1,
      LastModifiedDate: 1_795_000_000,
      ARN: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter${name.startsWith("/") ? "" : "/"}${name}`,
      DataType: "text",
    },
  };
}

function putEvents(local: Pick<LocalAws, "events" | "eventFaults">, body: Record<string, unknown>): object {
  const entries = body.Entries;
  if (!Array.isArray(entries) || entries.length === 0 || entries.length > 10) {
    throw new AwsFault(
      "ValidationException",
      `1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10`,
    );
  }
  if (local.eventFaults.failCalls > 0) {
    local.eventFaults.failCalls--;
    throw new AwsFault("InternalException", "injected by the test", 500);
  }
  let failed = 0;
  const results = (entries as Record<string, unknown>[]).map((entry) => {
    const detail = typeof entry.Detail === "string" ? entry.Detail : "";
    let parsed: unknown;
    try {
      parsed = JSON.parse(detail);
    } catch {
      parsed = undefined;
    }
    if (!entry.Source || !entry.DetailType || parsed === undefined || Buffer.byteLength(detail) > 256 * 1024) {
      failed++;
      return { ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed." };
    }
    if (local.eventFaults.refuseEntries > 0) {
      local.eventFaults.refuseEntries--;
      failed++;
      return { ErrorCode: "ThrottlingException", ErrorMessage: "Rate exceeded" };
    }
    local.events.push({
      bus: String(entry.EventBusName ?? "default"),
      source: String(entry.Source),
      detailType: String(entry.DetailType),
      detail: parsed,
    });
    return { EventId: randomUUID() };
  });
  return { FailedEntryCount: failed, Entries: results };
}

export async function startLocalAws(): Promise<LocalAws> {
  const secrets = new Map<string, string | Uint8Array>();
  const parameters = new Map<string, StoredParameter>();
  const calls: AwsCall[] = [];
  const events: PutEvent[] = [];
  const eventFaults = { refuseEntries: 0, failCalls: 0 };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const target = String(req.headers["x-amz-target"] ?? "");
      const send = (status: number, payload: object) => {
        res.writeHead(status, { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": randomUUID() });
        res.end(JSON.stringify(payload));
      };
      const messageField = target.startsWith("secretsmanager.") ? "Message" : undefined;
      try {
        if (req.method !== "POST") throw new AwsFault("UnknownOperationException", undefined, 404);
        if (!String(req.headers.authorization ?? "").startsWith("AWS4-HMAC-SHA256 ")) {
          throw new AwsFault("MissingAuthenticationTokenException", "Request is missing Authentication Token", 403);
        }
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
        calls.push({ target, body });
        switch (target) {
          case "secretsmanager.GetSecretValue":
            return send(200, getSecretValue(secrets, body));
          case "AmazonSSM.GetParameter":
            return send(200, getParameter(parameters, body));
          case "AWSEvents.PutEvents":
            return send(200, putEvents({ events, eventFaults }, body));
          default:
            throw new AwsFault("UnknownOperationException", undefined);
        }
      } catch (err) {
        const fault = err instanceof AwsFault ? err : new AwsFault("InternalFailure", (err as Error).message, 500);
        send(fault.status, fault.body(messageField));
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientConfig = { endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 };

  return {
    endpoint,
    region: REGION,
    secrets,
    parameters,
    events,
    eventFaults,
    calls,
    callsTo: (target) => calls.filter((c) => c.target === target),
    secretsManager: () => new SecretsManagerClient(clientConfig),
    ssm: () => new SSMClient(clientConfig),
    eventBridge: () => new EventBridgeClient(clientConfig),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
