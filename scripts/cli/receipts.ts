import {
  normalizePrefix,
  pullDestPrefix,
  pushSourcePrefix,
  relativeKey,
  remoteRelative,
  requireStream,
  type Direction,
  type Receipt,
  type StreamConfig,
} from "../../lambda/bridge";
import { UsageError, bridgeFor, cliLogger, openConfig, plural, size, type Globals, type Io } from "./shared";

export const receiptsHelp = `Usage: bridge receipts <stream> [--key <K>] [--since <T>] [--direction push|pull] [--json]

Lists what the stream delivered, from its receipts in S3 (one per verified transfer): when, which way, from where
to where, bytes, SHA-256 and why (event, schedule, invoke, force, resend). Oldest first.

Options:
  --key <K>          one file: its S3 key (s3://bucket/key or the key), its remote path, or its path relative to
                     the stream's folders (outbound/a.xml under push.from is "a.xml")
  --since <T>        only deliveries finished at or after T: an ISO date/time (2026-11-23, 2026-11-23T10:00Z)
                     or an age (90m, 24h, 7d)
  --direction <d>    push (S3 -> SFTP) or pull (SFTP -> S3); default both
  --json             the receipts as a JSON array (full SHA-256, request ids, attempts)`;

/** An ISO time or an age like 24h. */
export function parseSince(value: string, now = Date.now()): Date {
  const age = /^(\d+)\s*(s|m|h|d)$/.exec(value.trim());
  if (age) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[age[2] as "s" | "m" | "h" | "d"];
    return new Date(now - Number(age[1]) * unit);
  }
  const t = Date.parse(value);
  if (Number.isNaN(t))
    throw new UsageError(`--since ${JSON.stringify(value)}: give an ISO date/time or an age like 24h`);
  return new Date(t);
}

/**
 * The relative path receipts of `direction` file `raw` under: an S3 key (with or without s3://bucket/) below the
 * stream's S3 side, a remote path below its SFTP side, or already a relative path. Undefined when it cannot be one.
 */
function relativeFor(stream: StreamConfig, direction: Direction, raw: string): string | undefined {
  const s3Root = direction === "push" ? pushSourcePrefix(stream) : pullDestPrefix(stream);
  const remoteRoot = direction === "push" ? stream.push?.to : stream.pull?.from;
  if (s3Root === undefined || remoteRoot === undefined) return undefined;
  const bucketPrefix = `s3://${stream.s3.bucket}/`;
  const key = raw.startsWith(bucketPrefix) ? raw.slice(bucketPrefix.length) : raw;
  try {
    if (key.startsWith("s3://")) return undefined;
    if (key.startsWith("/")) return remoteRelative(remoteRoot, key);
    if (s3Root && key.startsWith(normalizePrefix(s3Root))) return relativeKey(key, s3Root);
    return key;
  } catch {
    return undefined; // Outside this side of the stream.
  }
}

function endpointText(side: Receipt["source"] | Receipt["destination"]): string {
  if (side.bucket) return `s3://${side.bucket}/${side.key}`;
  return `${side.host ?? "sftp"}:${side.path}`;
}

export async function receiptsCommand(
  positionals: string[],
  options: { key?: string; since?: string; direction?: string; json?: boolean },
  globals: Globals,
  io: Io,
): Promise<number> {
  if (positionals.length !== 1) throw new UsageError('receipts takes one stream name; see "bridge receipts --help"');
  const name = positionals[0] as string;
  if (options.direction !== undefined && options.direction !== "push" && options.direction !== "pull") {
    throw new UsageError(`--direction must be push or pull, not ${JSON.stringify(options.direction)}`);
  }
  const since = options.since === undefined ? undefined : parseSince(options.since);
  const opened = await openConfig(globals, io);
  const stream = requireStream(opened.config, name);
  if (!opened.config.receipts.enabled) {
    throw new UsageError(
      `receipts are turned off in ${opened.location} (receipts.enabled: false); nothing was recorded`,
    );
  }
  const bridge = bridgeFor(opened, cliLogger(io, globals.debug));
  const directions = (options.direction ? [options.direction] : ["push", "pull"]) as Direction[];

  const found: Receipt[] = [];
  for (const direction of directions) {
    if (direction === "push" ? !stream.push : !stream.pull) continue;
    let relative: string | undefined;
    if (options.key !== undefined) {
      relative = relativeFor(stream, direction, options.key);
      if (relative === undefined) continue;
    }
    found.push(...(await bridge.receipts(name, { direction, relative, since })));
  }
  found.sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));

  if (options.json) {
    io.out(JSON.stringify(found, null, 2));
    return 0;
  }
  for (const r of found) {
    const sha = options.key === undefined ? `${r.sha256.slice(0, 12)}…` : r.sha256;
    io.out(
      `${r.finishedAt}  ${r.direction.padEnd(4)}  ${endpointText(r.source)} -> ${endpointText(r.destination)}  ` +
        `${size(r.bytes)}  sha256 ${sha}  ${r.trigger ?? "event"}${r.attempt > 1 ? ` (attempt ${r.attempt})` : ""}`,
    );
  }
  const where = [options.key && `for ${options.key}`, since && `since ${since.toISOString()}`]
    .filter(Boolean)
    .join(" ");
  io.out(`${plural(found.length, "receipt")} for stream ${name}${where ? ` ${where}` : ""}`);
  return 0;
}
