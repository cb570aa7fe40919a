import { createHash, randomBytes } from "node:crypto";
import { posix } from "node:path";
import { Readable } from "node:stream";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import {
  matchesPatterns,
  type Logger,
  type RunReport,
  type SftpSession,
  type StreamReport,
} from "../../../lambda/bridge";
import { ActionError, errorMessage } from "../../lib/errors";

/**
 * The smoke test: one file each way through a deployed bridge, checked by SHA-256 at the far end, with everything it
 * created removed afterwards. It drives the bridge only as its users do (an object in the push source, a file in the
 * partner's outbound folder, an invoke of `{action: "pull"}`) and verifies with its own S3 and SFTP clients, so a pass
 * means the deployment works, not merely that the engine does.
 */

/** The stream's paths, taken from the bridge's own config (see `smokeTarget` in main.ts). */
export interface SmokeTarget {
  stream: string;
  bucket: string;
  functionName: string;
  /** sftp://host:port, for messages. */
  sftpLabel: string;
  push?: { source: string; to: string; patterns: string[] };
  pull?: { from: string; dest: string; patterns: string[]; doneDir?: string; minAgeSeconds: number };
}

export interface SmokeDeps {
  s3: S3Client;
  /** One synchronous invoke of the bridge function with a direct-invoke event; resolves to its run report. */
  invoke(event: unknown): Promise<RunReport>;
  /** The smoke test's own SFTP connection (verification and cleanup), opened once and reused. */
  sftp(): Promise<SftpSession>;
  logger: Logger;
  clock?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Makes the file names unique per run; random by default. */
  runId?: string;
}

export type Direction = "push" | "pull";

export interface SmokeOptions {
  directions: Direction[];
  /** For each round trip, from the first action to the verdict. */
  timeoutMs: number;
  pollMs: number;
  /** event: the object's S3 notification must reach the bridge (the real wiring); invoke: push it by direct invoke. */
  pushTrigger: "event" | "invoke";
}

export interface SmokeStep {
  direction: Direction;
  name: string;
  ok: boolean;
  /** From the start of this round trip to the end of this step. */
  latencyMs: number;
  detail: string;
}

export interface CleanupItem {
  what: string;
  ok: boolean;
  detail: string;
}

export interface SmokeResult {
  ok: boolean;
  runId: string;
  steps: SmokeStep[];
  cleanup: CleanupItem[];
  /** The first failed step's message, written for the person reading the failed job. */
  failure?: string;
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** Ends a round trip at the first failed step; carries the message for the summary and the step's failure. */
class StepFailed extends Error {}

export async function runSmokeTest(target: SmokeTarget, deps: SmokeDeps, options: SmokeOptions): Promise<SmokeResult> {
  const run = new SmokeRun(target, deps, options);
  try {
    if (options.directions.includes("push")) await run.roundTrip("push", (step) => pushRoundTrip(run, step));
    if (options.directions.includes("pull")) await run.roundTrip("pull", (step) => pullRoundTrip(run, step));
  } finally {
    // Always, whatever failed: a smoke test must not leave test files for the partner or the next run.
    await run.cleanUp();
  }
  return run.result();
}

/** One smoke test's state: the steps recorded so far, the first failure, and what to remove at the end. */
class SmokeRun {
  readonly clock: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly runId: string;
  private readonly steps: SmokeStep[] = [];
  private readonly cleanups: { what: string; run: () => Promise<string> }[] = [];
  private readonly cleanup: CleanupItem[] = [];
  private failure: string | undefined;

  constructor(
    readonly target: SmokeTarget,
    readonly deps: SmokeDeps,
    readonly options: SmokeOptions,
  ) {
    this.clock = deps.clock ?? Date.now;
    this.sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    this.runId =
      deps.runId ??
      `${new Date(this.clock()).toISOString().replace(/[-:.]/g, "").slice(0, 15)}Z-${randomBytes(4).toString("hex")}`;
  }

  /** Runs one direction; its first failed step (or error) ends it and becomes the run's failure if none came before. */
  async roundTrip(direction: Direction, body: (step: StepRecorder) => Promise<void>): Promise<void> {
    const started = this.clock();
    try {
      await body(this.recorder(direction, started));
    } catch (err) {
      const message = err instanceof StepFailed ? err.message : `${direction} round trip failed: ${errorMessage(err)}`;
      if (!(err instanceof StepFailed)) {
        this.steps.push({
          direction,
          name: "error",
          ok: false,
          latencyMs: this.clock() - started,
          detail: errorMessage(err),
        });
      }
      this.failure ??= message;
    }
  }

