import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { parseDocument, visit } from "yaml";
import { parseConfigLocation, parseConfigText, type BridgeConfig } from "../../../lambda/bridge/config";
import type { Logger } from "../../../lambda/bridge/logger";
import { ActionError, errorMessage } from "../../lib/errors";

/**
 * The stream config as part of the rollout. A stack reads its config from its ConfigLocation, which for a new stack
 * names a bucket that does not exist before the stack does, so nothing but the rollout itself can put it there. The
 * file in the repository is checked as the function would check it before the stack is touched, and written to the
 * ConfigLocation once the stack exists.
 *
 * `${Name}` placeholders in the document's values (not its comments) are filled from, in this order: the config-values
 * input, the stack's name (StackName), its outputs, its parameters. Before the stack exists only the first two are
 * known; the others stand in as placeholder text while checking, and every stream's bucket must then be the stack's
 * own (the BucketName output) at delivery. Values go in as YAML values, quoted where they need to be.
 */

export const PLACEHOLDER_NAME = /^[A-Za-z][A-Za-z0-9]{0,127}$/;
const PLACEHOLDER = /\$\{([A-Za-z][A-Za-z0-9]{0,127})\}/g;
/** A scalar that is one placeholder and nothing else. */
const ONLY_PLACEHOLDER = new RegExp(`^${PLACEHOLDER.source}$`);
const STAND_IN = "stack-value-";

export class ConfigDeliveryError extends ActionError {}

export interface ConfigDraft {
  file: string;
  text: string;
  values: Record<string, string>;
  stackName: string;
  /** The placeholders only the stack can fill. */
  fromStack: string[];
}

export interface ConfigDelivery {
  location: string;
  result: "uploaded" | "unchanged";
  sha256: string;
  versionId?: string;
}

export function placeholdersOf(text: string): string[] {
  const names = new Set<string>();
  render(text, (name) => {
    names.add(name);
    return undefined;
  });
  return [...names].sort();
}

/**
 * Reads and checks the config before any AWS call: every placeholder the workflow fills must be given and not empty,
 * and the document, with stand-ins for what only the stack can fill, must pass the function's own validation.
 */
export async function prepareConfig(options: {
  file: string;
  values: Record<string, string>;
  stackName: string;
  /** The parameters this deploy gives; ReceiptsPrefix and BucketName matter here. */
  parameters: Record<string, string>;
}): Promise<ConfigDraft> {
  const { file, values, stackName, parameters } = options;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    const why = (cause as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : errorMessage(cause);
    throw new ConfigDeliveryError("CONFIG_INVALID", `config-file ${file}: ${why}`, { cause });
  }
  const problems: string[] = [];
  for (const [name, value] of Object.entries(values)) {
    if (value === "") problems.push(`config-values: ${name} is empty (is the variable behind it set?)`);
  }
  const known = { ...values, StackName: stackName };
  const used = placeholdersOf(text);
  const fromStack = used.filter((name) => !Object.hasOwn(known, name));
  const unused = Object.keys(values).filter((name) => !used.includes(name));
  if (unused.length) problems.push(`config-values: ${unused.join(", ")} not used in ${file}`);
  if (problems.length)
    throw new ConfigDeliveryError("CONFIG_INVALID", `config-file ${file}:\n  ${problems.join("\n  ")}`);

  const standIns = Object.fromEntries(fromStack.map((name) => [name, `${STAND_IN}${name.toLowerCase()}`]));
  const config = validate(
    render(text, lookup({ ...known, ...standIns })),
    file,
    parameters.ReceiptsPrefix,
    "before the stack was touched",
  );
  const bucket = parameters.BucketName;
  if (bucket) {
    const foreign = bucketsOf(config).filter((b) => !b.name.startsWith(STAND_IN) && b.name !== bucket);
    if (foreign.length) throw bucketError(file, foreign, bucket);
  }
  return { file, text, values, stackName, fromStack };
}

