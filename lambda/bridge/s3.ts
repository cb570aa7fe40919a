import {
  AbortMultipartUploadCommand,
  ChecksumAlgorithm,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from "@aws-sdk/client-s3";
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { awsErrorName, httpStatusOf } from "./aws-errors";
import { BridgeError, S3Error, type ErrorContext } from "./errors";

/**
 * The S3 endpoint: the handful of object operations the engine performs, each wrapping SDK errors once into an
 * S3Error that names the operation and the object. Uploads stream as multipart with bounded memory (partSize x
 * (queueSize + 1), in part buffers reused for the whole upload).
 */

export interface S3ObjectInfo {
  bucket: string;
  key: string;
  size: number;
  eTag?: string;
  versionId?: string;
  lastModified?: Date;
  /** User metadata (`x-amz-meta-*`), from a HEAD. */
  metadata?: Record<string, string>;
}

/** The outcome of a conditional write: written, or the HTTP status that said the condition did not hold. */
export type ConditionalPut = { written: true; eTag?: string } | { written: false; status: number };

export interface S3UploadOptions {
  /** Bytes per part (at least 5 MiB for S3); an upload holds up to queueSize + 1 parts in memory. */
  partSize?: number;
  queueSize?: number;
  metadata?: Record<string, string>;
  contentType?: string;
  /** Only if no object has the key when the upload completes (If-None-Match: *); S3_OBJECT_EXISTS otherwise. */
  ifAbsent?: boolean;
  /**
   * With `ifAbsent`, for a body that fits in one part (still in memory): asked where to write instead when the key
   * is taken, so the bytes need not be read again. It may throw to give up. Multipart uploads fail instead.
   */
  resolveConflict?: (taken: string) => Promise<{ key: string; ifAbsent: boolean }>;
}

export interface S3UploadResult {
  /** The key written: the one asked for, or where resolveConflict sent the bytes. */
  key: string;
  eTag?: string;
  /** Set when the bucket is versioned. */
  versionId?: string;
  /** Bytes read from the body and sent. */
  bytes: number;
  /**
   * True when S3's answer itself shows it stored exactly the bytes sent (single PutObject, ETag = their MD5). False
   * means "not shown", not "wrong": multipart ETags and SSE-KMS ETags are not MD5s; verify with a HEAD then.
   */
  contentVerified: boolean;
}

export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 4;
/** How many times one upload asks resolveConflict before giving up (each answer was taken by another writer). */
const MAX_CONFLICTS = 5;
/** S3's limit on the parts of one multipart upload. */
export const MAX_PARTS = 10_000;

/** An ETag without its quotes, as S3 event records give it. */
export function unquoteETag(eTag: string | undefined): string | undefined {
  return eTag?.replace(/"/g, "");
}

function s3Error(op: string, bucket: string, key: string, err: unknown, extra: ErrorContext = {}): S3Error {
  const status = httpStatusOf(err);
  const name = awsErrorName(err);
  const target = `s3://${bucket}/${key}`;
  const context = { bucket, key, httpStatus: status, ...extra };
  if (name === "NoSuchKey" || name === "NotFound" || status === 404) {
    return new S3Error("S3_OBJECT_NOT_FOUND", `s3 ${op} ${target}: no such object (deleted before we got to it?)`, {
      cause: err,
      context,
    });
  }
  if (name === "AccessDenied" || status === 403) {
    return new S3Error(
      "S3_ACCESS_DENIED",
      `s3 ${op} ${target}: access denied; check the function role allows s3:${op} on this bucket and prefix`,
      { cause: err, context },
    );
  }
  return new S3Error("S3_OPERATION_FAILED", `s3 ${op} ${target}: ${name}: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
    context,
    retryable: status === undefined || status >= 500 || status === 429,
  });
}

export class S3Endpoint {
  constructor(private readonly client: S3Client) {}

  async head(bucket: string, key: string): Promise<S3ObjectInfo | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return {
        bucket,
        key,
        size: out.ContentLength ?? 0,
        eTag: out.ETag,
        versionId: out.VersionId,
        lastModified: out.LastModified,
        metadata: out.Metadata,
      };
    } catch (err) {
      const mapped = s3Error("HeadObject", bucket, key, err);
      if (mapped.code === "S3_OBJECT_NOT_FOUND") return undefined;
      throw mapped;
    }
  }

  /** Opens the object as a stream; the caller must consume or destroy `body`. */
  async open(bucket: string, key: string, versionId?: string): Promise<S3ObjectInfo & { body: Readable }> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
      return {
        bucket,
        key,
        size: out.ContentLength ?? 0,
        eTag: out.ETag,
        versionId: out.VersionId,
        lastModified: out.LastModified,
        body: out.Body as Readable,
      };
    } catch (err) {
      throw s3Error("GetObject", bucket, key, err);
    }
  }

  async getText(bucket: string, key: string): Promise<string | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return await (out.Body as { transformToString(): Promise<string> }).transformToString();
    } catch (err) {
      const mapped = s3Error("GetObject", bucket, key, err);
      if (mapped.code === "S3_OBJECT_NOT_FOUND") return undefined;
      throw mapped;
    }
  }

  /**
   * A small text object. With `ifAbsent`, only if no object has the key (S3's conditional write): resolves false,
   * writing nothing, when one does.
   */
  async putText(
    bucket: string,
    key: string,
    body: string,
    contentType = "application/json",
    options: { ifAbsent?: boolean } = {},
  ): Promise<boolean> {
    return (await this.putConditional(bucket, key, body, { ...options, contentType })).written;
  }

  /**
   * A small object written only if a condition holds (S3's conditional writes): `ifAbsent` (If-None-Match: *) when no
   * object has the key, `ifMatch` when the current object has that ETag. A condition that did not hold resolves
   * `{written: false}` with S3's status (412, 409 for a concurrent conditional write that won, 404 for If-Match on a
   * missing key); any other failure throws.
   */
  async putConditional(
    bucket: string,
    key: string,
    body: string,
    options: { ifAbsent?: boolean; ifMatch?: string; metadata?: Record<string, string>; contentType?: string },
  ): Promise<ConditionalPut> {
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentType: options.contentType ?? "application/json",
          Metadata: options.metadata,
          ...(options.ifAbsent ? { IfNoneMatch: "*" } : {}),
          ...(options.ifMatch !== undefined ? { IfMatch: options.ifMatch } : {}),
        }),
      );
      return { written: true, eTag: out.ETag };
    } catch (err) {
      const status = httpStatusOf(err);
      const conditional = options.ifAbsent || options.ifMatch !== undefined;
      if (conditional && (status === 412 || status === 409 || (options.ifMatch !== undefined && status === 404))) {
        return { written: false, status };
      }
      throw s3Error("PutObject", bucket, key, err);
    }
  }

  /**
   * Streams `body` into the object; S3 shows the object only once the upload completes, never a partial one. What
   * lib-storage's Upload does (one PutObject when the body fits in a part, else multipart with `queueSize` parts in
   * flight, aborted on failure), without its per-part Buffer.concat into fresh 8 MiB buffers: bytes are copied once
   * into at most queueSize + 1 part buffers that are reused for the whole upload (docs/benchmarks.md: CPU and RSS).
   */
  async upload(bucket: string, key: string, body: Readable, options: S3UploadOptions = {}): Promise<S3UploadResult> {
    const partSize = options.partSize ?? DEFAULT_PART_SIZE;
    const queueSize = Math.max(1, options.queueSize ?? DEFAULT_QUEUE_SIZE);
    const params = { Bucket: bucket, Key: key, Metadata: options.metadata, ContentType: options.contentType };
    const condition = options.ifAbsent ? { IfNoneMatch: "*" } : {};
    let uploadId: string | undefined;
    try {
      const parts = new PartAssembler(partSize);
      const uploads = new Set<Promise<void>>();
      const completed: CompletedPart[] = [];
      let failure: unknown;
      let create: Promise<string> | undefined;
      const startPart = (data: Buffer, release: () => void, partNumber: number) => {
        create ??= this.createMultipart(params).then((id) => (uploadId = id));
        const sending: Promise<void> = create
          .then((id) =>
            this.client.send(
              skipPayloadHashOverTls(
                new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: id, PartNumber: partNumber, Body: data }),
              ),
            ),
          )
          .then((out) => {
            if (!out.ETag) throw new Error(`part ${partNumber} came back without an ETag`);
            completed.push({ PartNumber: partNumber, ETag: out.ETag, ...partChecksums(out) });
          })
          .catch((err: unknown) => {
            failure ??= err;
          })
          .finally(() => {
            release();
            uploads.delete(sending);
          });
        uploads.add(sending);
      };

      let partNumber = 0;
      let bytes = 0;
      for await (const chunk of body) {
        bytes += (chunk as Buffer).length;
        parts.add(chunk as Buffer);
        while (parts.full()) {
          // Backpressure: with queueSize parts on their way, wait before filling another buffer.
          while (uploads.size >= queueSize && failure === undefined) await Promise.race(uploads);
          if (failure !== undefined) throw failure;
          if (partNumber >= MAX_PARTS) {
            throw new Error(`more than ${MAX_PARTS} parts of ${partSize} bytes: use a larger partSize for this object`);
          }
          const { data, release } = parts.take();
          startPart(data, release, ++partNumber);
        }
      }
      if (partNumber === 0) {
        // Everything fitted in one part: a single PutObject, as lib-storage does. With its MD5 sent, S3 refuses a
        // body that arrived different; an ETag that echoes the MD5 (S3 without SSE-KMS, s3rver) shows the stored bytes
        // are these, which spares the caller a HEAD to verify the copy.
        const data = parts.rest();
        const md5 = createHash("md5").update(data).digest();
        let target = { key, ifAbsent: options.ifAbsent === true };
        let out;
        for (let conflicts = 0; ; conflicts++) {
          try {
            out = await this.client.send(
              skipPayloadHashOverTls(
                new PutObjectCommand({
                  ...params,
                  Key: target.key,
                  ...(target.ifAbsent ? { IfNoneMatch: "*" } : {}),
                  Body: data,
                  ContentMD5: md5.toString("base64"),
                }),
              ),
            );
            break;
          } catch (err) {
            const status = httpStatusOf(err);
            const taken = target.ifAbsent && (status === 412 || status === 409);
            if (!taken || !options.resolveConflict || conflicts >= MAX_CONFLICTS) throw err;
            target = await options.resolveConflict(target.key);
          }
        }
        return {
          key: target.key,
          eTag: out.ETag,
          versionId: out.VersionId,
          bytes,
          contentVerified: out.ETag === `"${md5.toString("hex")}"`,
        };
      }
      const last = parts.rest();
      if (last.length > 0) {
        if (partNumber >= MAX_PARTS) throw new Error(`more than ${MAX_PARTS} parts of ${partSize} bytes`);
        startPart(last, () => undefined, ++partNumber);
      }
      while (uploads.size > 0) await Promise.race(uploads);
      if (failure !== undefined) throw failure;
      completed.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      const out = await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: completed },
          ...condition,
        }),
      );
      return { key, eTag: out.ETag, versionId: out.VersionId, bytes, contentVerified: false };
    } catch (err) {
      body.destroy();
      if (uploadId !== undefined) {
        // Not every S3 implements it (s3rver answers 405); the parts then expire with the bucket's lifecycle rules.
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
          .catch(() => undefined);
      }
      // A failure of the body (the SFTP side of a pull) is not an S3 problem; keep its own error.
      if (err instanceof BridgeError) throw err;
      const status = httpStatusOf(err);
      if (options.ifAbsent && (status === 412 || status === 409)) {
        throw new S3Error(
          "S3_OBJECT_EXISTS",
          `s3 PutObject s3://${bucket}/${key}: another writer created this key during the upload; nothing was replaced`,
          { cause: err, context: { bucket, key }, retryable: true },
        );
      }
      throw s3Error("PutObject", bucket, key, err);
    }
  }

  private async createMultipart(params: {
    Bucket: string;
    Key: string;
    Metadata?: Record<string, string>;
    ContentType?: string;
  }): Promise<string> {
    // As lib-storage: where the client computes checksums for every request, ask for CRC32 parts explicitly.
    const checksums = await (
      this.client.config as { requestChecksumCalculation?: () => Promise<string> }
    ).requestChecksumCalculation?.();
    const out = await this.client.send(
      new CreateMultipartUploadCommand({
        ...params,
        ...(checksums === "WHEN_SUPPORTED" ? { ChecksumAlgorithm: ChecksumAlgorithm.CRC32 } : {}),
      }),
    );
    if (!out.UploadId) throw new Error("CreateMultipartUpload returned no UploadId");
    return out.UploadId;
  }

  /** With `ifMatch`, only while the object still has that ETag (S3's conditional delete; 412 otherwise). */
  async delete(bucket: string, key: string, versionId?: string, options: { ifMatch?: string } = {}): Promise<void> {
    try {
      await this.client.send(
        new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId, IfMatch: options.ifMatch }),
      );
    } catch (err) {
      throw s3Error("DeleteObject", bucket, key, err);
    }
  }

  async *list(bucket: string, prefix: string): AsyncGenerator<S3ObjectInfo> {
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
      } catch (err) {
        throw s3Error("ListBucket", bucket, prefix, err);
      }
      for (const o of out.Contents ?? []) {
        if (o.Key === undefined) continue;
        yield { bucket, key: o.Key, size: o.Size ?? 0, eTag: o.ETag, lastModified: o.LastModified };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }
}