  private recorder(direction: Direction, started: number): StepRecorder {
    return (name, ok, detail) => {
      this.steps.push({ direction, name, ok, latencyMs: this.clock() - started, detail });
      this.deps.logger[ok ? "info" : "warn"](`smoke ${direction}: ${name}: ${ok ? "ok" : "FAILED"}`, { detail });
      if (!ok) throw new StepFailed(`${direction} round trip failed at "${name}": ${detail}`);
    };
  }

  /** Registered before the file is made, so a round trip that fails halfway still has it removed. */
  removeLater(what: string, run: () => Promise<string>): void {
    this.cleanups.push({ what, run });
  }

  async cleanUp(): Promise<void> {
    for (const item of this.cleanups) {
      try {
        this.cleanup.push({ what: item.what, ok: true, detail: await item.run() });
      } catch (err) {
        this.cleanup.push({ what: item.what, ok: false, detail: errorMessage(err) });
        this.deps.logger.warn(`smoke cleanup: could not remove ${item.what}`, { error: errorMessage(err) });
      }
    }
  }

  result(): SmokeResult {
    const { runId, steps, cleanup, failure } = this;
    return { ok: failure === undefined && steps.every((s) => s.ok), runId, steps, cleanup, failure };
  }

  // Polls until `probe` returns a value or the round trip's time is up (undefined then).
  async waitFor<T>(started: number, probe: () => Promise<T | undefined>): Promise<T | undefined> {
    const { timeoutMs, pollMs } = this.options;
    for (;;) {
      const found = await probe();
      if (found !== undefined) return found;
      if (this.clock() - started >= timeoutMs) return undefined;
      await this.sleep(Math.min(pollMs, Math.max(0, timeoutMs - (this.clock() - started))));
    }
  }

  async readRemote(path: string): Promise<Buffer> {
    const sftp = await this.deps.sftp();
    const info = await sftp.stat(path);
    if (!info) throw new ActionError("SMOKE_REMOTE_MISSING", `${this.target.sftpLabel}${path} is not there`);
    const chunks: Buffer[] = [];
    for await (const chunk of sftp.read(path, info.size)) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks);
  }

  async readObject(key: string): Promise<Buffer | undefined> {
    try {
      const out = await this.deps.s3.send(new GetObjectCommand({ Bucket: this.target.bucket, Key: key }));
      return Buffer.from(await out.Body!.transformToByteArray());
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === "NoSuchKey" || e.$metadata?.httpStatusCode === 404) return undefined;
      throw err;
    }
  }
}

/** S3 -> SFTP: an object in the push source must arrive on the SFTP server with the same bytes. */
async function pushRoundTrip(run: SmokeRun, step: StepRecorder): Promise<void> {
  const { target, deps, options } = run;
  const push = target.push;
  if (!push) return step("stream has a push section", false, `stream ${target.stream} has no push section`);
  const name = smokeName(run.runId, "push", push.patterns);
  const key = push.source + name;
  const remote = posix.join(push.to, name);
  const body = content(run.runId, "push");
  const started = run.clock();
  run.removeLater(`s3://${target.bucket}/${key}`, () => deleteObject(deps.s3, target.bucket, key));
  run.removeLater(`${target.sftpLabel}${remote}`, () => removeRemote(deps, remote));
  await deps.s3.send(new PutObjectCommand({ Bucket: target.bucket, Key: key, Body: body }));
  step("put object in the push source", true, `s3://${target.bucket}/${key} (${body.length} bytes)`);

  if (options.pushTrigger === "invoke") {
    const report = await deps.invoke({ action: "push", keys: [`s3://${target.bucket}/${key}`] });
    const outcome = fileOutcome(report, "push", `s3://${target.bucket}/${key}`);
    step("invoke push", outcome.moved, outcome.detail);
  }
  const seen = await run.waitFor(started, async () => {
    const info = await (await deps.sftp()).stat(remote);
    return info && info.size === body.length ? info : undefined;
  });
  if (!seen) {
    const why = await explainMissingPush(deps, target, key, remote, options);
    return step(
      "file arrives on SFTP",
      false,
      `${target.sftpLabel}${remote} did not appear within ${Math.round(options.timeoutMs / 1000)} s; ${why}`,
    );
  }
  step("file arrives on SFTP", true, `${target.sftpLabel}${remote}`);
  const got = sha256(await run.readRemote(remote));
  step(
    "same SHA-256 on SFTP",
    got === sha256(body),
    got === sha256(body) ? got : `expected ${sha256(body)}, the server holds ${got}`,
  );
}

type PullSection = NonNullable<SmokeTarget["pull"]>;

/** The pull round trip's file: where it is put, where the bridge should put it, where the original should end up. */
interface PullFile {
  source: string;
  key: string;
  archived?: string;
  body: Buffer;
}

