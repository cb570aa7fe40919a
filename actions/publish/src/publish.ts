import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { basename } from "node:path";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../../../lambda/bridge/logger";
import { ActionError } from "../../lib/errors";

/**
 * Metadata key holding the hex SHA-256, for people looking at the bucket. Never trusted: whoever can write the bucket
 * writes metadata too, so an object is judged by S3's own SHA-256 checksum (computed and checked by S3 on upload) or,
 * where the store keeps none, by its bytes.
 */
export const SHA256_METADATA = "sha256";

export interface PublishOptions {
  bucket: string;
  /** "" or a key prefix ending in "/" (see `normalisePrefix`). */
  prefix: string;
  zipPath: string;
  /** The build step's hash, when the caller wants the file checked against it before anything is uploaded. */
  expectedZipSha256?: string;
  templatePaths: string[];
  /** Builds the URL CloudFormation fetches a template from. */
  objectUrl: (key: string) => string;
}

export type UploadReason = "new" | "checksum-mismatch";

export interface PublishedObject {
  file: string;
  key: string;
  sha256: string;
  size: number;
  url: string;
  /** Why it was uploaded; absent when an identical object was already there. */
  uploaded?: UploadReason;
  /** The S3 version holding these bytes, in a versioned bucket. */
  versionId?: string;
}

export interface PublishResult {
  lambda: PublishedObject;
  templates: PublishedObject[];
}

export class PublishError extends ActionError {}

/**
 * Uploads the Lambda zip and the templates under content-addressed keys (`lambda/<sha256>.zip`,
 * `templates/<sha256>/<name>`), so a key names exactly one content: re-publishing the same build uploads nothing, two
 * builds never overwrite each other, and a deployed stack keeps pointing at the bytes it was deployed with.
 */
export async function publish(s3: S3Client, options: PublishOptions, logger: Logger): Promise<PublishResult> {
  const zip = await readArtifact(options.zipPath);
  if (options.expectedZipSha256 && options.expectedZipSha256.toLowerCase() !== zip.sha256) {
    throw new PublishError(
      "ZIP_CHECKSUM_MISMATCH",
      `${options.zipPath} has SHA-256 ${zip.sha256}, but zip-sha256 says ${options.expectedZipSha256}: ` +
        `the file changed between the build and this step, or zip-sha256 comes from another build`,
    );
  }
  const templates = await Promise.all(options.templatePaths.map(readArtifact));
  const names = new Map<string, string>();
  for (const t of templates) {
    const name = basename(t.file);
    const other = names.get(name);
    if (other && other !== t.file) {
      throw new PublishError(
        "TEMPLATE_NAME_CLASH",
        `templates ${other} and ${t.file} share the file name ${name}; the template URL would not say which it is`,
      );
    }
    names.set(name, t.file);
  }

  const lambda = await put(s3, options, zip, `${options.prefix}lambda/${zip.sha256}.zip`, "application/zip", logger);
  const published: PublishedObject[] = [];
  for (const t of templates) {
    const key = `${options.prefix}templates/${t.sha256}/${basename(t.file)}`;
    published.push(await put(s3, options, t, key, "application/x-yaml", logger));
  }
  return { lambda, templates: published };
}

interface Artifact {
  file: string;
  body: Buffer;
  sha256: string;
}

async function readArtifact(file: string): Promise<Artifact> {
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const hint =
      code === "ENOENT"
        ? "no such file (did the build step run in this job, or was its artifact downloaded?)"
        : String(code);
    throw new PublishError("ARTIFACT_UNREADABLE", `cannot read ${file}: ${hint}`, { cause });
  }
  return { file, body, sha256: createHash("sha256").update(body).digest("hex") };
}

