import { createHash, type Hash } from "node:crypto";
import { posix } from "node:path";
import { Transform, pipeline, type TransformCallback } from "node:stream";
import type { PullConfig, StreamConfig } from "./config/schema";
import type { EngineContext, RunOptions } from "./context";
import { Backlog, STREAMS_AT_ONCE, mapLimit } from "./concurrency";
import { listFiles } from "./listing";
import { BridgeError, S3Error, VerifyError, describeError, type ErrorContext } from "./errors";
import { PulledState } from "./pulled-state";
import { EventOutbox, failedEvent } from "./file-events";
import { doneDirOf, doneName, matchesPatterns, remoteRelative } from "./paths";
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

export async function pull(ctx: EngineContext, streams: string[], options: PullOptions = {}): Promise<StreamReport[]> {
  for (const name of streams) requireStream(ctx.config, name);
  return mapLimit([...new Set(streams)], STREAMS_AT_ONCE, (stream) => pullStream(ctx, stream, options));
}

interface Candidate {
  file: RemoteFile;
  relative: string;
}

async function pullStream(ctx: EngineContext, stream: string, options: PullOptions): Promise<StreamReport> {
  const config = requireStream(ctx.config, stream);
  const report = new StreamReportBuilder(stream, "pull", ctx.clock);
  const pullConfig = config.pull;
  if (!pullConfig) {
    report.addFailed(
      stream,
      new BridgeError("CONFIG_INVALID", `pull ${stream}: the stream has no pull section; add streams.${stream}.pull`, {
        context: { stream },
      }),
    );
    return report.build();
  }
  const batch: PullBatch = {
    ctx,
    stream,
    config,
    pullConfig,
    options,
    report,
    session: new StreamSession(stream, config, ctx.credentials, ctx.connect, ctx.logger),
    doneDir: doneDirOf(pullConfig),
    destPrefix: pullDestPrefix(config) ?? "",
    trigger: options.trigger ?? "schedule",
    backlog: new Backlog(config.sftp.concurrency),
    events: new EventOutbox(config.events ? ctx.events : undefined, ctx.logger, stream),
  };

  let listed: RemoteFile[] | undefined;
  try {
    if (pullConfig.after === "leave") batch.pulled = await loadPulledState(batch);
    const sftp = await batch.session.get();
    listed = await listFiles(sftp, pullConfig.from, pullConfig.recursive, [batch.doneDir]);
    // A file must keep its size and mtime from this listing until stableCheckMs later at least, and until it has been
    // read: the reader looks again at the end. The wait overlaps the transfers instead of coming before them.
    // A wait in real time, like the timers that serve it (the engine's clock may be a test's).
    batch.stableUntil = Date.now() + pullConfig.stableCheckMs;
    let candidates = selectCandidates(batch, listed);
    candidates.sort((a, b) => a.file.mtimeMs - b.file.mtimeMs || a.file.path.localeCompare(b.file.path));
    for (const { file } of candidates.slice(pullConfig.maxFiles)) {
      report.addSkipped({
        source: file.path,
        reason: "limit",
        detail: `more than maxFiles=${pullConfig.maxFiles}; next run`,
      });
    }
    candidates = candidates.slice(0, pullConfig.maxFiles);
    await mapLimit(candidates, config.sftp.concurrency, (candidate) => pullOne(batch, candidate));
    if (pullConfig.doneRetentionDays > 0 && pullConfig.after === "move") await expireArchive(batch, sftp);
  } catch (err) {
    // Connecting or listing failed: nothing was touched.
    report.addFailed(`sftp://${config.sftp.host}${pullConfig.from}`, err);
    ctx.logger.warn("pull failed", { stream, error: describeError(err) });
  } finally {
    await Promise.all([batch.backlog.drain(), batch.session.close()]);
    await Promise.all([savePulledState(batch, listed), batch.events.drain()]);
    report.setEventsFailed(batch.events.failed);
  }
  const built = report.build();
  ctx.logger.info(giltLine(built), { stream, direction: "pull", files: built.files, bytes: built.bytes });
  return built;
}