/** SFTP -> S3: a file in the pull folder must be taken into S3 with the same bytes, and the original archived. */
async function pullRoundTrip(run: SmokeRun, step: StepRecorder): Promise<void> {
  const { target, deps } = run;
  const pull = target.pull;
  if (!pull) return step("stream has a pull section", false, `stream ${target.stream} has no pull section`);
  const name = smokeName(run.runId, "pull", pull.patterns);
  const file: PullFile = {
    source: posix.join(pull.from, name),
    key: pull.dest + name,
    archived: pull.doneDir ? posix.join(pull.doneDir, name) : undefined,
    body: content(run.runId, "pull"),
  };
  const { source, key, archived, body } = file;
  const started = run.clock();
  run.removeLater(`${target.sftpLabel}${source}`, () => removeRemote(deps, source));
  if (archived) run.removeLater(`${target.sftpLabel}${archived}`, () => removeRemote(deps, archived));
  run.removeLater(`s3://${target.bucket}/${key}`, () => deleteObject(deps.s3, target.bucket, key));
  const sftp = await deps.sftp();
  // Atomic: the bridge skips temporary names, so it never sees the file half-written. The folder is made when
  // missing: a new stack's own folder on a shared test server exists only once something was put there.
  await sftp.write(source, Readable.from([body]), {
    atomic: true,
    tempSuffix: ".part",
    expectedSize: body.length,
    createDirs: true,
  });
  step("put file in the pull folder", true, `${target.sftpLabel}${source} (${body.length} bytes)`);

  await invokePullUntilTaken(run, step, pull, file, sftp, started);
  await checkPulledObject(run, step, file);
  await checkSourceArchived(run, step, pull, file, sftp);
}

async function invokePullUntilTaken(
  run: SmokeRun,
  step: StepRecorder,
  pull: PullSection,
  { source, key }: PullFile,
  sftp: SftpSession,
  started: number,
): Promise<void> {
  const { target, deps, options } = run;
  let last: FileOutcome | undefined;
  // The bridge leaves files younger than minAgeSeconds (and any beyond maxFiles) for a later run: invoke again
  // until it takes ours or the time is up.
  if (pull.minAgeSeconds > 0) {
    // SFTP times have 1 s resolution; the extra second keeps the first run from finding the file too young.
    const settle = (pull.minAgeSeconds + 1) * 1000;
    if (settle >= options.timeoutMs) {
      return step(
        "invoke pull",
        false,
        `the stream's pull.minAgeSeconds (${pull.minAgeSeconds}) leaves no time within timeout-seconds (${Math.round(options.timeoutMs / 1000)}); raise timeout-seconds`,
      );
    }
    await run.sleep(settle);
  }
  let runs = 0;
  const outcome = await run.waitFor(started, async () => {
    runs++;
    const report = await deps.invoke({ action: "pull", streams: [target.stream] });
    const seen = fileOutcome(report, "pull", source);
    if (seen.moved || seen.failed) return seen;
    last = seen;
    // A scheduled run may have taken the file between the put and this invoke: then it is in S3 already.
    if (seen.detail === NOT_MENTIONED && !(await sftp.stat(source)) && (await run.readObject(key))) {
      return { moved: true, failed: false, detail: `s3://${target.bucket}/${key} (taken by another run)` };
    }
    return undefined;
  });
  if (!outcome) {
    return step(
      "invoke pull",
      false,
      `the bridge did not take ${source} within ${Math.round(options.timeoutMs / 1000)} s (${runs} runs); the last run: ${last?.detail}`,
    );
  }
  if (outcome.failed) return step("invoke pull", false, outcome.detail);
  step("invoke pull", true, outcome.detail);
}

async function checkPulledObject(run: SmokeRun, step: StepRecorder, { key, body }: PullFile): Promise<void> {
  const { bucket } = run.target;
  const object = await run.readObject(key);
  if (!object)
    return step("object in S3", false, `s3://${bucket}/${key} is not there, though the bridge reported it moved`);
  const got = sha256(object);
  step(
    "same SHA-256 in S3",
    got === sha256(body),
    got === sha256(body) ? `s3://${bucket}/${key} ${got}` : `expected ${sha256(body)}, S3 holds ${got}`,
  );
}

async function checkSourceArchived(
  run: SmokeRun,
  step: StepRecorder,
  pull: PullSection,
  { source, archived }: PullFile,
  sftp: SftpSession,
): Promise<void> {
  const { sftpLabel } = run.target;
  const still = await sftp.stat(source);
  if (still) return step("source archived", false, `${sftpLabel}${source} is still in the pull folder`);
  if (archived) {
    const done = await sftp.stat(archived);
    step(
      "source archived",
      Boolean(done),
      done ? `moved to ${archived}` : `not in ${pull.doneDir} (and gone from ${pull.from})`,
    );
  } else {
    step("source archived", true, "deleted (pull.after: delete)");
  }
}