async function put(
  s3: S3Client,
  options: PublishOptions,
  artifact: Artifact,
  key: string,
  contentType: string,
  logger: Logger,
): Promise<PublishedObject> {
  const result: PublishedObject = {
    file: artifact.file,
    key,
    sha256: artifact.sha256,
    size: artifact.body.length,
    url: options.objectUrl(key),
  };
  const where = `s3://${options.bucket}/${key}`;
  let existing = await head(s3, options.bucket, key);
  if (!existing) {
    // Only where nothing is: a writer that got there in between is looked at below, never overwritten unseen.
    const written = await write(s3, options.bucket, key, artifact, contentType, { IfNoneMatch: "*" });
    if (written !== "precondition-failed") {
      await verifyStored(s3, options.bucket, key, artifact);
      logger.info(`uploaded ${where}`, { file: artifact.file, bytes: artifact.body.length, reason: "new" });
      return { ...result, uploaded: "new", versionId: written.versionId };
    }
    existing = await head(s3, options.bucket, key);
    if (!existing) throw new PublishError("UPLOAD_FAILED", `s3 put ${where}: refused as existing, then not found`);
  }
  if (await holds(s3, options.bucket, key, existing, artifact)) {
    logger.info(`unchanged, not uploaded: ${where}`, { file: artifact.file, sha256: artifact.sha256 });
    return { ...result, versionId: existing.versionId };
  }
  // A content-addressed key holding other bytes was corrupted or planted: replace exactly what was inspected.
  logger.warn(`${where} holds other content than its name says; replacing it with ${artifact.file}`, {
    file: artifact.file,
    sha256: artifact.sha256,
  });
  const written = await write(s3, options.bucket, key, artifact, contentType, { IfMatch: existing.eTag });
  if (written === "precondition-failed") {
    throw new PublishError(
      "UPLOAD_RACED",
      `s3 put ${where}: the object changed again while it was being replaced; someone else writes this key`,
    );
  }
  await verifyStored(s3, options.bucket, key, artifact);
  logger.info(`uploaded ${where}`, { file: artifact.file, bytes: artifact.body.length, reason: "checksum-mismatch" });
  return { ...result, uploaded: "checksum-mismatch", versionId: written.versionId };
}

async function write(
  s3: S3Client,
  bucket: string,
  key: string,
  artifact: Artifact,
  contentType: string,
  condition: { IfNoneMatch: "*" } | { IfMatch?: string },
): Promise<{ versionId?: string } | "precondition-failed"> {
  try {
    const out = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: artifact.body,
        ContentLength: artifact.body.length,
        ContentType: contentType,
        Metadata: { [SHA256_METADATA]: artifact.sha256 },
        // S3 refuses an upload whose bytes do not match this, and keeps it as the object's own checksum.
        ChecksumSHA256: Buffer.from(artifact.sha256, "hex").toString("base64"),
        ...condition,
      }),
    );
    return { versionId: out.VersionId };
  } catch (cause) {
    const e = cause as { name?: string; $metadata?: { httpStatusCode?: number } };
    // 409: S3's answer when a conditional write races another write of the same key.
    if (e.$metadata?.httpStatusCode === 412 || e.$metadata?.httpStatusCode === 409 || e.name === "PreconditionFailed")
      return "precondition-failed";
    throw new PublishError("UPLOAD_FAILED", `s3 put s3://${bucket}/${key}: ${describeS3Error(cause)}`, { cause });
  }
}

interface Existing {
  size?: number;
  eTag?: string;
  versionId?: string;
  /** S3's own SHA-256 of the whole object (base64); absent for objects uploaded without one, or stores without. */
  checksumSha256?: string;
}

/** Whether the stored object is the artifact: by S3's checksum when it has one, else by downloading its bytes. */
async function holds(
  s3: S3Client,
  bucket: string,
  key: string,
  existing: Existing,
  artifact: Artifact,
): Promise<boolean> {
  if (existing.size !== undefined && existing.size !== artifact.body.length) return false;
  if (existing.checksumSha256 !== undefined) {
    return Buffer.from(existing.checksumSha256, "base64").toString("hex") === artifact.sha256;
  }
  let body: Uint8Array;
  try {
    const out = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: key, ...(existing.eTag ? { IfMatch: existing.eTag } : {}) }),
    );
    body = await out.Body!.transformToByteArray();
  } catch (cause) {
    const status = (cause as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    // Changed or gone since the look: not the object that was judged, so not taken as the artifact.
    if (status === 412 || status === 404) return false;
    throw new PublishError("READ_FAILED", `s3 get s3://${bucket}/${key}: ${describeS3Error(cause)}`, { cause });
  }
  return createHash("sha256").update(body).digest("hex") === artifact.sha256;
}

