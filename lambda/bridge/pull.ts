import { createHash, type Hash } from "node:crypto";
import { posix } from "node:path";
import { Transform, pipeline, type TransformCallback } from "node:stream";
import type { PullConfig } from "./config/schema";
import type { EngineContext, RunOptions } from "./context";
import { Backlog, mapLimit, sleep } from "./concurrency";
import { VerifyError, describeError } from "./errors";
import { doneName, matchesPatterns, remoteRelative } from "./paths";
import { pullDestPrefix, requireStream } from "./routing";
import { StreamReportBuilder, giltLine, type StreamReport } from "./report";
import { DEFAULT_PART_SIZE, MAX_PARTS } from "./s3";
import { StreamSession } from "./session";
import type { RemoteFile, SftpSession } from "./sftp";
import type { Receipt } from "./receipts";

/**
 * Pull: files from the partner's outbound folder into S3. A file is archived (moved to the done dir, or deleted) only
 * after its S3 copy is verified; if anything fails before that, the source stays where it was and the next run takes
 * it again. A file that changes while we read it never reaches S3: the upload is aborted before it completes.
 */

export interface PullOptions extends RunOptions {
  trigger?: Receipt["trigger"];
}

const STREAMS_AT_ONCE = 4;

export async function pull(ctx: EngineContext, streams: string[], options: PullOptions = {}): Promise<StreamReport[]> {
  for (const name of streams) requireStream(ctx.config, name);
  return mapLimit([...new Set(streams)], STREAMS_AT_ONCE, (stream) => pullStream(ctx, stream, options));
}

interface Candidate {
  file: RemoteFile;
  relative: string;
}

export function doneDirOf(pullConfig: PullConfig): string {
  return posix.isAbsolute(pullConfig.doneDir)
    ? posix.normalize(pullConfig.doneDir)
    : posix.join(pullConfig.from, pullConfig.doneDir);
}

async function listFiles(
  session: SftpSession,
  root: string,
  recursive: boolean,
  skipDirs: string[],
): Promise<RemoteFile[]> {
  const files: RemoteFile[] = [];
  const pending = [root];
  while (pending.length) {
    const dir = pending.shift() as string;
    for (const entry of await session.list(dir)) {
      if (entry.type === "dir") {
        if (recursive && !skipDirs.includes(posix.normalize(entry.path))) pending.push(entry.path);
      } else if (entry.type === "file") {
        files.push(entry);
      }
    }
  }
  return files;
}

