import { createHash } from "node:crypto";
import { posix } from "node:path";
import type { EngineContext, RunOptions } from "./context";
import { Backlog, mapLimit } from "./concurrency";
import { BridgeError, describeError } from "./errors";
import { isFolderMarker, matchesPatterns, remotePath } from "./paths";
import { pushSourcePrefix, routeObject } from "./routing";
import { StreamReportBuilder, giltLine, type SkippedFile, type StreamReport } from "./report";
import { StreamSession } from "./session";
import type { Receipt } from "./receipts";

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

const STREAMS_AT_ONCE = 4;

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

function unquoted(eTag: string | undefined): string | undefined {
  return eTag?.replace(/"/g, "");
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
  const session = new StreamSession(stream, config, ctx.credentials, ctx.connect, ctx.logger);
  const trigger = options.trigger ?? (options.force ? "force" : "event");
  const backlog = new Backlog(config.sftp.concurrency);

  try {
    await mapLimit(items, config.sftp.concurrency, async ({ item, relative }) => {
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
      let sftpSession;
      try {
        const destination = remotePath(pushConfig.to, relative);
        // When the event named the ETag, the receipt check goes out with the GET instead of after it (one S3 round
        // trip less per file); its answer only counts if it is about the version the GET returned.
        const early =
          options.force || item.eTag === undefined
            ? undefined
            : ctx.receipts.hasPushReceipt(stream, relative, item.eTag);
        early?.catch(() => undefined);
        const object = await ctx.s3.open(item.bucket, item.key, item.versionId);
        const duplicate = options.force
          ? false
          : early !== undefined && unquoted(item.eTag) === unquoted(object.eTag)
            ? await early
            : await ctx.receipts.hasPushReceipt(stream, relative, object.eTag);
        if (duplicate) {
          object.body.destroy();
          return report.addSkipped({
            source,
            reason: "duplicate",
            detail: `already delivered (ETag ${object.eTag})`,
            ...ref,
          });
        }
        sftpSession = await session.get();
        await sftpSession.mkdirp(posix.dirname(destination));
        const hash = createHash("sha256");
        const { bytes } = await sftpSession.write(destination, object.body, {
          atomic: pushConfig.atomic,
          tempSuffix: pushConfig.tempSuffix,
          expectedSize: object.size,
          hash,
        });
        const sha256 = hash.digest("hex");
        const finished = ctx.clock();
        // The file is on the partner's side; its receipt (and the optional delete) finishes in the background while
        // this worker starts the next transfer. It is reported moved only once that succeeded, as before.
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
          destination: { host: config.sftp.host, path: destination },
          bytes,
          sha256,
          startedAt: new Date(started).toISOString(),
          finishedAt: new Date(finished).toISOString(),
          attempt: item.attempt ?? 1,
          requestId: ctx.requestId,
          trigger,
        };
        await backlog.add(async () => {
          try {
            // Not forced: the duplicate check above found no receipt, so this is the version's first delivery.
            await ctx.receipts.write(receipt, relative, options.force ? {} : { first: true });
            if (pushConfig.after === "delete") await ctx.s3.delete(item.bucket, item.key, object.versionId);
            report.addMoved({ source, destination, bytes, sha256, durationMs: finished - started, ...ref });
            ctx.logger.info("pushed", { stream, source, destination, bytes });
          } catch (err) {
            report.addFailed(source, err, item.ref);
            ctx.logger.warn("push failed", { stream, source, error: describeError(err) });
          }
        });
      } catch (err) {
        report.addFailed(source, err, item.ref);
        ctx.logger.warn("push failed", { stream, source, error: describeError(err) });
        if (sftpSession) await session.discard(sftpSession, err);
      }
    });
  } finally {
    await Promise.all([backlog.drain(), session.close()]);
  }
  const built = report.build();
  ctx.logger.info(giltLine(built), { stream, direction: "push", files: built.files, bytes: built.bytes });
  return built;
}