/**
 * Logged for each file left on the server until someone acts (FilesRefused in the metrics): the template's log filter
 * and alarm match this exact wording.
 */
export const PULL_REFUSED = "pull left a file on the server: it needs an operator";

/**
 * How recent a modification must be for a file to be watched for stableCheckMs: minAgeSeconds plus five minutes. A
 * file a partner is still writing has a fresh mtime, unless the partner's clock is behind ours; five minutes covers
 * such skew well beyond what time sync allows, and spares the watch (and its wait) for the usual file that has sat
 * in the folder since the last run.
 */
function recentMs(pullConfig: PullConfig): number {
  return pullConfig.minAgeSeconds * 1000 + STABLE_WATCH_MARGIN_MS;
}
const STABLE_WATCH_MARGIN_MS = 5 * 60 * 1000;

/** What every file of one stream's pull shares. */
interface PullBatch {
  ctx: EngineContext;
  stream: string;
  config: StreamConfig;
  pullConfig: PullConfig;
  options: PullOptions;
  report: StreamReportBuilder;
  session: StreamSession;
  doneDir: string;
  destPrefix: string;
  trigger: NonNullable<Receipt["trigger"]>;
  backlog: Backlog;
  /** after: leave only: the files pulled before, by path, size and mtime. */
  pulled?: PulledState;
  /** Epoch ms (real time) until which a file must be seen unchanged: the listing time + stableCheckMs. */
  stableUntil?: number;
  events: EventOutbox;
}

/** A remote path fit for a report line and a log: control characters shown escaped, not acted on. */
function printable(path: string): string {
  // eslint-disable-next-line no-control-regex
  return path.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * The listed files worth taking now. One file the bridge will not turn into a key (a backslash, a control character
 * in its name) is reported and left where it is; it never stops the others.
 */
function selectCandidates(batch: PullBatch, listed: RemoteFile[]): Candidate[] {
  const { pullConfig, report, ctx } = batch;
  const now = ctx.clock();
  const candidates: Candidate[] = [];
  for (const file of listed) {
    let relative: string;
    try {
      relative = remoteRelative(pullConfig.from, file.path);
    } catch (err) {
      report.addSkipped({
        source: printable(file.path),
        reason: "unsafe-name",
        detail: `${describeError(err).message.replace(/^refusing key "(?:[^"\\]|\\.)*": /, "")}; left on the server, rename it there to pull it`,
      });
      ctx.logger.warn(PULL_REFUSED, { stream: batch.stream, source: printable(file.path), reason: "unsafe-name" });
      continue;
    }
    if (batch.pulled?.has(file.path, file.size, file.mtimeMs)) {
      // after: leave keeps every pulled file on the server: counted, not listed, or each run would list them all.
      report.addAlreadyPulled();
    } else if (matchesPatterns(file.name, pullConfig.ignore)) {
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
        detail: `modified ${Math.round((now - file.mtimeMs) / 1000)} s ago, minAgeSeconds is ${pullConfig.minAgeSeconds}`,
      });
    } else {
      candidates.push({ file, relative });
    }
  }
  return candidates;
}

