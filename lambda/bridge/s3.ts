import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { Readable } from "node:stream";
import { BridgeError, S3Error, type ErrorContext } from "./errors";

/**
 * The S3 endpoint: the handful of object operations the engine performs, each wrapping SDK errors once into an
 * S3Error that names the operation and the object. Uploads go through lib-storage so large files stream as multipart
 * with bounded memory (partSize x queueSize).
 */

export interface S3ObjectInfo {
  bucket: string;
  key: string;
  size: number;
  eTag?: string;
  versionId?: string;
  lastModified?: Date;
}

export interface S3UploadOptions {
  /** Bytes per part; lib-storage holds up to queueSize parts in memory per upload. */
  partSize?: number;
  queueSize?: number;
  metadata?: Record<string, string>;
  contentType?: string;
}

export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 4;

function s3Error(op: string, bucket: string, key: string, err: unknown, extra: ErrorContext = {}): S3Error {
  const e = err as { name?: string; Code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  const name = e?.name ?? e?.Code ?? "Error";
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
  return new S3Error("S3_OPERATION_FAILED", `s3 ${op} ${target}: ${name}: ${e?.message ?? String(err)}`, {
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

  async putText(bucket: string, key: string, body: string, contentType = "application/json"): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
    } catch (err) {
      throw s3Error("PutObject", bucket, key, err);
    }
  }

  /** Streams `body` into the object; S3 shows the object only once the upload completes, never a partial one. */
  async upload(bucket: string, key: string, body: Readable, options: S3UploadOptions = {}): Promise<{ eTag?: string }> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: bucket, Key: key, Body: body, Metadata: options.metadata, ContentType: options.contentType },
      partSize: options.partSize ?? DEFAULT_PART_SIZE,
      queueSize: options.queueSize ?? DEFAULT_QUEUE_SIZE,
      leavePartsOnError: false,
    });
    try {
      const out = await upload.done();
      return { eTag: out.ETag };
    } catch (err) {
      body.destroy();
      // A failure of the body (the SFTP side of a pull) is not an S3 problem; keep its own error.
      if (err instanceof BridgeError) throw err;
      throw s3Error("PutObject", bucket, key, err);
    }
  }

  async delete(bucket: string, key: string, versionId?: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
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