async function verifyStored(s3: S3Client, bucket: string, key: string, artifact: Artifact): Promise<void> {
  const stored = await head(s3, bucket, key);
  if (!stored || !(await holds(s3, bucket, key, stored, artifact))) {
    throw new PublishError(
      "UPLOAD_NOT_VERIFIED",
      `s3 put s3://${bucket}/${key}: the stored object does not match ${artifact.file} (size ${stored?.size ?? "missing"}, ` +
        `expected ${artifact.body.length} bytes with sha256 ${artifact.sha256})`,
    );
  }
}

async function head(s3: S3Client, bucket: string, key: string): Promise<Existing | undefined> {
  try {
    const out = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }));
    // A multipart object's ChecksumSHA256 is a checksum of part checksums ("...-N"), not of the content.
    const whole =
      out.ChecksumSHA256 && !out.ChecksumSHA256.includes("-") && out.ChecksumType !== "COMPOSITE"
        ? out.ChecksumSHA256
        : undefined;
    return { size: out.ContentLength, eTag: out.ETag, versionId: out.VersionId, checksumSha256: whole };
  } catch (cause) {
    const status = (cause as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404) return undefined;
    throw new PublishError("HEAD_FAILED", `s3 head s3://${bucket}/${key}: ${describeS3Error(cause)}`, { cause });
  }
}

function describeS3Error(err: unknown): string {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (status === 403) {
    return "access denied (the role needs s3:GetObject and s3:PutObject on this bucket and prefix, and kms:GenerateDataKey if it is KMS-encrypted)";
  }
  if (e.name === "NoSuchBucket") return "the bucket does not exist (check the bucket input and the region)";
  return `${e.name ?? "Error"}${status ? ` (HTTP ${status})` : ""}: ${e.message ?? String(err)}`;
}

/** "" or "a/b/": no leading slash, no empty, "." or ".." segments, so keys stay where the caller means them to. */
export function normalisePrefix(prefix: string): string | { error: string } {
  const trimmed = prefix.trim().replace(/\/+$/, "");
  if (trimmed === "") return "";
  const segments = trimmed.split("/");
  if (trimmed.startsWith("/") || segments.some((s) => s === "" || s === "." || s === "..")) {
    return { error: `${JSON.stringify(prefix)} must be relative, without empty, "." or ".." segments` };
  }
  return `${trimmed}/`;
}

/** The endpoint the SDK's S3 client uses when given none: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS. */
export function sdkEndpoint(env: NodeJS.ProcessEnv): string | undefined {
  const value = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
  return value ? value.replace(/\/+$/, "") : undefined;
}

/**
 * The URL of an object as CloudFormation's TemplateURL wants it. With a custom endpoint (S3-compatible store, tests) it
 * follows that endpoint's addressing style; on AWS, virtual-hosted style unless the bucket name has dots (TLS would fail).
 */
export function objectUrlFor(options: {
  bucket: string;
  region: string;
  dnsSuffix: string;
  endpoint?: string;
  forcePathStyle: boolean;
}): (key: string) => string {
  const path = (key: string) => key.split("/").map(encodeURIComponent).join("/");
  const { bucket, region, dnsSuffix, endpoint, forcePathStyle } = options;
  if (endpoint) {
    const url = new URL(endpoint);
    const base = url.origin + url.pathname.replace(/\/+$/, "");
    // As the SDK addresses it: a bucket cannot be a subdomain of an IP address or of localhost.
    const hostOnly = isIP(url.hostname.replace(/^\[|\]$/g, "")) !== 0 || url.hostname === "localhost";
    if (forcePathStyle || hostOnly) return (key) => `${base}/${bucket}/${path(key)}`;
    return (key) => `${url.protocol}//${bucket}.${url.host}${url.pathname.replace(/\/+$/, "")}/${path(key)}`;
  }
  if (forcePathStyle || bucket.includes("."))
    return (key) => `https://s3.${region}.${dnsSuffix}/${bucket}/${path(key)}`;
  return (key) => `https://${bucket}.s3.${region}.${dnsSuffix}/${path(key)}`;
}
