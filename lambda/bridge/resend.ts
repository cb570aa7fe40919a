import { posix } from "node:path";
import type { EngineContext, RunOptions } from "./context";
import { BridgeError, describeError } from "./errors";
import { doneDirOf, matchesPatterns, relativeKey, remoteRelative } from "./paths";
import { listFiles } from "./listing";
import { pushSourcePrefix, requireStream } from "./routing";
import { push, type PushItem } from "./push";
import { StreamReportBuilder, type SkippedFile, type StreamReport } from "./report";
import { StreamSession } from "./session";

/**
 * Resend: what an operator does when a partner says "we never got it". S3 -> SFTP pushes the chosen objects again
 * (forced past their receipts, recorded as resends); SFTP -> S3 moves the chosen files out of the done dir so the
 * next pull takes them. Dry run is the default and only lists, with sizes and earlier deliveries.
 */
export interface ResendSelection {
  stream: string;
  direction: "push" | "pull";
  /** Push: keys relative to the stream's push source (or full keys under it). Pull: paths relative to the done dir. */
  keys?: string[];
  /** Relative prefix under the push source / done dir. */
  prefix?: string;
  /** ISO times bounding LastModified (push) or the archived file's mtime (pull). */
  since?: string;
  until?: string;
  dryRun?: boolean;
}

function invalid(message: string): BridgeError {
  return new BridgeError("REQUEST_INVALID", `resend: ${message}`);
}

function window(sel: ResendSelection): { since?: number; until?: number } {
  const parse = (v: string | undefined, field: string) => {
    if (v === undefined) return undefined;
    const t = Date.parse(v);
    if (Number.isNaN(t)) throw invalid(`${field} ${JSON.stringify(v)} is not an ISO date/time`);
    return t;
  };
  return { since: parse(sel.since, "since"), until: parse(sel.until, "until") };
}

function selects(
  sel: ResendSelection,
  relative: string,
  time: number | undefined,
  w: { since?: number; until?: number },
): boolean {
  if (sel.keys && !sel.keys.includes(relative)) return false;
  if (sel.prefix !== undefined && !relative.startsWith(sel.prefix)) return false;
  if (w.since !== undefined && (time === undefined || time < w.since)) return false;
  if (w.until !== undefined && (time === undefined || time > w.until)) return false;
  return true;
}

export async function resend(
  ctx: EngineContext,
  sel: ResendSelection,
  options: RunOptions = {},
): Promise<{ streams: StreamReport[]; unrouted: SkippedFile[] }> {
  const config = requireStream(ctx.config, sel.stream);
  if (!sel.keys?.length && sel.prefix === undefined && sel.since === undefined && sel.until === undefined) {
    throw invalid("choose what to resend: keys, a prefix, or a since/until window (refusing to resend everything)");
  }
  const w = window(sel);
  if (sel.direction === "push") {
    const source = pushSourcePrefix(config);
    if (source === undefined) throw invalid(`stream ${sel.stream} has no push section`);
    // Full keys are accepted too; normalise them to the relative form used everywhere else.
    const normalised = { ...sel, keys: sel.keys?.map((k) => (k.startsWith(source) ? relativeKey(k, source) : k)) };
    const items: (PushItem & { size: number })[] = [];
    for await (const obj of ctx.s3.list(config.s3.bucket, source + (sel.prefix ?? ""))) {
      if (obj.key.endsWith("/")) continue;
      const relative = obj.key.slice(source.length);
      if (selects(normalised, relative, obj.lastModified?.getTime(), w))
        items.push({ bucket: obj.bucket, key: obj.key, size: obj.size });
    }
    if (sel.dryRun !== false) {
      const report = new StreamReportBuilder(sel.stream, "push", ctx.clock);
      for (const item of items) {
        const relative = item.key.slice(source.length);
        const receipts = await ctx.receipts.list(sel.stream, { direction: "push", relative });
        report.addPlanned({
          source: `s3://${item.bucket}/${item.key}`,
          destination: posix.join(config.push!.to, relative),
          bytes: item.size,
          deliveries: receipts.map((r) => ({ finishedAt: r.finishedAt, sha256: r.sha256, trigger: r.trigger })),
        });
      }
      return { streams: [report.build()], unrouted: [] };
    }
    return push(ctx, items, { ...options, force: true, stream: sel.stream, trigger: "resend" });
  }

  const pullConfig = config.pull;
  if (!pullConfig) throw invalid(`stream ${sel.stream} has no pull section`);
  const report = new StreamReportBuilder(sel.stream, "pull", ctx.clock);
  const session = new StreamSession(sel.stream, config, ctx.credentials, ctx.connect, ctx.logger);
  const doneDir = doneDirOf(pullConfig);
  try {
    const sftp = await session.get();
    for (const file of await listFiles(sftp, doneDir, true)) {
      const relative = remoteRelative(doneDir, file.path);
      if (!selects(sel, relative, file.mtimeMs, w)) continue;
      const original = posix.join(posix.dirname(relative), originalName(posix.basename(relative)));
      let destination = posix.join(pullConfig.from, original);
      if (destination !== posix.join(pullConfig.from, relative) && (await sftp.stat(destination))) {
        destination = posix.join(pullConfig.from, relative);
      }
      if (!matchesPatterns(original, pullConfig.patterns)) {
        report.addSkipped({
          source: file.path,
          reason: "pattern",
          detail: "would not be pulled again: it does not match pull.patterns",
        });
        continue;
      }
      if (sel.dryRun !== false) {
        const receipts = await ctx.receipts.list(sel.stream, { direction: "pull", relative: original });
        report.addPlanned({
          source: file.path,
          destination,
          bytes: file.size,
          deliveries: receipts.map((r) => ({ finishedAt: r.finishedAt, sha256: r.sha256, trigger: r.trigger })),
        });
        continue;
      }
      try {
        if (await sftp.stat(destination))
          throw invalid(`${destination} already exists in the pull folder; not overwriting it`);
        await sftp.mkdirp(posix.dirname(destination));
        await sftp.rename(file.path, destination, false);
        report.addMoved({ source: file.path, destination, bytes: file.size, durationMs: 0 });
      } catch (err) {
        report.addFailed(file.path, err);
        ctx.logger.warn("resend failed", { stream: sel.stream, source: file.path, error: describeError(err) });
      }
    }
  } catch (err) {
    report.addFailed(doneDir, err);
  } finally {
    await session.close();
  }
  return { streams: [report.build()], unrouted: [] };
}

/** Undoes doneName's collision stamp: `report.20261123T190405Z-2.csv` -> `report.csv`. */
export function originalName(name: string): string {
  return name.replace(/\.\d{8}T\d{6}Z(?:-\d+)?(?=\.[^.]*$|$)/, "");
}