/** One file into S3: resolve the key (onConflict), stream and verify the copy, archive the source, write the receipt. */
async function pullOne(batch: PullBatch, { file, relative }: Candidate): Promise<void> {
  const { ctx, stream, config, pullConfig, options, report } = batch;
  if (options.deadline !== undefined && ctx.clock() >= options.deadline) {
    return report.addSkipped({ source: file.path, reason: "deadline", detail: "left for the next run" });
  }
  const started = ctx.clock();
  let active: SftpSession | undefined;
  try {
    const natural = batch.destPrefix + relative;
    const partSize = Math.max(ctx.upload.partSize ?? DEFAULT_PART_SIZE, Math.ceil(file.size / MAX_PARTS));
    // A file that fits in one part is put with If-None-Match and only a taken key costs a look (its bytes are still
    // in memory to go elsewhere); a larger one looks first, as its parts cannot be moved to another key.
    const lookFirst = pullConfig.onConflict !== "overwrite" && file.size > partSize;
    const placed = lookFirst
      ? await destinationKey(batch, file, relative, natural)
      : { key: natural, ifAbsent: pullConfig.onConflict !== "overwrite" };
    active = await batch.session.get();
    const hash = createHash("sha256");
    // The archive's folder and free name are looked up while the file travels, not after it.
    const doneProbe = pullConfig.after === "move" ? probeDoneName(active, batch.doneDir, file, relative) : undefined;
    doneProbe?.catch(() => undefined);
    // The reader fails the stream if the file is no longer as listed once read (a partner still writing), which aborts
    // the upload before S3 completes it, so S3 never shows a torn copy. pipeline() ties reader, hash and upload
    // together: an aborted upload also closes the remote handle, and a read error reaches the upload.
    const body = pipeline(
      active.read(file.path, file.size, {
        unchanged: {
          size: file.size,
          mtimeMs: file.mtimeMs,
          // Watched for stableCheckMs only when modified lately (by our clock); long-quiet files are checked once read.
          notBefore: ctx.clock() - file.mtimeMs < recentMs(pullConfig) ? batch.stableUntil : undefined,
        },
      }),
      new HashTap(hash),
      () => undefined,
    );
    const uploaded = await ctx.s3.upload(config.s3.bucket, placed.key, body, {
      ...ctx.upload,
      // S3 takes at most 10,000 parts: very large files need larger ones.
      partSize,
      metadata: sourceMetadata(stream, file),
      // Never replace an earlier delivery, not even one that appeared since a look; "overwrite" means replace.
      ifAbsent: placed.ifAbsent,
      resolveConflict: () => destinationKey(batch, file, relative, natural),
    });
    const key = uploaded.key;
    // S3's own answer verifies a single-part upload (see S3UploadResult); anything else is checked with a HEAD.
    const stored =
      uploaded.contentVerified && uploaded.bytes === file.size
        ? { size: uploaded.bytes, eTag: uploaded.eTag, versionId: uploaded.versionId }
        : await ctx.s3.head(config.s3.bucket, key);
    if (!stored || stored.size !== file.size) {
      throw new VerifyError(
        `pull verify s3://${config.s3.bucket}/${key}: S3 has ${stored?.size ?? "no object"}, source ${file.path} has ${file.size} bytes; source left in place`,
        { stream, key, path: file.path },
      );
    }
    const sha256 = hash.digest("hex");
    const archived = await archive(active, pullConfig, batch.doneDir, file, relative, new Date(ctx.clock()), doneProbe);
    batch.pulled?.record(file.path, {
      size: file.size,
      mtimeMs: file.mtimeMs,
      key,
      pulledAt: new Date(ctx.clock()).toISOString(),
    });
    const finished = ctx.clock();
    const versionId = uploaded.versionId ?? stored.versionId;
    const receipt: Receipt = {
      stream,
      direction: "pull",
      source: {
        host: config.sftp.host,
        path: file.path,
        size: file.size,
        mtime: new Date(file.mtimeMs).toISOString(),
      },
      destination: {
        bucket: config.s3.bucket,
        key,
        eTag: stored.eTag,
        ...(versionId === undefined ? {} : { versionId }),
      },
      bytes: file.size,
      sha256,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      attempt: 1,
      requestId: ctx.requestId,
      trigger: batch.trigger,
    };
    // Copied, verified and archived: the receipt is written in the background while this worker starts the next file;
    // the file is reported moved once it is.
    await batch.backlog.add(async () => {
      try {
        await ctx.receipts.write(receipt, relative);
        report.addMoved({
          source: file.path,
          destination: `s3://${config.s3.bucket}/${key}`,
          bytes: file.size,
          sha256,
          durationMs: finished - started,
        });
        batch.events.add({ detailType: "File Pulled", detail: receipt });
        ctx.logger.info("pulled", { stream, source: file.path, destination: key, bytes: file.size, archived });
      } catch (err) {
        failPull(batch, file.path, err);
      }
    });
  } catch (err) {
    if (err instanceof VerifyError && err.context.changed === true) {
      // Still being written: nothing reached S3 and the file stays; a later run takes it whole.
      return report.addSkipped({
        source: file.path,
        reason: "growing",
        detail: `size or mtime changed since it was listed (watched for at least ${pullConfig.stableCheckMs} ms); next run`,
      });
    }
    if (err instanceof ConflictSkipped) {
      ctx.logger.warn(PULL_REFUSED, { stream, source: file.path, reason: "exists" });
      return report.addSkipped({ source: file.path, reason: "exists", detail: err.message });
    }
    failPull(batch, file.path, err);
    if (active) await batch.session.discard(active, err);
  }
}