/**
 * Signs an upload's body as UNSIGNED-PAYLOAD when it travels over TLS, so SigV4 does not hash every part with SHA-256
 * (about 1.7 CPU s per GiB here). TLS protects the bytes in transit, and with the SDK's default checksums S3 still
 * verifies each part's CRC32, as the AWS SDK for Java does by default for S3 over HTTPS. Plain-HTTP endpoints (local
 * test servers) keep the signed payload.
 */
function skipPayloadHashOverTls<C extends PutObjectCommand | UploadPartCommand>(command: C): C {
  (command.middlewareStack as PutObjectCommand["middlewareStack"]).add(
    (next) => async (args) => {
      const request = args.request as { protocol?: string; headers?: Record<string, string> };
      const headers = request?.headers;
      if (
        request?.protocol === "https:" &&
        headers &&
        !Object.keys(headers).some((h) => h.toLowerCase() === "x-amz-content-sha256")
      ) {
        headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
      }
      return next(args);
    },
    { step: "build", name: "bridgeSkipPayloadHashOverTls" },
  );
  return command;
}

function partChecksums(out: {
  ChecksumCRC32?: string;
  ChecksumCRC32C?: string;
  ChecksumCRC64NVME?: string;
  ChecksumSHA1?: string;
  ChecksumSHA256?: string;
}): Partial<CompletedPart> {
  const picked: Partial<CompletedPart> = {};
  if (out.ChecksumCRC32) picked.ChecksumCRC32 = out.ChecksumCRC32;
  if (out.ChecksumCRC32C) picked.ChecksumCRC32C = out.ChecksumCRC32C;
  if (out.ChecksumCRC64NVME) picked.ChecksumCRC64NVME = out.ChecksumCRC64NVME;
  if (out.ChecksumSHA1) picked.ChecksumSHA1 = out.ChecksumSHA1;
  if (out.ChecksumSHA256) picked.ChecksumSHA256 = out.ChecksumSHA256;
  return picked;
}

