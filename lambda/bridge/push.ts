import { createHash } from "node:crypto";
import { posix } from "node:path";
import type { EngineContext, RunOptions } from "./context";
import { Backlog, STREAMS_AT_ONCE, mapLimit } from "./concurrency";
import { BridgeError, describeError } from "./errors";
import { isFolderMarker, matchesPatterns, remotePath } from "./paths";
import { pushSourcePrefix, routeObject } from "./routing";
import { StreamReportBuilder, giltLine, type SkippedFile, type StreamReport } from "./report";
import { unquoteETag } from "./s3";
import { StreamSession } from "./session";
import type { Receipt } from "./receipts";
import type { Acquired, ClaimTarget, ClaimTiming, PushClaim } from "./claims";
import { EventOutbox, failedEvent } from "./file-events";
import type { PushConfig, StreamConfig } from "./config/schema";
import type { SftpSession } from "./sftp";

/**
 * Push: S3 objects to the stream's SFTP folder. Objects are grouped by stream so that each stream's batch shares one
 * SSH connection; within a stream, `sftp.concurrency` files move at once. An object is reported moved only after its
 * remote size was verified and it was renamed into place.
 */

export interface PushItem {
  bucket: string;
  /** The decoded key (adapters decode S3 event keys before handing them in). */
  key: string;
  eTag?: string;
  versionId?: string;
  /** An adapter's handle (an SQS message id), returned on the item's result. */
  ref?: string;
  /** Delivery attempt as the adapter knows it (SQS ApproximateReceiveCount). */
  attempt?: number;
}

export interface PushOptions extends RunOptions {
  /** Deliver even when a receipt shows the same object version was already delivered. */
  force?: boolean;
  /** Restrict to one stream (resend, CLI); keys outside it are reported unrouted. */
  stream?: string;
  trigger?: Receipt["trigger"];
}

export interface PushResult {
  streams: StreamReport[];
  unrouted: SkippedFile[];
}

interface Routed {
  item: PushItem;
  relative: string;
}

export async function push(ctx: EngineContext, items: PushItem[], options: PushOptions = {}): Promise<PushResult> {
  const byStream = new Map<string, Routed[]>();
  const unrouted: SkippedFile[] = [];
  const rejected = new Map<string, { item: PushItem; err: unknown }[]>();

  for (const item of items) {
    if (isFolderMarker(item.key)) {
      unrouted.push({
        source: `s3://${item.bucket}/${item.key}`,
        reason: "directory",
        ...(item.ref === undefined ? {} : { ref: item.ref }),
      });
      continue;
    }
    let route: { stream: string; relative: string } | undefined;
    try {
      route = routeObject(ctx.config, item.bucket, item.key);
    } catch (err) {
      // A key under a stream's prefix that would climb out of the remote root: a clear failure, never a transfer.
      const stream = claimingStream(ctx, item) ?? "(unrouted)";
      const list = rejected.get(stream) ?? [];
      list.push({ item, err });
      rejected.set(stream, list);
      continue;
    }
    if (!route || (options.stream !== undefined && route.stream !== options.stream)) {
      unrouted.push({
        source: `s3://${item.bucket}/${item.key}`,
        reason: "no-stream",
        detail: options.stream
          ? `not under stream ${options.stream}'s push source`
          : "no stream's push source claims this key",
        ...(item.ref === undefined ? {} : { ref: item.ref }),
      });
      continue;
    }
    const list = byStream.get(route.stream) ?? [];
    list.push({ item, relative: route.relative });
    byStream.set(route.stream, list);
  }

  // Streams are independent partners: move them side by side, each over its own connection.
  const names = [...new Set([...rejected.keys(), ...byStream.keys()])];
  const streams = await mapLimit(names, STREAMS_AT_ONCE, (stream) =>
    pushStream(ctx, stream, byStream.get(stream) ?? [], rejected.get(stream) ?? [], options),
  );
  return { streams, unrouted };
}

function claimingStream(ctx: EngineContext, item: PushItem): string | undefined {
  return Object.entries(ctx.config.streams).find(([, s]) => {
    const prefix = pushSourcePrefix(s);
    return s.s3.bucket === item.bucket && prefix !== undefined && item.key.startsWith(prefix);
  })?.[0];
}