function failPull(batch: PullBatch, source: string, err: unknown): void {
  const { ctx, stream, report } = batch;
  report.addFailed(source, err);
  batch.events.add(failedEvent(stream, "pull", source, describeError(err), ctx.clock(), ctx.requestId));
  ctx.logger.warn("pull failed", { stream, source, error: describeError(err) });
}

/** onConflict: skip, met: the file is left on the server and reported skipped, not failed. */
class ConflictSkipped extends S3Error {
  constructor(message: string, context: ErrorContext) {
    super("S3_OBJECT_EXISTS", message, { context });
  }
}

/** What a pulled object carries, so a later pull can tell its own earlier copy from another delivery. */
function sourceMetadata(stream: string, file: RemoteFile): Record<string, string> {
  return {
    "bridge-stream": stream,
    "bridge-source": encodeURIComponent(file.path),
    "bridge-source-size": String(file.size),
    "bridge-source-mtime": String(file.mtimeMs),
  };
}

/**
 * Where a file goes when its natural key is (or may be) taken. The natural key itself when it is free, or when it holds
 * this very file: same remote path, size and mtime, and no receipt (an earlier run copied it and was interrupted
 * before archiving; a completed pull has a receipt, so a same-sized file reusing the name within the second of the
 * mtime is still told apart).
 * Otherwise the stream's onConflict decides: a time-stamped key (rename), a skip or a failure. `ifAbsent`: the key was
 * free when looked at, so the upload insists it still is.
 */
async function destinationKey(
  batch: PullBatch,
  file: RemoteFile,
  relative: string,
  key: string,
): Promise<{ key: string; ifAbsent: boolean }> {
  const { ctx, config, pullConfig } = batch;
  const bucket = config.s3.bucket;
  const existing = await ctx.s3.head(bucket, key);
  if (!existing) return { key, ifAbsent: true };
  const meta = existing.metadata ?? {};
  const same = sourceMetadata(batch.stream, file);
  if (
    meta["bridge-source"] === same["bridge-source"] &&
    meta["bridge-source-size"] === same["bridge-source-size"] &&
    meta["bridge-source-mtime"] === same["bridge-source-mtime"] &&
    !(await ctx.receipts.list(batch.stream, { direction: "pull", relative })).some((r) => r.destination.key === key)
  ) {
    return { key, ifAbsent: false };
  }
  const earlier = `s3://${bucket}/${key} already holds an earlier delivery`;
  const context = { bucket, key, path: file.path };
  if (pullConfig.onConflict === "skip") {
    throw new ConflictSkipped(`${earlier} (onConflict: skip); the file stays on the server`, context);
  }
  if (pullConfig.onConflict === "fail") {
    throw new S3Error(
      "S3_OBJECT_EXISTS",
      `pull ${file.path}: ${earlier}; onConflict is fail, so the file stays on the server`,
      { context },
    );
  }
  const dir = key.slice(0, key.lastIndexOf("/") + 1);
  const name = await doneName(
    key.slice(dir.length),
    new Date(ctx.clock()),
    async (candidate) => (await ctx.s3.head(bucket, dir + candidate)) !== undefined,
  );
  ctx.logger.warn("pull: the S3 key holds an earlier delivery; keeping both", {
    stream: batch.stream,
    source: file.path,
    existing: key,
    destination: dir + name,
  });
  return { key: dir + name, ifAbsent: true };
}

