import { readFile } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { GetParameterCommand, type SSMClient } from "@aws-sdk/client-ssm";
import { LineCounter, parseDocument } from "yaml";
import { awsErrorName, httpStatusOf } from "../aws-errors";
import { parseS3Uri } from "../paths";
import { BridgeError, ConfigError, ConfigNotFoundError, type ConfigIssue } from "../errors";
import type { BridgeConfig } from "./schema";
import { validateConfig, type ValidateOptions } from "./validate";

/**
 * Reading the stream config from where a deployment keeps it. Where it lives is the adapter's choice (an environment
 * variable in Lambda, a flag in the CLI); this module only turns a location into text and text into a BridgeConfig.
 */

export type ConfigLocation =
  { kind: "file"; path: string } | { kind: "s3"; bucket: string; key: string } | { kind: "ssm"; name: string };

const CONFIG_FILE = /\.(ya?ml|json)$/i;

/**
 * How a location string is read:
 * - `s3://bucket/key` -> S3 object; `ssm:<name>` -> SSM parameter; `file:<path>` -> local file (explicit forms);
 * - an absolute name without a .yaml/.yml/.json extension (`/bridge/config`) -> SSM parameter, the usual Lambda setup;
 * - anything else (`bridge.config.yaml`, `./cfg`, `/var/task/bridge.yaml`) -> local file.
 */
export function parseConfigLocation(location: string): ConfigLocation {
  const s3 = parseS3Uri(location);
  if (s3) return { kind: "s3", ...s3 };
  if (location.startsWith("s3:")) {
    throw new ConfigNotFoundError(location, "an S3 location must look like s3://bucket/key");
  }
  if (location.startsWith("ssm:")) return { kind: "ssm", name: location.slice(4) };
  if (location.startsWith("file:")) return { kind: "file", path: location.slice(5) };
  if (location.startsWith("/") && !CONFIG_FILE.test(location)) return { kind: "ssm", name: location };
  return { kind: "file", path: location };
}

/** The raw document (YAML 1.2, of which JSON is a subset); syntax errors become one ConfigError with line numbers. */
export function parseConfigDocument(text: string, source: string): unknown {
  // merge: true lets a file share sftp settings between streams with `<<: *defaults`.
  const lines = new LineCounter();
  const doc = parseDocument(text.replace(/^\uFEFF/, ""), { merge: true, prettyErrors: false, lineCounter: lines });
  if (doc.errors.length) {
    const issues: ConfigIssue[] = doc.errors.map((e) => {
      const at = lines.linePos(e.pos[0]);
      return {
        path: "",
        message: `YAML syntax error at line ${at.line}, column ${at.col}: ${e.message.split("\n")[0]}`,
      };
    });
    throw new ConfigError(source, issues);
  }
  return doc.toJS({ maxAliasCount: 100 });
}

/** Text (YAML or JSON) to a validated BridgeConfig; every problem in one ConfigError. */
export function parseConfigText(text: string, source: string, options: ValidateOptions = {}): BridgeConfig {
  return validateConfig(parseConfigDocument(text, source), source, options);
}

export interface ConfigClients {
  s3?: S3Client;
  ssm?: SSMClient;
}

/** Anything other than "missing" or "denied" (throttling, network) is worth another try later. */
function unavailable(source: string, err: unknown): BridgeError {
  return new BridgeError(
    "CONFIG_NOT_FOUND",
    `config ${source}: could not be read (${awsErrorName(err)}: ${(err as Error).message})`,
    { cause: err, context: { source }, retryable: true },
  );
}

async function readLocalFile(path: string, source: string): Promise<string> {
  const absolute = resolvePath(path);
  try {
    return await readFile(absolute, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new ConfigNotFoundError(
        source,
        `no file at ${absolute}; create it (see examples/bridge.config.yaml) or pass a path, s3://bucket/key or ssm:/parameter/name`,
        err,
      );
    }
    if (code === "EISDIR")
      throw new ConfigNotFoundError(source, `${absolute} is a directory; pass the config file itself`, err);
    if (code === "EACCES") throw new ConfigNotFoundError(source, `permission denied reading ${absolute}`, err);
    throw unavailable(source, err);
  }
}

async function readS3Object(s3: S3Client, bucket: string, key: string, source: string): Promise<string> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if (!res.Body) throw new ConfigNotFoundError(source, "the object has no body");
    return await res.Body.transformToString("utf-8");
  } catch (err) {
    if (err instanceof BridgeError) throw err;
    const name = awsErrorName(err);
    if (name === "NoSuchKey" || name === "NotFound" || httpStatusOf(err) === 404) {
      const what = name === "NoSuchBucket" ? `bucket ${bucket} does not exist` : `no object ${key} in bucket ${bucket}`;
      throw new ConfigNotFoundError(
        source,
        `${what}; upload the config there or point the bridge at its real location`,
        err,
      );
    }
    if (name === "AccessDenied" || httpStatusOf(err) === 403) {
      throw new ConfigNotFoundError(
        source,
        `access denied; the role needs s3:GetObject on arn:aws:s3:::${bucket}/${key} (and kms:Decrypt if the object is SSE-KMS encrypted)`,
        err,
      );
    }
    throw unavailable(source, err);
  }
}

async function readSsmParameter(ssm: SSMClient, name: string, source: string): Promise<string> {
  try {
    const res = await ssm.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    const value = res.Parameter?.Value;
    if (value === undefined) throw new ConfigNotFoundError(source, `SSM parameter ${name} has no value`);
    return value;
  } catch (err) {
    if (err instanceof BridgeError) throw err;
    const errName = awsErrorName(err);
    if (errName === "ParameterNotFound" || errName === "ParameterVersionNotFound") {
      throw new ConfigNotFoundError(
        source,
        `SSM parameter ${name} does not exist in this account and region; create it (aws ssm put-parameter --name ${name} --type String --value file://bridge.config.yaml) or fix the location`,
        err,
      );
    }
    if (errName === "AccessDeniedException") {
      throw new ConfigNotFoundError(
        source,
        `access denied reading SSM parameter ${name}; the role needs ssm:GetParameter on it (and kms:Decrypt for a SecureString)`,
        err,
      );
    }
    throw unavailable(source, err);
  }
}

function needClient<T>(client: T | undefined, what: string, source: string): T {
  if (!client)
    throw new ConfigNotFoundError(source, `reading the config from ${what} needs an ${what} client, none was given`);
  return client;
}

/**
 * The validated config from `location` (see parseConfigLocation). ConfigNotFoundError says what was looked for and how
 * to fix it; ConfigError lists every problem in the document.
 */
export async function loadConfig(
  location: string,
  clients: ConfigClients = {},
  options: ValidateOptions = {},
): Promise<BridgeConfig> {
  const where = parseConfigLocation(location);
  let text: string;
  switch (where.kind) {
    case "file":
      text = await readLocalFile(where.path, location);
      break;
    case "s3":
      text = await readS3Object(needClient(clients.s3, "S3", location), where.bucket, where.key, location);
      break;
    case "ssm":
      text = await readSsmParameter(needClient(clients.ssm, "SSM", location), where.name, location);
      break;
  }
  return parseConfigText(text, location, options);
}