async function pushStream(
  ctx: EngineContext,
  stream: string,
  items: Routed[],
  rejected: { item: PushItem; err: unknown }[],
  options: PushOptions,
): Promise<StreamReport> {
  const report = new StreamReportBuilder(stream, "push", ctx.clock);
  for (const { item, err } of rejected) report.addFailed(`s3://${item.bucket}/${item.key}`, err, item.ref);
  const config = ctx.config.streams[stream];
  const pushConfig = config?.push;
  if (!config || !pushConfig) return report.build();
  const batch: PushBatch = {
    ctx,
    stream,
    config,
    pushConfig,
    options,
    report,
    session: new StreamSession(stream, config, ctx.credentials, ctx.connect, ctx.logger),
    trigger: options.trigger ?? (options.force ? "force" : "event"),
    backlog: new Backlog(config.sftp.concurrency),
    sweeper: new TempSweeper(ctx, stream, pushConfig, report),
    events: new EventOutbox(config.events ? ctx.events : undefined, ctx.logger, stream),
  };

  try {
    await mapLimit(mergeDuplicates(items, report), config.sftp.concurrency, (routed) => pushOne(batch, routed));
  } finally {
    await Promise.all([batch.backlog.drain(), batch.sweeper.drain()]);
    await Promise.all([batch.session.close(), batch.events.drain()]);
    report.setEventsFailed(batch.events.failed);
  }
  const built = report.build();
  ctx.logger.info(giltLine(built), { stream, direction: "push", files: built.files, bytes: built.bytes });
  return built;
}

/** What every file of one stream's batch shares. */
interface PushBatch {
  ctx: EngineContext;
  stream: string;
  config: StreamConfig;
  pushConfig: PushConfig;
  options: PushOptions;
  report: StreamReportBuilder;
  session: StreamSession;
  trigger: NonNullable<Receipt["trigger"]>;
  backlog: Backlog;
  sweeper: TempSweeper;
  events: EventOutbox;
}

/**
 * The same object version twice in one batch (an event delivered twice into one SQS batch, a key listed twice) is
 * pushed once; the copies are reported as duplicates with their own refs, so their messages are not retried.
 */
function mergeDuplicates(items: Routed[], report: StreamReportBuilder): Routed[] {
  const seen = new Set<string>();
  const kept: Routed[] = [];
  for (const routed of items) {
    const { item } = routed;
    const id = [item.bucket, item.key, item.versionId ?? "", unquoteETag(item.eTag) ?? ""].join("\0");
    if (seen.has(id)) {
      report.addSkipped({
        source: `s3://${item.bucket}/${item.key}`,
        reason: "duplicate",
        detail: "the same object version is earlier in this batch",
        ...(item.ref === undefined ? {} : { ref: item.ref }),
      });
      continue;
    }
    seen.add(id);
    kept.push(routed);
  }
  return kept;
}

