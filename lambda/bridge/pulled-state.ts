import { BridgeError } from "./errors";
import type { S3Endpoint } from "./s3";

/**
 * What a non-destructive pull (`pull.after: leave`) has taken: for partners that allow neither moves nor deletes, the
 * bridge remembers each remote file by path, size and mtime, and takes it again only when one of them changes.
 *
 * One JSON object per stream, next to the receipts: read once per run, written once at its end, so a folder of
 * thousands of files costs two requests, not one per file. Writes are conditional on the version read (If-Match, or
 * If-None-Match for the first); when another run wrote meanwhile, both runs' entries are merged and written again, so
 * no record is lost (the newer record of a path wins).
 */
export interface PulledEntry {
  size: number;
  mtimeMs: number;
  /** The S3 key the file went to. */
  key: string;
  pulledAt: string;
}

interface StateDocument {
  version: 1;
  files: Record<string, PulledEntry>;
}

const MAX_SAVE_ATTEMPTS = 5;

export class PulledState {
  private dirty = false;

  private constructor(
    private readonly endpoint: S3Endpoint,
    readonly bucket: string,
    readonly key: string,
    private files: Record<string, PulledEntry>,
    private eTag: string | undefined,
  ) {}

  static async load(endpoint: S3Endpoint, bucket: string, key: string): Promise<PulledState> {
    const { files, eTag } = await read(endpoint, bucket, key);
    return new PulledState(endpoint, bucket, key, files, eTag);
  }

  /** True when this exact file (same size and mtime) was pulled before. */
  has(path: string, size: number, mtimeMs: number): boolean {
    const entry = this.files[path];
    return entry !== undefined && entry.size === size && entry.mtimeMs === mtimeMs;
  }

  get size(): number {
    return Object.keys(this.files).length;
  }

  record(path: string, entry: PulledEntry): void {
    this.files[path] = entry;
    this.dirty = true;
  }

  /** Forgets files no longer on the server, so the record does not grow forever. `listed`: every path just listed. */
  prune(listed: Set<string>): void {
    for (const path of Object.keys(this.files)) {
      if (!listed.has(path)) {
        delete this.files[path];
        this.dirty = true;
      }
    }
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    for (let attempt = 1; ; attempt++) {
      const body = JSON.stringify({ version: 1, files: this.files } satisfies StateDocument);
      const put = await this.endpoint.putConditional(this.bucket, this.key, body, {
        ...(this.eTag === undefined ? { ifAbsent: true } : { ifMatch: this.eTag }),
      });
      if (put.written) {
        this.eTag = put.eTag;
        this.dirty = false;
        return;
      }
      if (attempt >= MAX_SAVE_ATTEMPTS) {
        throw new Error(`s3://${this.bucket}/${this.key}: written by other runs ${attempt} times in a row; not saved`);
      }
      // Another run saved meanwhile: keep what it recorded too.
      const theirs = await read(this.endpoint, this.bucket, this.key);
      for (const [path, entry] of Object.entries(theirs.files)) {
        const ours = this.files[path];
        if (!ours || ours.pulledAt < entry.pulledAt) this.files[path] = entry;
      }
      this.eTag = theirs.eTag;
    }
  }
}

async function read(
  endpoint: S3Endpoint,
  bucket: string,
  key: string,
): Promise<{ files: Record<string, PulledEntry>; eTag: string | undefined }> {
  let object;
  try {
    // One GET gives the body and the ETag of that very body, which the next conditional write names.
    object = await endpoint.open(bucket, key);
  } catch (err) {
    if (err instanceof BridgeError && err.code === "S3_OBJECT_NOT_FOUND") return { files: {}, eTag: undefined };
    throw err;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of object.body) chunks.push(chunk as Buffer);
  const doc = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Partial<StateDocument>;
  return { files: doc.files ?? {}, eTag: object.eTag };
}
