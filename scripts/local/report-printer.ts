// What the local stack prints while it runs: a timestamped line per file moved, failed or skipped, per event the
// function emitted, and per queue message given up on.
import { readFile } from "node:fs/promises";
import type { S3EventRecord, SQSRecord } from "aws-lambda";
import { decodeS3EventKey, type RunReport } from "../../lambda/bridge";
import { findLogEntry, type Invocation } from "./lambda-runtime";

export function line(text: string): string {
  return `${new Date().toTimeString().slice(0, 8)}  ${text}`;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function describeMessage(record: SQSRecord): string {
  try {
    const body = JSON.parse(record.body) as { Records?: S3EventRecord[] };
    const keys = (body.Records ?? []).map((r) => `s3://${r.s3.bucket.name}/${decodeS3EventKey(r.s3.object.key)}`);
    return keys.join(", ") || `message ${record.messageId}`;
  } catch {
    return `message ${record.messageId}`;
  }
}

/** Prints the per-file events the function appended since the last look, one line each. */
export class EventsTail {
  private offset = 0;

  constructor(
    private readonly file: string,
    private readonly out: (line: string) => void,
  ) {}

  async print(): Promise<void> {
    const text = await readFile(this.file, "utf8").catch(() => "");
    if (text.length <= this.offset) return;
    const fresh = text.slice(this.offset, text.lastIndexOf("\n") + 1);
    this.offset += fresh.length;
    for (const raw of fresh.split("\n").filter(Boolean)) {
      const e = JSON.parse(raw) as { "detail-type": string; detail: { stream: string; source?: unknown } };
      const where = e.detail.source as { key?: string; path?: string } | string | undefined;
      const what = typeof where === "string" ? where : (where?.key ?? where?.path ?? "");
      this.out(line(`${e.detail.stream}  event "${e["detail-type"]}"  ${what}`));
    }
  }
}

/**
 * One line per file moved, failed or skipped. Scheduled pulls repeat every few seconds, so a pull's skips and
 * failures are printed when they first appear, not on every run.
 */
export class ReportPrinter {
  /** Per scheduled stream: what its last run reported, by a key without the details that change between runs. */
  private readonly lastPull = new Map<string, Set<string>>();

  constructor(private readonly out: (line: string) => void) {}

  invocation(event: unknown, invocation: Invocation): void {
    const scheduled = isSchedule(event);
    if (invocation.error) {
      const text = `invocation failed: ${invocation.error.errorType}: ${invocation.error.errorMessage}`;
      if (scheduled) this.once(scheduled.join(","), [[text, text]]);
      else this.out(line(text));
      return;
    }
    const report = reportOf(invocation);
    if (!report) return;
    for (const s of report.streams) {
      for (const f of s.moved) {
        const way = s.direction === "push" ? "S3 -> SFTP" : "SFTP -> S3";
        this.out(line(`${s.stream}  ${way}  ${f.source} -> ${f.destination}  (${size(f.bytes)})`));
      }
      for (const f of s.planned ?? []) {
        const before = f.deliveries.length;
        this.out(
          line(`${s.stream}  would resend ${f.source} -> ${f.destination} (${size(f.bytes)}, ${before}x before)`),
        );
      }
      // [key, text]: "too-young (modified 3 s ago)" is the same news as "(modified 8 s ago)" five seconds later.
      const head = (verb: string) => `${s.stream}  ${verb} ${s.direction}`;
      const problems: [string, string][] = [
        ...s.failed.map((f): [string, string] => [
          `failed ${f.source} ${f.code}`,
          `${head("FAILED")} ${f.source}: ${f.message}`,
        ]),
        ...s.skipped.map((f): [string, string] => [
          `skipped ${f.source} ${f.reason}`,
          `${head("skipped")} ${f.source}: ${f.reason}${f.detail ? ` (${f.detail})` : ""}`,
        ]),
      ];
      if (scheduled && s.direction === "pull") this.once(s.stream, problems);
      else problems.forEach(([, text]) => this.out(line(text)));
    }
    for (const f of report.unrouted) {
      this.out(line(`skipped ${f.source}: ${f.reason}${f.detail ? ` (${f.detail})` : ""}`));
    }
  }

  /** Prints what the previous run of this schedule did not already report. */
  private once(schedule: string, entries: [string, string][]): void {
    const before = this.lastPull.get(schedule) ?? new Set<string>();
    for (const [key, text] of entries) if (!before.has(key)) this.out(line(text));
    this.lastPull.set(schedule, new Set(entries.map(([key]) => key)));
  }
}

function isSchedule(event: unknown): string[] | undefined {
  const e = event as { streams?: unknown; action?: unknown } | null;
  return e && e.action === undefined && Array.isArray(e.streams) ? (e.streams as string[]) : undefined;
}

/** The run report: the handler's answer for direct invokes and schedules, its "run report" log line for SQS batches. */
export function reportOf(invocation: Invocation): RunReport | undefined {
  const result = invocation.result as Partial<RunReport> | undefined;
  if (result && Array.isArray(result.streams)) return result as RunReport;
  return findLogEntry(invocation.logs, "run report")?.report as RunReport | undefined;
}
