// A Lambda function run from its deployment zip, as the Lambda service runs it: the zip unpacked into a folder of its
// own (no node_modules to fall back on), its handler loaded once in a Node process of its own (one warm container)
// with the environment the template gives it plus what the runtime sets, one invocation at a time, a Context whose
// remaining time counts down from the function's timeout, and the process killed when an invocation overruns it.
import { fork, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fromBufferPromise } from "yauzl";
import type { FunctionErrorPayload, Invocation, InvokeOptions } from "../../scripts/local/lambda-runtime";

export interface ZipFunctionOptions {
  name: string;
  zip: Buffer;
  /** Where the zip is unpacked; one folder per function. */
  dir: string;
  /** The module.export of the handler, as the template's Handler gives it (index.handler). */
  handler: string;
  /** The template's Environment.Variables plus whatever points the SDK at local endpoints. */
  env: Record<string, string>;
  timeoutSeconds: number;
  memoryMb: number;
  region: string;
  accountId: string;
}

// Loads the handler at init, as Lambda does, then answers one message per invocation.
const RUNNER = `
const [file, exportName] = process.argv.slice(2);
let handler;
try {
  handler = require(file)[exportName];
  if (typeof handler !== "function") throw new Error(file + " exports no function " + exportName);
} catch (err) {
  process.send({ initError: { errorType: "Runtime.ImportModuleError", errorMessage: String(err && err.message || err), trace: [] } });
}
process.on("message", async ({ id, event, deadline, context }) => {
  const ctx = { ...context, callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()) };
  try {
    const result = await handler(event, ctx);
    process.send({ id, result: result === undefined ? null : result });
  } catch (err) {
    process.send({ id, error: { errorType: (err && err.name) || "Error", errorMessage: String(err && err.message || err), trace: String(err && err.stack || "").split("\\n") } });
  }
});
process.send({ ready: true });
`;

export class ZipFunction {
  readonly functionArn: string;
  /** Every line the function wrote, in order. */
  readonly logs: string[] = [];
  private child: ChildProcess | undefined;
  private ready: Promise<FunctionErrorPayload | undefined> | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private current: string[] | undefined;
  private readonly root: string;

  private constructor(private readonly options: ZipFunctionOptions) {
    this.functionArn = `arn:aws:lambda:${options.region}:${options.accountId}:function:${options.name}`;
    this.root = path.join(options.dir, "task");
  }

  static async deploy(options: ZipFunctionOptions): Promise<ZipFunction> {
    const fn = new ZipFunction(options);
    const zip = await fromBufferPromise(options.zip, { lazyEntries: true });
    for await (const entry of zip.eachEntry()) {
      const target = path.join(fn.root, entry.fileName);
      if (!target.startsWith(fn.root + path.sep))
        throw new Error(`zip entry ${entry.fileName} climbs out of its folder`);
      if (entry.fileName.endsWith("/")) continue;
      const chunks: Buffer[] = [];
      for await (const chunk of await zip.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, Buffer.concat(chunks));
    }
    await zip.close();
    writeFileSync(path.join(options.dir, "runtime.cjs"), RUNNER);
    return fn;
  }

  /** The function's environment as the template set it (without what the runtime adds). */
  get environment(): Readonly<Record<string, string>> {
    return this.options.env;
  }

  /** Runs one invocation after any running one; never rejects (errors are in `error`). */
  invoke(event: unknown, options: InvokeOptions = {}): Promise<Invocation> {
    const run = this.tail.then(() => this.run(event, options.requestId ?? randomUUID()));
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) {
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGKILL");
      await exited;
    }
  }

  private start(): Promise<FunctionErrorPayload | undefined> {
    const [file, exportName] = this.options.handler.split(".");
    const o = this.options;
    const child = fork(path.join(o.dir, "runtime.cjs"), [path.join(this.root, `${file}.js`), exportName ?? "handler"], {
      cwd: this.root,
      // Plain node, as Lambda runs it: none of this process's flags (a TypeScript loader, inspector ports).
      execArgv: [],
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        LAMBDA_TASK_ROOT: this.root,
        AWS_EXECUTION_ENV: "AWS_Lambda_nodejs24.x",
        AWS_LAMBDA_FUNCTION_NAME: o.name,
        AWS_LAMBDA_FUNCTION_VERSION: "$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(o.memoryMb),
        AWS_REGION: o.region,
        AWS_DEFAULT_REGION: o.region,
        TZ: ":UTC",
        ...o.env,
      },
    });
    this.child = child;
    const collect = (stream: NodeJS.ReadableStream | null) => {
      let partial = "";
      stream?.on("data", (chunk: Buffer) => {
        const lines = (partial + chunk.toString("utf8")).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) {
          this.logs.push(line);
          this.current?.push(line);
        }
      });
    };
    collect(child.stdout);
    collect(child.stderr);
    return new Promise((resolve) => {
      child.once("message", (m: { ready?: boolean; initError?: FunctionErrorPayload }) =>
        resolve(m.initError ?? undefined),
      );
      child.once("exit", (code) =>
        resolve({ errorType: "Runtime.ExitError", errorMessage: `exited with ${code} during init`, trace: [] }),
      );
    });
  }

  private async run(event: unknown, requestId: string): Promise<Invocation> {
    const started = Date.now();
    const logs: string[] = [];
    this.current = logs;
    const finish = (result: { result?: unknown; error?: FunctionErrorPayload }): Invocation => {
      this.current = undefined;
      return { requestId, ...result, logs, durationMs: Date.now() - started };
    };
    if (!this.child || this.child.exitCode !== null) this.ready = this.start();
    const initError = await this.ready;
    if (initError) {
      await this.close();
      return finish({ error: initError });
    }
    const child = this.child!;
    const deadline = started + this.options.timeoutSeconds * 1000;
    const context = {
      functionName: this.options.name,
      functionVersion: "$LATEST",
      invokedFunctionArn: this.functionArn,
      memoryLimitInMB: String(this.options.memoryMb),
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${this.options.name}`,
      logStreamName: "local",
    };
    const id = randomUUID();
    const answer = await new Promise<{ result?: unknown; error?: FunctionErrorPayload }>((resolve) => {
      const timer = setTimeout(() => {
        void this.close();
        resolve({
          error: {
            errorType: "Sandbox.Timedout",
            errorMessage: `Task timed out after ${this.options.timeoutSeconds.toFixed(2)} seconds`,
            trace: [],
          },
        });
      }, deadline - started);
      const onMessage = (m: { id?: string; result?: unknown; error?: FunctionErrorPayload }) => {
        if (m.id !== id) return;
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", onExit);
        resolve(m.error ? { error: m.error } : { result: m.result });
      };
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        child.off("message", onMessage);
        resolve({ error: { errorType: "Runtime.ExitError", errorMessage: `exited with ${code}`, trace: [] } });
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
      child.send({ id, event, deadline, context });
    });
    // Lines written just before the answer may still be in the pipe.
    await new Promise((r) => setImmediate(r));
    return finish(answer);
  }
}
