import { describeError } from "./errors";

/**
 * The result of every run, returned to the adapter and logged: per stream and direction, what moved, what was skipped
 * and why, what failed and why. `ref` carries an adapter's own handle (an SQS message id) through the engine untouched.
 */
export type Direction = "push" | "pull";

export interface MovedFile {
  source: string;
  destination: string;
  bytes: number;
  sha256?: string;
  durationMs: number;
  ref?: string;
}

export type SkipReason =
  | "pattern" // name does not match the stream's patterns
  | "ignored" // temp / hidden file per pull.ignore
  | "too-young" // modified less than minAgeSeconds ago
  | "growing" // size changed during the stability check
  | "directory" // a folder marker key, or a directory while not recursive
  | "duplicate" // a receipt shows this object version was already delivered
  | "deadline" // left for the next run: the deadline was near
  | "limit" // left for the next run: maxFiles reached
  | "no-stream" // no stream claims this bucket/key
  | "unsafe-name" // a remote name the bridge refuses to turn into a key (backslash, control character)
  | "exists"; // pull with onConflict: skip, and the S3 key holds an earlier delivery

export interface SkippedFile {
  source: string;
  reason: SkipReason;
  detail?: string;
  ref?: string;
}

/** A left-over of an earlier, interrupted run that this run removed (a stale temporary file on the partner). */
export interface CleanedFile {
  path: string;
  bytes: number;
  ageSeconds: number;
  /** stale-temp: a push's temporary file left by a killed run; archive-expired: past pull.doneRetentionDays. */
  reason: "stale-temp" | "archive-expired";
}

export interface FailedFile {
  source: string;
  code: string;
  message: string;
  ref?: string;
}

/** What a dry run would do: one file, its size, and when it was delivered before (from its receipts). */
export interface PlannedFile {
  source: string;
  destination: string;
  bytes: number;
  deliveries: { finishedAt: string; sha256: string; trigger?: string }[];
}

export interface StreamReport {
  stream: string;
  direction: Direction;
  moved: MovedFile[];
  skipped: SkippedFile[];
  failed: FailedFile[];
  /** Dry runs only: what would have been moved. */
  planned?: PlannedFile[];
  /** Left-overs of interrupted runs and expired archives removed by this run; absent when none. */
  cleaned?: CleanedFile[];
  /** after: leave only: files listed that were pulled before and have not changed since; absent when none. */
  alreadyPulled?: number;
  /** Per-file events (events: true) that could not be published; absent when none. */
  eventsFailed?: number;
  files: number;
  bytes: number;
  durationMs: number;
}

export interface RunReport {
  startedAt: string;
  finishedAt: string;
  streams: StreamReport[];
  /** Items no stream claimed (push) — reported, never retried. */
  unrouted: SkippedFile[];
  ok: boolean;
}

export class StreamReportBuilder {
  private readonly moved: MovedFile[] = [];
  private readonly skipped: SkippedFile[] = [];
  private readonly failed: FailedFile[] = [];
  private planned: PlannedFile[] | undefined;
  private readonly cleaned: CleanedFile[] = [];
  private alreadyPulled = 0;
  private eventsFailed = 0;
  private readonly started: number;

  constructor(
    readonly stream: string,
    readonly direction: Direction,
    private readonly clock: () => number,
  ) {
    this.started = clock();
  }

  addMoved(file: MovedFile): void {
    this.moved.push(file);
  }
  addSkipped(file: SkippedFile): void {
    this.skipped.push(file);
  }
  addPlanned(file: PlannedFile): void {
    (this.planned ??= []).push(file);
  }
  addCleaned(file: CleanedFile): void {
    this.cleaned.push(file);
  }
  addAlreadyPulled(): void {
    this.alreadyPulled++;
  }
  setEventsFailed(count: number): void {
    this.eventsFailed = count;
  }
  addFailed(source: string, err: unknown, ref?: string): void {
    this.failed.push({ source, ...describeError(err), ...(ref === undefined ? {} : { ref }) });
  }

  build(): StreamReport {
    return {
      stream: this.stream,
      direction: this.direction,
      moved: this.moved,
      skipped: this.skipped,
      failed: this.failed,
      ...(this.planned ? { planned: this.planned } : {}),
      ...(this.cleaned.length ? { cleaned: this.cleaned } : {}),
      ...(this.alreadyPulled ? { alreadyPulled: this.alreadyPulled } : {}),
      ...(this.eventsFailed ? { eventsFailed: this.eventsFailed } : {}),
      files: this.moved.length,
      bytes: this.moved.reduce((n, f) => n + f.bytes, 0),
      durationMs: this.clock() - this.started,
    };
  }
}

export function runReport(
  started: number,
  clock: () => number,
  streams: StreamReport[],
  unrouted: SkippedFile[] = [],
): RunReport {
  return {
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date(clock()).toISOString(),
    streams,
    unrouted,
    ok: streams.every((s) => s.failed.length === 0),
  };
}

/** gilt-compatible summary line; CloudWatch metric filters match on it (keep the wording). */
export function giltLine(report: StreamReport): string {
  const [from, to] = report.direction === "push" ? ["S3", "SFTP"] : ["SFTP", "S3"];
  return `[${report.stream}]: Moved ${report.files} files from ${from} to ${to}`;
}
