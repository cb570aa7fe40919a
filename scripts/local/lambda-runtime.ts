// The Lambda service, as far as one warm container goes, in process: the handler runs one invocation at a time with a
// real-looking Context, and what it writes to stdout/stderr is captured per invocation (and appended to a log file,
// standing in for CloudWatch Logs) instead of flooding the terminal of someone watching the local stack.
import { randomBytes, randomUUID } from "node:crypto";
import { createWriteStream, renameSync, statSync, type WriteStream } from "node:fs";
import type { Context } from "aws-lambda";

export type LambdaHandler = (event: unknown, context: Context) => Promise<unknown>;

/** The error payload the Node.js runtime returns for an unhandled error (what `X-Amz-Function-Error` comes with). */
export interface FunctionErrorPayload {
  errorType: string;
  errorMessage: string;
  trace: string[];
}

export interface Invocation {
  requestId: string;
  /** The handler's return value; undefined when it threw. */
  result?: unknown;
  error?: FunctionErrorPayload;
  /** Every line the function wrote while it ran (Powertools JSON, EMF), in order. */
  logs: string[];
  durationMs: number;
}

export interface LocalLambdaOptions {
  functionName: string;
  /** Context.getRemainingTimeInMillis counts down from this; the handler plans its deadline with it. */
  timeoutSeconds: number;
  memoryMb?: number;
  region?: string;
  accountId?: string;
  /** Called on the first invocation, so the handler module reads its environment only once the stack has set it. */
  load: () => LambdaHandler;
  /** Appended with every captured line, as CloudWatch Logs would keep them. */
  logFile?: string;
}

export interface InvokeOptions {
  /** The Invoke API hands out an asynchronous invocation's request id before it runs. */
  requestId?: string;
  clientContext?: unknown;
}

type Write = typeof process.stdout.write;

const MAX_LOG_BYTES = 20 * 1024 * 1024;

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

export class LocalLambda {
  readonly functionArn: string;
  private handler: LambdaHandler | undefined;
  // Lambda never runs two invocations in one container; the handler's module state (cached runtime, the logger's
  // request context) relies on that, so invocations queue here.
  private tail: Promise<unknown> = Promise.resolve();
  private current: Invocation | undefined;
  private log: WriteStream | undefined;
  private logBytes = 0;
  private readonly restore: () => void;

  constructor(private readonly options: LocalLambdaOptions) {
    const region = options.region ?? "us-east-1";
    this.functionArn = `arn:aws:lambda:${region}:${options.accountId ?? "000000000000"}:function:${options.functionName}`;
    if (options.logFile) {
      this.log = createWriteStream(options.logFile, { flags: "a" });
      this.logBytes = fileSize(options.logFile);
    }
    this.restore = this.capture();
  }

  /** Runs the handler once, after any invocation already running; never rejects (errors are in `error`). */
  invoke(event: unknown, options: InvokeOptions = {}): Promise<Invocation> {
    const run = this.tail.then(() => this.run(event, options));
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Waits for queued invocations to finish, then stops capturing output. */
  async close(): Promise<void> {
    await this.tail;
    this.restore();
    if (this.log) await new Promise<void>((resolve) => this.log?.end(resolve));
  }

  private async run(event: unknown, { clientContext, requestId = randomUUID() }: InvokeOptions): Promise<Invocation> {
    const started = Date.now();
    const invocation: Invocation = { requestId, logs: [], durationMs: 0 };
    this.current = invocation;
    this.append(`START RequestId: ${requestId} Version: $LATEST`);
    try {
      this.handler ??= this.options.load();
      // A JSON round trip, as the service does: the handler gets its own copy and no non-JSON values.
      const payload = JSON.parse(JSON.stringify(event ?? null)) as unknown;
      invocation.result = await this.handler(payload, this.context(requestId, started, clientContext));
    } catch (err) {
      invocation.error = errorPayload(err);
      this.append(
        `${new Date().toISOString()}\t${requestId}\tERROR\tInvoke Error \t${JSON.stringify(invocation.error)}`,
      );
    } finally {
      invocation.durationMs = Date.now() - started;
      this.append(`END RequestId: ${requestId}`);
      this.append(`REPORT RequestId: ${requestId}\tDuration: ${invocation.durationMs} ms`);
      this.current = undefined;
    }
    return invocation;
  }

  private context(requestId: string, started: number, clientContext: unknown): Context {
    const { functionName, timeoutSeconds } = this.options;
    const deadline = started + timeoutSeconds * 1000;
    const day = new Date(started).toISOString().slice(0, 10).replace(/-/g, "/");
    const noop = () => undefined;
    return {
      callbackWaitsForEmptyEventLoop: true,
      functionName,
      functionVersion: "$LATEST",
      invokedFunctionArn: this.functionArn,
      memoryLimitInMB: String(this.options.memoryMb ?? 1024),
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${functionName}`,
      logStreamName: `${day}/[$LATEST]${randomBytes(16).toString("hex")}`,
      ...(clientContext === undefined ? {} : { clientContext: clientContext as Context["clientContext"] }),
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: noop,
      fail: noop,
      succeed: noop,
    };
  }

  private append(line: string): void {
    this.current?.logs.push(line);
    if (!this.log || !this.options.logFile) return;
    this.log.write(line + "\n");
    this.logBytes += Buffer.byteLength(line) + 1;
    // A scheduled pull every few seconds logs a few KiB each time; keep one previous file, as a left-running stack
    // must not fill the disk.
    if (this.logBytes > MAX_LOG_BYTES) {
      this.log.end();
      renameSync(this.options.logFile, `${this.options.logFile}.1`);
      this.log = createWriteStream(this.options.logFile, { flags: "a" });
      this.logBytes = 0;
    }
  }

  /**
   * Routes JSON lines written to stdout/stderr (Powertools logs and EMF metrics; Powertools writes through its own
   * Console bound to these streams) into the log; everything else (our own plain-words output, s3rver's stderr)
   * passes through. Returns the function that undoes it.
   */
  private capture(): () => void {
    const streams = [process.stdout, process.stderr];
    const originals = streams.map((s) => s.write);
    streams.forEach((stream, i) => {
      const original = originals[i] as Write;
      stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
        const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
        if (!text.trimStart().startsWith("{"))
          return (original as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
        for (const line of text.split("\n")) if (line.trim()) this.append(line);
        const callback = rest.find((r) => typeof r === "function") as (() => void) | undefined;
        callback?.();
        return true;
      }) as Write;
    });
    return () => streams.forEach((stream, i) => (stream.write = originals[i] as Write));
  }
}

export function errorPayload(err: unknown): FunctionErrorPayload {
  if (err instanceof Error) {
    return {
      errorType: err.name || "Error",
      errorMessage: err.message,
      trace: (err.stack ?? "").split("\n").filter(Boolean),
    };
  }
  return { errorType: "Error", errorMessage: String(err), trace: [] };
}

/** The JSON object logged by the handler with `message`, from one invocation's captured lines. */
export function findLogEntry(logs: string[], message: string): Record<string, unknown> | undefined {
  for (const line of logs) {
    if (!line.startsWith("{") || !line.includes(message)) continue;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.message === message) return entry;
    } catch {
      // Not every captured line is one JSON document (a pretty-printed object spans several); skip those.
    }
  }
  return undefined;
}