async function pullStream(ctx: EngineContext, stream: string, options: PullOptions): Promise<StreamReport> {
  const config = requireStream(ctx.config, stream);
  const report = new StreamReportBuilder(stream, "pull", ctx.clock);
  const pullConfig = config.pull;
  if (!pullConfig) {
    report.addFailed(stream, new VerifyError(`pull ${stream}: the stream has no pull section`, { stream }));
    return report.build();
  }
  const session = new StreamSession(stream, config, ctx.credentials, ctx.connect, ctx.logger);
  const doneDir = doneDirOf(pullConfig);
  const destPrefix = pullDestPrefix(config) ?? "";
  const trigger = options.trigger ?? "schedule";
  const backlog = new Backlog(config.sftp.concurrency);

  try {
    const sftp = await session.get();
    const listed = await listFiles(sftp, pullConfig.from, pullConfig.recursive, [doneDir]);
    const now = ctx.clock();
    let candidates: Candidate[] = [];
    for (const file of listed) {
      const relative = remoteRelative(pullConfig.from, file.path);
      if (matchesPatterns(file.name, pullConfig.ignore)) {
        report.addSkipped({ source: file.path, reason: "ignored" });
      } else if (!matchesPatterns(relative, pullConfig.patterns)) {
        report.addSkipped({
          source: file.path,
          reason: "pattern",
          detail: `does not match ${pullConfig.patterns.join(", ")}`,
        });
      } else if (now - file.mtimeMs < pullConfig.minAgeSeconds * 1000) {
        report.addSkipped({
          source: file.path,
          reason: "too-young",
          detail: `modified ${Math.round((now - file.mtimeMs) / 1000)} s ago`,
        });
      } else {
        candidates.push({ file, relative });
      }
    }
    if (pullConfig.stableCheckMs > 0 && candidates.length) {
      candidates = await stableOnly(sftp, candidates, pullConfig.stableCheckMs, report);
    }
    candidates.sort((a, b) => a.file.mtimeMs - b.file.mtimeMs || a.file.path.localeCompare(b.file.path));
    for (const { file } of candidates.slice(pullConfig.maxFiles)) {
      report.addSkipped({
        source: file.path,
        reason: "limit",
        detail: `more than maxFiles=${pullConfig.maxFiles}; next run`,
      });
    }
    candidates = candidates.slice(0, pullConfig.maxFiles);

    await mapLimit(candidates, config.sftp.concurrency, async ({ file, relative }) => {
      if (options.deadline !== undefined && ctx.clock() >= options.deadline) {
        return report.addSkipped({ source: file.path, reason: "deadline", detail: "left for the next run" });
      }
      const started = ctx.clock();
      const key = destPrefix + relative;
      let active: SftpSession | undefined;
      try {
        active = await session.get();
        const hash = createHash("sha256");
        const guard = new SourceGuard(hash, file, active);
        // pipeline() ties the two together: an aborted upload also closes the remote handle, and a read error
        // reaches the upload.
        const body = pipeline(active.read(file.path, file.size), guard, () => undefined);
        const uploaded = await ctx.s3.upload(config.s3.bucket, key, body, {
          ...ctx.upload,
          // S3 takes at most 10,000 parts: very large files need larger ones.
          partSize: Math.max(ctx.upload.partSize ?? DEFAULT_PART_SIZE, Math.ceil(file.size / MAX_PARTS)),
          metadata: { "bridge-stream": stream, "bridge-source": encodeURIComponent(file.path) },
        });
        // S3's own answer verifies a single-part upload (see S3UploadResult); anything else is checked with a HEAD.
        const stored =
          uploaded.contentVerified && uploaded.bytes === file.size
            ? { size: uploaded.bytes, eTag: uploaded.eTag }
            : await ctx.s3.head(config.s3.bucket, key);
        if (!stored || stored.size !== file.size) {
          throw new VerifyError(
            `pull verify s3://${config.s3.bucket}/${key}: S3 has ${stored?.size ?? "no object"}, source ${file.path} has ${file.size} bytes; source left in place`,
            { stream, key, path: file.path },
          );
        }
        const sha256 = hash.digest("hex");
        const archived = await archive(active, pullConfig, doneDir, file, relative, new Date(ctx.clock()));
        const finished = ctx.clock();
        // Copied, verified and archived: the receipt is written in the background while this worker starts the next
        // file; the file is reported moved once it is, as before.
        const receipt: Receipt = {
          stream,
          direction: "pull",
          source: {
            host: config.sftp.host,
            path: file.path,
            size: file.size,
            mtime: new Date(file.mtimeMs).toISOString(),
          },
          destination: { bucket: config.s3.bucket, key, eTag: stored.eTag },
          bytes: file.size,
          sha256,
          startedAt: new Date(started).toISOString(),
          finishedAt: new Date(finished).toISOString(),
          attempt: 1,
          requestId: ctx.requestId,
          trigger,
        };
        await backlog.add(async () => {
          try {
            await ctx.receipts.write(receipt, relative);
            report.addMoved({
              source: file.path,
              destination: `s3://${config.s3.bucket}/${key}`,
              bytes: file.size,
              sha256,
              durationMs: finished - started,
            });
            ctx.logger.info("pulled", { stream, source: file.path, destination: key, bytes: file.size, archived });
          } catch (err) {
            report.addFailed(file.path, err);
            ctx.logger.warn("pull failed", { stream, source: file.path, error: describeError(err) });
          }
        });
      } catch (err) {
        report.addFailed(file.path, err);
        ctx.logger.warn("pull failed", { stream, source: file.path, error: describeError(err) });
        if (active) await session.discard(active, err);
      }
    });
  } catch (err) {
    // Connecting or listing failed: nothing was touched.
    report.addFailed(`sftp://${config.sftp.host}${pullConfig.from}`, err);
    ctx.logger.warn("pull failed", { stream, error: describeError(err) });
  } finally {
    await Promise.all([backlog.drain(), session.close()]);
  }
  const built = report.build();
  ctx.logger.info(giltLine(built), { stream, direction: "pull", files: built.files, bytes: built.bytes });
  return built;
}

/** Re-lists after a pause and keeps only files whose size and mtime did not move: a partner may still be writing. */
async function stableOnly(
  sftp: SftpSession,
  candidates: Candidate[],
  waitMs: number,
  report: StreamReportBuilder,
): Promise<Candidate[]> {
  await sleep(waitMs);
  const stable: Candidate[] = [];
  for (const candidate of candidates) {
    const again = await sftp.stat(candidate.file.path);
    if (again && again.size === candidate.file.size && again.mtimeMs === candidate.file.mtimeMs) stable.push(candidate);
    else
      report.addSkipped({ source: candidate.file.path, reason: "growing", detail: "size or mtime changed; next run" });
  }
  return stable;
}

async function archive(
  sftp: SftpSession,
  pullConfig: PullConfig,
  doneDir: string,
  file: RemoteFile,
  relative: string,
  at: Date,
): Promise<string> {
  if (pullConfig.after === "delete") {
    await sftp.remove(file.path);
    return "deleted";
  }
  const dir = posix.join(doneDir, posix.dirname(relative));
  await sftp.mkdirp(dir);
  const name = await doneName(
    file.name,
    at,
    async (candidate) => (await sftp.stat(posix.join(dir, candidate))) !== undefined,
  );
  const target = posix.join(dir, name);
  // Never replace: an earlier archived copy with the same name is a different delivery.
  await sftp.rename(file.path, target, false);
  return target;
}

/**
 * Hashes the bytes on their way to S3 and, before letting the stream end, checks the source did not change while it
 * was read. Failing here aborts the upload before S3 completes it, so S3 never shows a torn copy.
 */
class SourceGuard extends Transform {
  constructor(
    private readonly hash: Hash,
    private readonly file: RemoteFile,
    private readonly sftp: SftpSession,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.sftp.stat(this.file.path).then(
      (now) => {
        if (now && now.size === this.file.size && now.mtimeMs === this.file.mtimeMs) return callback();
        callback(
          new VerifyError(
            `pull ${this.file.path}: the file changed while it was read (size ${this.file.size} -> ${now?.size ?? "gone"}); left for the next run`,
            { path: this.file.path },
          ),
        );
      },
      (err: unknown) => callback(err as Error),
    );
  }
}
