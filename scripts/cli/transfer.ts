import {
  pushSourcePrefix,
  requireStream,
  routeObject,
  type PushItem,
  type RunReport,
  type StreamConfig,
} from "../../lambda/bridge";
import {
  FailedError,
  UsageError,
  bridgeFor,
  cliLogger,
  openConfig,
  plural,
  size,
  type Globals,
  type Io,
  type Opened,
} from "./shared";

export const pushHelp = `Usage: bridge push <stream | s3://bucket/key | s3://bucket/prefix/>... [--force] [--config <file>]

Pushes S3 objects to their streams' SFTP servers now, as the Lambda would on an S3 event, and prints a line per file
and a summary. A stream name pushes every object under its push source (s3.prefix + push.from); an s3:// URI ending
in "/" pushes every object below it that a stream claims. Objects whose receipt shows they were already delivered
are skipped as duplicates.

Options:
  --force    deliver again even when a receipt shows the object was already delivered
Exit 0 when every file was delivered or skipped, 2 when any failed, 1 for usage or config problems.
S3 is reached through the standard AWS variables (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_S3, ...).`;

export const pullHelp = `Usage: bridge pull <stream>... [--config <file>]

Pulls now what each stream's SFTP folder (pull.from) holds into S3, as a scheduled run would, then moves each
original to the done folder (or deletes it, per pull.after). Prints a line per file and a summary.
Exit 0 when nothing failed, 2 when any file failed, 1 for usage or config problems.`;

const S3_URI = /^s3:\/\/([^/]+)(?:\/(.*))?$/;

/** Credentials that cannot be read are a setup problem: say so once, before anything moves, not once per file. */
async function checkCredentials(opened: Opened, streams: string[]): Promise<void> {
  for (const name of streams) {
    const stream = requireStream(opened.config, name);
    await opened.runtime.credentials.resolve(stream.sftp.credentials, name);
  }
}

function progress(opened: Opened, io: Io, globals: Globals) {
  return cliLogger(io, globals.debug, (message, fields) => {
    const f = fields as { stream?: string; source?: string; destination?: string; bytes?: number; archived?: string };
    if (message === "pushed") io.out(`  pushed  ${f.source} -> ${f.destination}  (${size(f.bytes ?? 0)})`);
    if (message === "pulled") {
      const bucket = opened.config.streams[f.stream ?? ""]?.s3.bucket;
      const after = f.archived === "deleted" ? "original deleted" : `original moved to ${f.archived}`;
      io.out(`  pulled  ${f.source} -> s3://${bucket}/${f.destination}  (${size(f.bytes ?? 0)}; ${after})`);
    }
  });
}

/** Skips and failures after the run (the progress lines showed what moved), one summary line per stream. */
function summarise(report: RunReport, io: Io): number {
  let failed = 0;
  for (const s of report.streams) {
    for (const f of s.skipped) io.out(`  skipped ${f.source}: ${f.reason}${f.detail ? ` (${f.detail})` : ""}`);
    for (const f of s.failed) io.out(`  FAILED  ${f.source}: ${f.message}`);
    for (const f of s.cleaned ?? []) {
      const what =
        f.reason === "stale-temp"
          ? `a temporary file of an interrupted push (${size(f.bytes)}, ${f.ageSeconds} s old)`
          : `archived ${Math.floor(f.ageSeconds / 86_400)} days ago, past pull.doneRetentionDays (${size(f.bytes)})`;
      io.out(`  removed ${f.path}: ${what}`);
    }
    if (s.alreadyPulled) io.out(`  ${plural(s.alreadyPulled, "file")} left in place and unchanged since pulled`);
    failed += s.failed.length;
    io.out(
      `${s.stream} ${s.direction}: ${plural(s.files, "file")} moved (${size(s.bytes)}), ` +
        `${s.skipped.length} skipped, ${s.failed.length} failed`,
    );
  }
  for (const f of report.unrouted) io.out(`  skipped ${f.source}: ${f.detail ?? f.reason}`);
  if (failed) throw new FailedError(`${plural(failed, "file")} failed (listed above)`);
  return 0;
}

export async function pushCommand(
  positionals: string[],
  options: { force?: boolean },
  globals: Globals,
  io: Io,
): Promise<number> {
  if (!positionals.length) throw new UsageError('push needs a stream name or an s3:// URI; see "bridge push --help"');
  const opened = await openConfig(globals, io);
  const bridge = bridgeFor(opened, progress(opened, io, globals));
  const items: PushItem[] = [];
  const listed = async (bucket: string, prefix: string, claimedOnly: boolean) => {
    let found = 0;
    for await (const obj of bridge.listObjects(bucket, prefix)) {
      if (obj.key.endsWith("/")) continue;
      if (claimedOnly && !safeRoute(opened, bucket, obj.key)) continue;
      items.push({ bucket, key: obj.key });
      found++;
    }
    return found;
  };

  for (const arg of positionals) {
    const uri = S3_URI.exec(arg);
    if (!uri) {
      const stream = requireStream(opened.config, arg);
      const prefix = pushSourcePrefix(stream);
      if (prefix === undefined) throw new UsageError(`stream ${arg} has no push section; nothing to push`);
      if (!(await listed(stream.s3.bucket, prefix, false)))
        io.out(`nothing to push under s3://${stream.s3.bucket}/${prefix}`);
      continue;
    }
    const [, bucket, key = ""] = uri as unknown as [string, string, string | undefined];
    if (key === "" || key.endsWith("/")) {
      if (!(await listed(bucket, key, true))) io.out(`nothing any stream pushes under ${arg}`);
      continue;
    }
    if (!safeRoute(opened, bucket, key)) {
      throw new UsageError(
        `no stream pushes ${arg}: its key must be under a stream's s3.prefix + push.from in bucket ${bucket}`,
      );
    }
    items.push({ bucket, key });
  }
  if (!items.length) return 0;

  const streams = [...new Set(items.map((i) => safeRoute(opened, i.bucket, i.key)).filter((s): s is string => !!s))];
  await checkCredentials(opened, streams);
  io.out(`pushing ${plural(items.length, "object")}${options.force ? " (forced past receipts)" : ""}`);
  const report = await bridge.push(items, { force: options.force, trigger: options.force ? "force" : "invoke" });
  return summarise(report, io);
}

/** The stream a key belongs to, or undefined (a key with an unsafe path is the engine's to report, so keep it). */
function safeRoute(opened: Opened, bucket: string, key: string): string | undefined {
  try {
    return routeObject(opened.config, bucket, key)?.stream;
  } catch {
    return Object.entries(opened.config.streams).find(([, s]: [string, StreamConfig]) => {
      const prefix = pushSourcePrefix(s);
      return s.s3.bucket === bucket && prefix !== undefined && key.startsWith(prefix);
    })?.[0];
  }
}

export async function pullCommand(positionals: string[], globals: Globals, io: Io): Promise<number> {
  if (!positionals.length) throw new UsageError('pull needs at least one stream name; see "bridge pull --help"');
  const opened = await openConfig(globals, io);
  for (const name of positionals) {
    const stream = requireStream(opened.config, name);
    if (!stream.pull) throw new UsageError(`stream ${name} has no pull section; nothing to pull`);
  }
  await checkCredentials(opened, positionals);
  const bridge = bridgeFor(opened, progress(opened, io, globals));
  const report = await bridge.pull(positionals, { trigger: "invoke" });
  return summarise(report, io);
}