/** The config as the stack will read it: placeholders filled from the stack, checked again, written if it changed. */
export async function deliverConfig(
  s3: S3Client,
  draft: ConfigDraft,
  stack: { outputs: Record<string, string>; parameters: Record<string, string> },
  logger: Logger,
): Promise<ConfigDelivery> {
  const { file } = draft;
  const location = stack.outputs.ConfigLocation;
  if (!location) {
    throw new ConfigDeliveryError(
      "CONFIG_LOCATION_UNKNOWN",
      `stack ${draft.stackName} has no ConfigLocation output, so config-file ${file} has nowhere to go`,
    );
  }
  const where = parseConfigLocation(location);
  if (where.kind !== "s3") {
    throw new ConfigDeliveryError(
      "CONFIG_LOCATION_UNSUPPORTED",
      `stack ${draft.stackName} reads its config from ${location}; config-file delivers to S3 (s3://bucket/key) only`,
    );
  }

  const known: Record<string, string> = {
    ...stack.parameters,
    ...stack.outputs,
    StackName: draft.stackName,
    ...draft.values,
  };
  const missing = draft.fromStack.filter((name) => !Object.hasOwn(known, name));
  if (missing.length) {
    throw new ConfigDeliveryError(
      "CONFIG_INVALID",
      `config-file ${file}: ${missing.map((n) => `\${${n}}`).join(", ")} is neither a config-value nor an output or ` +
        `parameter of stack ${draft.stackName}; the config was not written`,
    );
  }
  const text = render(draft.text, lookup(known));
  const config = validate(
    text,
    file,
    stack.parameters.ReceiptsPrefix,
    "with the stack's values; the config was not written",
  );
  const bucket = stack.outputs.BucketName;
  if (bucket) {
    const foreign = bucketsOf(config).filter((b) => b.name !== bucket);
    if (foreign.length) throw bucketError(file, foreign, bucket);
  }

  const body = Buffer.from(text, "utf8");
  const sha256 = createHash("sha256").update(body).digest("hex");
  const current = await readCurrent(s3, where.bucket, where.key);
  if (current && current.body.equals(body)) {
    logger.info(`config unchanged at ${location} (sha256 ${sha256})`);
    return { location, result: "unchanged", sha256, versionId: current.versionId };
  }
  const kmsKey = stack.parameters.BucketKmsKeyArn;
  let versionId: string | undefined;
  try {
    const out = await s3.send(
      new PutObjectCommand({
        Bucket: where.bucket,
        Key: where.key,
        Body: body,
        ContentType: "application/yaml",
        // Written only over the version just read (or only where there is none): a concurrent writer is not
        // overwritten unseen.
        ...(current ? { IfMatch: current.eTag } : { IfNoneMatch: "*" }),
        ...(kmsKey ? { ServerSideEncryption: "aws:kms", SSEKMSKeyId: kmsKey } : { ServerSideEncryption: "AES256" }),
        ChecksumSHA256: Buffer.from(sha256, "hex").toString("base64"),
        Metadata: { sha256, source: file.slice(0, 512) },
      }),
    );
    versionId = out.VersionId;
  } catch (cause) {
    const e = cause as { name?: string; $metadata?: { httpStatusCode?: number } };
    const status = e.$metadata?.httpStatusCode;
    const why =
      status === 412 || e.name === "PreconditionFailed"
        ? "someone else wrote it between this step's read and its write; run the deploy again"
        : status === 403
          ? "access denied (the deploy role needs s3:GetObject and s3:PutObject on the config key, and kms:GenerateDataKey on the bucket's key if it has one)"
          : errorMessage(cause);
    throw new ConfigDeliveryError("CONFIG_NOT_WRITTEN", `config ${location}: not written: ${why}`, { cause });
  }
  logger.info(`config written to ${location} (sha256 ${sha256}${versionId ? `, version ${versionId}` : ""})`);
  return { location, result: "uploaded", sha256, versionId };
}

const lookup = (values: Record<string, string>) => (name: string) =>
  Object.hasOwn(values, name) ? values[name] : undefined;

/**
 * The document with placeholders in its scalars replaced; a document that does not parse is left to validation. An
 * unquoted scalar that is one placeholder and gets a whole number becomes a number, as YAML reads `port: 2222`;
 * quoted, it stays text.
 */
function render(text: string, value: (name: string) => string | undefined): string {
  const doc = parseDocument(text, { merge: true });
  if (doc.errors.length) return text;
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== "string") return;
      const replaced = node.value.replace(PLACEHOLDER, (whole, name: string) => value(name) ?? whole);
      if (replaced === node.value) return;
      const whole = node.type === "PLAIN" && ONLY_PLACEHOLDER.test(node.value);
      node.value = whole && /^(0|[1-9]\d{0,14})$/.test(replaced) ? Number(replaced) : replaced;
    },
  });
  return doc.toString({ lineWidth: 0 });
}

function validate(text: string, file: string, receiptsPrefix: string | undefined, when: string): BridgeConfig {
  try {
    // As the function reads it: credential files refused, and the stack's receipts prefix over the document's.
    return parseConfigText(text, file, {
      allowFileCredentials: false,
      receiptsPrefix: receiptsPrefix
        ? { value: receiptsPrefix, from: "the stack parameter ReceiptsPrefix (BRIDGE_RECEIPTS_PREFIX)" }
        : undefined,
    });
  } catch (cause) {
    throw new ConfigDeliveryError(
      "CONFIG_INVALID",
      `${errorMessage(cause)}\n(checked as the function reads it, ${when})`,
      {
        cause,
      },
    );
  }
}

function bucketsOf(config: BridgeConfig): { where: string; name: string }[] {
  const buckets = Object.entries(config.streams).map(([name, s]) => ({
    where: `streams.${name}.s3.bucket`,
    name: s.s3.bucket,
  }));
  if (config.receipts.bucket) buckets.push({ where: "receipts.bucket", name: config.receipts.bucket });
  return buckets;
}

function bucketError(file: string, foreign: { where: string; name: string }[], bucket: string): ConfigDeliveryError {
  return new ConfigDeliveryError(
    "CONFIG_WRONG_BUCKET",
    `config-file ${file}: ${foreign.map((b) => `${b.where} is ${b.name}`).join(", ")}, but the stack's bucket is ` +
      `${bucket}, the only one its function may use; write \${BucketName}`,
  );
}

async function readCurrent(
  s3: S3Client,
  bucket: string,
  key: string,
): Promise<{ body: Buffer; eTag?: string; versionId?: string } | undefined> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return {
      body: Buffer.from(await out.Body!.transformToByteArray()),
      eTag: out.ETag,
      versionId: out.VersionId,
    };
  } catch (cause) {
    const e = cause as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === "NoSuchKey" || e.$metadata?.httpStatusCode === 404) return undefined;
    throw new ConfigDeliveryError(
      "CONFIG_NOT_WRITTEN",
      `config s3://${bucket}/${key}: cannot read the current one to compare: ${errorMessage(cause)}`,
      { cause },
    );
  }
}
