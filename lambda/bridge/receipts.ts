import { createHash, randomBytes } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import type { BridgeConfig } from "./config/schema";
import type { Direction } from "./report";
import { S3Endpoint, unquoteETag } from "./s3";
import { utcStamp } from "./paths";
import { S3Error } from "./errors";

/**
 * Delivery receipts: one small JSON object per verified transfer. They answer "did file X reach the partner, and
 * when?", and they make push idempotent: an object version (ETag) with a receipt for its stream was already delivered.
 *
 * Layout, readable in any S3 browser and listable by key:
 *   <prefix><stream>/push/<relative key>/<etag>/first.json          the first delivery of that object version
 *   <prefix><stream>/push/<relative key>/<etag>/<time>-<rand>.json  each later one (forced, resent)
 *   <prefix><stream>/pull/<relative remote path>/<time>-<rand>.json
 * The first delivery has a name of its own so that the duplicate check of every pushed file is one HEAD of a known
 * key, not a LIST: a fifth of the time on s3rver, and a twelfth of the request price on S3.
 */
export interface Receipt {
  stream: string;
  direction: Direction;
  source: {
    bucket?: string;
    key?: string;
    eTag?: string;
    versionId?: string;
    host?: string;
    path?: string;
    size: number;
    mtime?: string;
  };
  destination: { bucket?: string; key?: string; eTag?: string; host?: string; path?: string };
  bytes: number;
  sha256: string;
  startedAt: string;
  finishedAt: string;
  attempt: number;
  requestId?: string;
  /** Why this delivery happened when it was not the first: a forced push or an operator's resend. */
  trigger?: "event" | "schedule" | "invoke" | "resend" | "force";
}

export interface ReceiptFilter {
  direction?: Direction;
  /** One file's receipts: its path below the push source (push) or the pull folder (pull). */
  relative?: string;
  /** Only deliveries finished at or after this time. */
  since?: Date;
}

// S3 keys are at most 1024 bytes; a very long relative path is replaced by its hash so the receipt still has a key.
function pathPart(relative: string): string {
  return Buffer.byteLength(relative) > 700
    ? `_sha256/${createHash("sha256").update(relative).digest("hex")}`
    : relative;
}

/**
 * The metadata field that tells a claim (claims.ts: a delivery under way) from the receipt that replaces it at the
 * same key. A receipt has no such field, or "delivered".
 */
export const FIRST_STATE = "bridge-state";

export function isClaim(metadata: Record<string, string> | undefined): boolean {
  return metadata?.[FIRST_STATE] === "claimed";
}

/** The receipt of an object version's first delivery; its key is known in advance, so checking for it is a HEAD. */
const FIRST = "first.json";

function cleanETag(eTag: string | undefined): string {
  return unquoteETag(eTag) ?? "no-etag";
}

export class ReceiptStore {
  private readonly endpoint: S3Endpoint;

  constructor(
    client: S3Client,
    private readonly config: BridgeConfig,
  ) {
    this.endpoint = new S3Endpoint(client);
  }

  get enabled(): boolean {
    return this.config.receipts.enabled;
  }

  bucketFor(stream: string): string {
    return this.config.receipts.bucket ?? (this.config.streams[stream]?.s3.bucket as string);
  }

  /** Where a stream's receipts of one direction live; with `relative`, those of one file. */
  prefixFor(stream: string, direction: Direction, relative?: string, eTag?: string): string {
    let prefix = `${this.config.receipts.prefix}${stream}/${direction}/`;
    if (relative !== undefined) prefix += `${pathPart(relative)}/`;
    if (eTag !== undefined) prefix += `${cleanETag(eTag)}/`;
    return prefix;
  }

  /** Where the first delivery of an object version is recorded (and claimed while it is under way: claims.ts). */
  firstReceiptKey(stream: string, relative: string, eTag: string): string {
    return this.prefixFor(stream, "push", relative, eTag) + FIRST;
  }

  async hasPushReceipt(stream: string, relative: string, eTag: string | undefined): Promise<boolean> {
    if (!this.enabled || eTag === undefined) return false;
    const bucket = this.bucketFor(stream);
    const key = this.firstReceiptKey(stream, relative, eTag);
    try {
      const head = await this.endpoint.head(bucket, key);
      return head !== undefined && !isClaim(head.metadata);
    } catch (err) {
      throw new S3Error(
        "S3_OPERATION_FAILED",
        `s3 HeadObject s3://${bucket}/${key}: cannot check receipts: ${(err as Error).message}`,
        { cause: err, context: { bucket, key }, retryable: true },
      );
    }
  }

  /**
   * Writes the receipt and returns its S3 URI. `first` says whether this is the first delivery of a pushed object
   * version, when the caller has just checked (undefined: check here); a conditional write keeps two concurrent
   * first deliveries from overwriting each other's receipt on S3.
   */
  async write(receipt: Receipt, relative: string, options: { first?: boolean } = {}): Promise<string | undefined> {
    if (!this.enabled) return undefined;
    const bucket = this.bucketFor(receipt.stream);
    const body = JSON.stringify(receipt, null, 2);
    const stamped = `${utcStamp(new Date(receipt.finishedAt))}-${randomBytes(3).toString("hex")}.json`;
    if (receipt.direction === "pull") {
      const key = this.prefixFor(receipt.stream, "pull", relative) + stamped;
      await this.endpoint.putText(bucket, key, body);
      return `s3://${bucket}/${key}`;
    }
    const eTag = receipt.source.eTag;
    const prefix = this.prefixFor(receipt.stream, "push", relative, eTag ?? "no-etag");
    const first =
      options.first ?? (eTag === undefined ? false : !(await this.hasPushReceipt(receipt.stream, relative, eTag)));
    if (first && eTag !== undefined) {
      if (await this.endpoint.putText(bucket, prefix + FIRST, body, "application/json", { ifAbsent: true })) {
        return `s3://${bucket}/${prefix}${FIRST}`;
      }
    }
    await this.endpoint.putText(bucket, prefix + stamped, body);
    return `s3://${bucket}/${prefix}${stamped}`;
  }

  /** Receipts of a stream, newest last; filtered by relative path and/or finish time. */
  async list(stream: string, filter: ReceiptFilter = {}): Promise<Receipt[]> {
    const directions: Direction[] = filter.direction ? [filter.direction] : ["push", "pull"];
    const found: Receipt[] = [];
    for (const direction of directions) {
      const bucket = this.bucketFor(stream);
      for await (const obj of this.endpoint.list(bucket, this.prefixFor(stream, direction, filter.relative))) {
        if (!obj.key.endsWith(".json")) continue;
        if (filter.since && obj.lastModified && obj.lastModified < filter.since) continue;
        const text = await this.endpoint.getText(bucket, obj.key);
        if (!text) continue;
        const doc = JSON.parse(text) as Receipt | { claim: unknown };
        // first.json holds a claim, not a receipt, while its delivery is under way or after it failed.
        if ("claim" in doc) continue;
        const receipt = doc;
        if (filter.since && new Date(receipt.finishedAt) < filter.since) continue;
        found.push(receipt);
      }
    }
    return found.sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  }
}