/** One object to the partner: claim its version, stream it into place, verify, then record the receipt. */
async function pushOne(batch: PushBatch, { item, relative }: Routed): Promise<void> {
  const { ctx, stream, pushConfig, options, report } = batch;
  const source = `s3://${item.bucket}/${item.key}`;
  const ref = item.ref === undefined ? {} : { ref: item.ref };
  if (!matchesPatterns(relative, pushConfig.patterns)) {
    return report.addSkipped({
      source,
      reason: "pattern",
      detail: `does not match ${pushConfig.patterns.join(", ")}`,
      ...ref,
    });
  }
  if (options.deadline !== undefined && ctx.clock() >= options.deadline) {
    // Failed rather than skipped: an SQS message must come back for the next invocation to deliver it.
    return report.addFailed(
      source,
      new BridgeError("DEADLINE_REACHED", `push ${source}: not started, the invocation deadline is near`, {
        retryable: true,
      }),
      item.ref,
    );
  }
  const started = ctx.clock();
  let sftpSession: SftpSession | undefined;
  let claim: PushClaim | undefined;
  let object: OpenedObject | undefined;
  try {
    const destination = remotePath(pushConfig.to, relative);
    const claimed = await openAndClaim(batch, item, relative);
    if (claimed.kind === "delivered") {
      return report.addSkipped({
        source,
        reason: "duplicate",
        detail: `already delivered (ETag ${claimed.eTag})${claimed.waited ? ", by a concurrent run" : ""}`,
        ...ref,
      });
    }
    ({ claim, object } = claimed);
    sftpSession = await batch.session.get();
    const dir = posix.dirname(destination);
    batch.sweeper.sweep(sftpSession, dir);
    const hash = createHash("sha256");
    const { bytes } = await sftpSession.write(destination, object.body, {
      atomic: pushConfig.atomic,
      tempSuffix: pushConfig.tempSuffix,
      expectedSize: object.size,
      hash,
      createDirs: true,
    });
    const sha256 = hash.digest("hex");
    const finished = ctx.clock();
    const receipt: Receipt = {
      stream,
      direction: "push",
      source: {
        bucket: item.bucket,
        key: item.key,
        eTag: object.eTag,
        versionId: object.versionId,
        size: object.size,
      },
      destination: { host: batch.config.sftp.host, path: destination },
      bytes,
      sha256,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      attempt: item.attempt ?? 1,
      requestId: ctx.requestId,
      trigger: batch.trigger,
    };
    // The file is on the partner's side; its receipt (and the optional delete) finishes in the background while this
    // worker starts the next transfer. It is reported moved only once that succeeded.
    const held = claim;
    const version = object;
    await batch.backlog.add(async () => {
      try {
        if (held) {
          const { lost } = await held.complete(receipt);
          if (lost) {
            ctx.logger.warn("push claim lapsed during the transfer; another run may deliver this version too", {
              stream,
              source,
            });
          }
        } else {
          // Unclaimed (forced, or no ETag to claim): the store decides whether this is the version's first receipt.
          await ctx.receipts.write(receipt, relative);
        }
        if (pushConfig.after === "delete") await ctx.s3.delete(item.bucket, item.key, version.versionId);
        report.addMoved({ source, destination, bytes, sha256, durationMs: finished - started, ...ref });
        batch.events.add({ detailType: "File Delivered", detail: receipt });
        ctx.logger.info("pushed", { stream, source, destination, bytes });
      } catch (err) {
        failOne(batch, source, err, item.ref);
      }
    });
  } catch (err) {
    object?.body.destroy();
    await claim?.release();
    failOne(batch, source, err, item.ref);
    if (sftpSession) await batch.session.discard(sftpSession, err);
  }
}

function failOne(batch: PushBatch, source: string, err: unknown, ref: string | undefined): void {
  const { ctx, stream, report } = batch;
  report.addFailed(source, err, ref);
  batch.events.add(failedEvent(stream, "push", source, describeError(err), ctx.clock(), ctx.requestId));
  ctx.logger.warn("push failed", { stream, source, error: describeError(err) });
}

type OpenedObject = Awaited<ReturnType<EngineContext["s3"]["open"]>>;

/**
 * Opens the object and takes the claim of its version (claims.ts), or finds the version already delivered. Without
 * receipts, or when forced, nothing is claimed. When the event named the ETag the claim goes out with the GET rather
 * than after it: one S3 round trip less per file.
 */
async function openAndClaim(
  batch: PushBatch,
  item: PushItem,
  relative: string,
): Promise<
  | { kind: "delivered"; eTag: string; waited: boolean }
  | { kind: "claimed"; claim: PushClaim | undefined; object: OpenedObject }