type StepRecorder = (name: string, ok: boolean, detail: string) => void;

/** A unique name that the stream's patterns accept, so the bridge does not skip it as non-matching. */
export function smokeName(runId: string, direction: Direction, patterns: string[]): string {
  const base = `bridge-smoke-${direction}-${runId}`;
  const candidates = [`${base}.txt`, ...patterns.map((p) => p.replace(/\*+/g, base).replace(/\?/g, "x"))];
  for (const candidate of candidates) {
    if (!candidate.includes("/") && /^[\w.-]+$/.test(candidate) && matchesPatterns(candidate, patterns))
      return candidate;
  }
  throw new ActionError(
    "SMOKE_NO_NAME",
    `no file name of the form ${base}.<ext> matches the stream's patterns (${patterns.join(", ")}); add a simple pattern such as "*.txt" or run the smoke test on another stream`,
  );
}

function content(runId: string, direction: Direction): Buffer {
  return Buffer.concat([
    Buffer.from(`s3-sftp-bridge smoke test ${runId} (${direction}); safe to delete\n`),
    Buffer.from(randomBytes(2048).toString("base64") + "\n"),
  ]);
}

const NOT_MENTIONED = "the bridge's report does not mention it";

interface FileOutcome {
  moved: boolean;
  failed: boolean;
  detail: string;
}

/** What the bridge's report says of one file: moved, failed (and why), skipped (and why), or not seen at all. */
export function fileOutcome(report: RunReport, direction: Direction, source: string): FileOutcome {
  const streams: StreamReport[] = report.streams.filter((s) => s.direction === direction);
  for (const s of streams) {
    const moved = s.moved.find((m) => m.source === source);
    if (moved) return { moved: true, failed: false, detail: `${moved.destination} (${moved.bytes} bytes)` };
    const failed = s.failed.find((f) => f.source === source);
    if (failed)
      return { moved: false, failed: true, detail: `the bridge failed it: ${failed.code}: ${failed.message}` };
    const skipped = s.skipped.find((k) => k.source === source);
    if (skipped) {
      // A duplicate is not a failure of the bridge, but the smoke object is new: it means the receipt check is wrong.
      return {
        moved: false,
        failed: skipped.reason === "pattern" || skipped.reason === "duplicate",
        detail: `the bridge skipped it: ${skipped.reason}${skipped.detail ? ` (${skipped.detail})` : ""}`,
      };
    }
  }
  // A failure of the whole stream (connection, login) is reported against the stream's remote folder, not the file.
  const streamFailure = streams.flatMap((s) => s.failed)[0];
  if (streamFailure)
    return { moved: false, failed: true, detail: `the bridge failed: ${streamFailure.code}: ${streamFailure.message}` };
  const unrouted = report.unrouted.find((u) => u.source === source || u.source.endsWith(source));
  if (unrouted)
    return { moved: false, failed: true, detail: `no stream claims it: ${unrouted.detail ?? unrouted.reason}` };
  return { moved: false, failed: false, detail: NOT_MENTIONED };
}

/**
 * The event-driven push did not arrive: say why as precisely as can be found out. A direct invoke of the same key
 * separates "the bridge cannot deliver" (its report names the error) from "the bridge never heard of the object"
 * (bucket notification, queue or event source mapping).
 */
async function explainMissingPush(
  deps: SmokeDeps,
  target: SmokeTarget,
  key: string,
  remote: string,
  options: SmokeOptions,
): Promise<string> {
  if (options.pushTrigger === "invoke") return "although the bridge reported it moved";
  try {
    const report = await deps.invoke({ action: "push", keys: [`s3://${target.bucket}/${key}`] });
    const outcome = fileOutcome(report, "push", `s3://${target.bucket}/${key}`);
    if (outcome.moved) {
      return (
        `a direct invoke then delivered it (${outcome.detail}): the bridge works, but S3 events do not reach it; ` +
        "check the bucket notification, the queue, its dead-letter queue and the event source mapping"
      );
    }
    return `a direct invoke of the same key reports: ${outcome.detail}`;
  } catch (err) {
    return `a direct invoke of the same key failed too: ${errorMessage(err)} (looking for ${remote})`;
  }
}

async function deleteObject(s3: S3Client, bucket: string, key: string): Promise<string> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  return "deleted (if it was there)";
}

async function removeRemote(deps: SmokeDeps, path: string): Promise<string> {
  const sftp = await deps.sftp();
  if (!(await sftp.stat(path))) return "not there";
  await sftp.remove(path);
  return "removed";
}