/**
 * Cuts a stream of chunks into parts of exactly `partSize` bytes. Chunks are only referenced until a part is full;
 * then they are copied once into a part buffer from a small pool, which comes back when that part is uploaded.
 */
class PartAssembler {
  private chunks: Buffer[] = [];
  private length = 0;
  private readonly pool: Buffer[] = [];

  constructor(private readonly partSize: number) {}

  add(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  full(): boolean {
    // Strictly more than a part: a body of exactly one part stays a single PutObject, as with lib-storage.
    return this.length > this.partSize;
  }

  /** The next full part, and the function that returns its buffer to the pool. */
  take(): { data: Buffer; release: () => void } {
    const buffer = this.pool.pop() ?? Buffer.allocUnsafeSlow(this.partSize);
    let filled = 0;
    while (filled < this.partSize) {
      const chunk = this.chunks[0] as Buffer;
      const n = Math.min(chunk.length, this.partSize - filled);
      chunk.copy(buffer, filled, 0, n);
      filled += n;
      if (n === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(n);
    }
    this.length -= this.partSize;
    return { data: buffer, release: () => this.pool.push(buffer) };
  }

  /** Whatever is left (less than a part), as one buffer. */
  rest(): Buffer {
    const rest = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.length);
    this.chunks = [];
    this.length = 0;
    return rest;
  }
}