> {
  const { ctx, stream, options } = batch;
  if (options.force || !ctx.receipts.enabled) {
    return { kind: "claimed", claim: undefined, object: await ctx.s3.open(item.bucket, item.key, item.versionId) };
  }
  const now = ctx.clock();
  const timing: ClaimTiming = {
    expiresAt:
      options.endsAt !== undefined
        ? options.endsAt + CLAIM_CLOCK_SKEW_MS
        : now + ctx.config.receipts.claimLeaseSeconds * 1000,
    waitUntil: Math.min(options.deadline ?? Infinity, now + ctx.config.receipts.claimWaitSeconds * 1000),
  };
  const target = (eTag: string): ClaimTarget => ({
    stream,
    relative,
    bucket: item.bucket,
    key: item.key,
    eTag: unquoteETag(eTag) as string,
    versionId: item.versionId,
  });
  const early = item.eTag === undefined ? undefined : ctx.claims.acquire(target(item.eTag), timing);
  early?.catch(() => undefined);
  let object: OpenedObject;
  try {
    object = await ctx.s3.open(item.bucket, item.key, item.versionId);
  } catch (err) {
    // The object's own error is the news, not the claim's.
    await releaseIfClaimed(early).catch(() => undefined);
    throw err;
  }
  const eTag = unquoteETag(object.eTag);
  try {
    let acquired: Acquired;
    if (early !== undefined && eTag === unquoteETag(item.eTag)) {
      acquired = await early;
    } else {
      // The object changed since the event (or the event had no ETag): what is sent is what must be claimed.
      await releaseIfClaimed(early);
      if (eTag === undefined) return { kind: "claimed", claim: undefined, object };
      acquired = await ctx.claims.acquire(target(eTag), timing);
    }
    if (acquired.kind === "delivered") {
      object.body.destroy();
      return { kind: "delivered", eTag: eTag ?? "", waited: acquired.waited };
    }
    if (acquired.waited) {
      // The body sat unread while we waited; read it afresh, and only if it is still the version claimed.
      object.body.destroy();
      object = await ctx.s3.open(item.bucket, item.key, item.versionId ?? object.versionId);
      if (unquoteETag(object.eTag) !== eTag) {
        object.body.destroy();
        await acquired.claim.release();
        throw new BridgeError(
          "S3_OPERATION_FAILED",
          `push s3://${item.bucket}/${item.key}: the object changed while waiting for another run's claim; retry`,
          { retryable: true, context: { bucket: item.bucket, key: item.key } },
        );
      }
    }
    return { kind: "claimed", claim: acquired.claim, object };
  } catch (err) {
    object.body.destroy();
    throw err;
  }
}

async function releaseIfClaimed(acquiring: Promise<Acquired> | undefined): Promise<void> {
  const acquired = await acquiring;
  if (acquired?.kind === "claimed") await acquired.claim.release();
}

/** Claims outlive the run's end by this much: clocks of different hosts disagree a little. */
const CLAIM_CLOCK_SKEW_MS = 60_000;

/**
 * Removes the bridge's own temporary files (`.<name>.<8 hex><tempSuffix>`) that a killed push left in a destination
 * folder, once per folder per batch, in the background of the batch's first transfer there. Only files untouched for
 * `staleTempSeconds` go: a live transfer writes to its file all the time, and a partner's own files never match the
 * name. Failures are logged, never fatal.
 */
class TempSweeper {
  private readonly swept = new Map<string, Promise<void>>();
  private readonly pattern: RegExp;

  constructor(
    private readonly ctx: EngineContext,
    private readonly stream: string,
    private readonly pushConfig: PushConfig,
    private readonly report: StreamReportBuilder,
  ) {
    const suffix = pushConfig.tempSuffix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    this.pattern = new RegExp(`^\\..+\\.[0-9a-f]{8}${suffix}$`);
  }

  sweep(session: SftpSession, dir: string): void {
    if (!this.pushConfig.atomic || this.pushConfig.staleTempSeconds === 0 || this.swept.has(dir)) return;
    this.swept.set(
      dir,
      this.run(session, dir).catch((err: unknown) =>
        this.ctx.logger.warn("could not clean up stale temporary files", {
          stream: this.stream,
          dir,
          error: describeError(err),
        }),
      ),
    );
  }

  async drain(): Promise<void> {
    await Promise.all(this.swept.values());
  }

  private async run(session: SftpSession, dir: string): Promise<void> {
    const entries = await session.list(dir).catch(() => []);
    const cutoff = this.ctx.clock() - this.pushConfig.staleTempSeconds * 1000;
    for (const entry of entries) {
      if (entry.type !== "file" || !this.pattern.test(entry.name) || entry.mtimeMs > cutoff) continue;
      await session.remove(entry.path);
      const ageSeconds = Math.round((this.ctx.clock() - entry.mtimeMs) / 1000);
      this.report.addCleaned({ path: entry.path, bytes: entry.size, ageSeconds, reason: "stale-temp" });
      this.ctx.logger.warn("removed a stale temporary file of an interrupted push", {
        stream: this.stream,
        path: entry.path,
        bytes: entry.size,
        ageSeconds,
      });
    }
  }
}