async function archive(
  sftp: SftpSession,
  pullConfig: PullConfig,
  doneDir: string,
  file: RemoteFile,
  relative: string,
  at: Date,
  nameTaken?: Promise<boolean>,
): Promise<string> {
  if (pullConfig.after === "delete") {
    await sftp.remove(file.path);
    return "deleted";
  }
  if (pullConfig.after === "leave") return "left in place";
  const dir = posix.join(doneDir, posix.dirname(relative));
  if (!nameTaken) await sftp.mkdirp(dir);
  const name = await doneName(file.name, at, async (candidate) =>
    candidate === file.name && nameTaken
      ? await nameTaken
      : (await sftp.stat(posix.join(dir, candidate))) !== undefined,
  );
  const target = posix.join(dir, name);
  // Never replace: an earlier archived copy with the same name is a different delivery.
  await sftp.rename(file.path, target, false);
  // A move keeps the partner's mtime; archive retention counts from the archiving, so the archive time is stamped.
  if (pullConfig.doneRetentionDays > 0) await sftp.setTimes(target, at);
  return target;
}

/** Makes the archive's folder and asks whether the file's own name is taken there: the first question doneName asks. */
async function probeDoneName(sftp: SftpSession, doneDir: string, file: RemoteFile, relative: string): Promise<boolean> {
  const dir = posix.join(doneDir, posix.dirname(relative));
  await sftp.mkdirp(dir);
  return (await sftp.stat(posix.join(dir, file.name))) !== undefined;
}

function pulledStateLocation(batch: PullBatch): { bucket: string; key: string } {
  const { ctx, stream } = batch;
  return { bucket: ctx.receipts.bucketFor(stream), key: `${ctx.config.receipts.prefix}${stream}/pulled-state.json` };
}

async function loadPulledState(batch: PullBatch): Promise<PulledState> {
  const { bucket, key } = pulledStateLocation(batch);
  return PulledState.load(batch.ctx.s3, bucket, key);
}

/**
 * Saves what a leave-in-place pull took, forgetting files no longer listed; when nothing could be listed, nothing is
 * forgotten. A failure to save is reported: the next run would pull those files again.
 */
async function savePulledState(batch: PullBatch, listed: RemoteFile[] | undefined): Promise<void> {
  const state = batch.pulled;
  if (!state) return;
  try {
    if (listed) state.prune(new Set(listed.map((f) => f.path)));
    await state.save();
  } catch (err) {
    batch.report.addFailed(
      `s3://${state.bucket}/${state.key}`,
      new S3Error(
        "S3_OPERATION_FAILED",
        `pull ${batch.stream}: could not save which files were pulled (${describeError(err).message}); the next run may pull them again`,
        { cause: err, context: { bucket: state.bucket, key: state.key }, retryable: true },
      ),
    );
  }
}

/**
 * pull.doneRetentionDays: archived files older than that (by their archive time, stamped as their mtime when they were
 * moved) are deleted from the done dir. Reported one by one; a failure is logged and left for the next run, never a
 * failure of the pull.
 */
async function expireArchive(batch: PullBatch, sftp: SftpSession): Promise<void> {
  const { ctx, pullConfig, report, stream } = batch;
  const cutoff = ctx.clock() - pullConfig.doneRetentionDays * 86_400_000;
  let archived: RemoteFile[];
  try {
    archived = await listFiles(sftp, batch.doneDir, true, []);
  } catch (err) {
    if (err instanceof BridgeError && /no such file/i.test(err.message)) return;
    ctx.logger.warn("could not list the done dir for retention", { stream, error: describeError(err) });
    return;
  }
  for (const file of archived) {
    if (file.mtimeMs >= cutoff) continue;
    try {
      await sftp.remove(file.path);
      const ageSeconds = Math.round((ctx.clock() - file.mtimeMs) / 1000);
      report.addCleaned({ path: file.path, bytes: file.size, ageSeconds, reason: "archive-expired" });
      ctx.logger.info("removed an archived file past doneRetentionDays", { stream, path: file.path, ageSeconds });
    } catch (err) {
      ctx.logger.warn("could not remove an expired archived file", {
        stream,
        path: file.path,
        error: describeError(err),
      });
    }
  }
}

/** Hashes the bytes on their way to S3 (receipts carry the SHA-256). */
class HashTap extends Transform {
  constructor(private readonly hash: Hash) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    callback(null, chunk);
  }
}
