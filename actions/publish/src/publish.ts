import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../../../lambda/bridge/logger";
import { ActionError } from "../../lib/errors";

/** Metadata key holding the hex SHA-256: works on every S3-compatible store, unlike S3's own checksum headers. */
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

export type UploadReason = "new" | "checksum-mismatch" | "checksum-unknown";

export interface PublishedObject {
  file: string;
  key: string;
  sha256: string;
  size: number;
  url: string;
  /** Why it was uploaded; absent when an identical object was already there. */
  uploaded?: UploadReason;
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
  const existing = await head(s3, options.bucket, key);
  const reason = existingReason(existing, artifact);
  if (reason === undefined) {
    logger.info(`unchanged, not uploaded: ${where}`, { file: artifact.file, sha256: artifact.sha256 });
    return result;
  }
  if (reason !== "new") {
    logger.warn(
      `${where} exists with ${reason === "checksum-mismatch" ? "other" : "unverifiable"} content; uploading again`,
      {
        file: artifact.file,
        sha256: artifact.sha256,
      },
    );
  }

  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: options.bucket,
        Key: key,
        Body: artifact.body,
        ContentLength: artifact.body.length,
        ContentType: contentType,
        Metadata: { [SHA256_METADATA]: artifact.sha256 },
        // S3 verifies this on receipt and refuses a corrupted upload; stores that ignore it are covered by the check below.
        ChecksumSHA256: Buffer.from(artifact.sha256, "hex").toString("base64"),
      }),
    );
  } catch (cause) {
    throw new PublishError("UPLOAD_FAILED", `s3 put ${where}: ${describeS3Error(cause)}`, { cause });
  }
  const stored = await head(s3, options.bucket, key);
  if (existingReason(stored, artifact) !== undefined) {
    throw new PublishError(
      "UPLOAD_NOT_VERIFIED",
      `s3 put ${where}: the stored object does not match ${artifact.file} (size ${stored?.size ?? "missing"}, ` +
        `expected ${artifact.body.length} bytes with sha256 ${artifact.sha256})`,
    );
  }
  logger.info(`uploaded ${where}`, { file: artifact.file, bytes: artifact.body.length, reason });
  return { ...result, uploaded: reason };
}

interface Existing {
  size?: number;
  sha256Hex?: string;
  sha256Base64?: string;
}

/** undefined: the object is already there with this content. */
function existingReason(existing: Existing | undefined, artifact: Artifact): UploadReason | undefined {
  if (!existing) return "new";
  if (existing.size !== undefined && existing.size !== artifact.body.length) return "checksum-mismatch";
  if (existing.sha256Hex !== undefined) return existing.sha256Hex === artifact.sha256 ? undefined : "checksum-mismatch";
  if (existing.sha256Base64 !== undefined) {
    return Buffer.from(existing.sha256Base64, "base64").toString("hex") === artifact.sha256
      ? undefined
      : "checksum-mismatch";
  }
  return "checksum-unknown";
}

async function head(s3: S3Client, bucket: string, key: string): Promise<Existing | undefined> {
  try {
    const out = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: "ENABLED" }));
    // A multipart object's ChecksumSHA256 is a checksum of part checksums ("...-N"), not of the content.
    const whole = out.ChecksumSHA256 && !out.ChecksumSHA256.includes("-") ? out.ChecksumSHA256 : undefined;
    return { size: out.ContentLength, sha256Hex: out.Metadata?.[SHA256_METADATA], sha256Base64: whole };
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
    if (forcePathStyle) return (key) => `${base}/${bucket}/${path(key)}`;
    return (key) => `${url.protocol}//${bucket}.${url.host}${url.pathname.replace(/\/+$/, "")}/${path(key)}`;
  }
  if (forcePathStyle || bucket.includes("."))
    return (key) => `https://s3.${region}.${dnsSuffix}/${bucket}/${path(key)}`;
  return (key) => `https://${bucket}.s3.${region}.${dnsSuffix}/${path(key)}`;
}
