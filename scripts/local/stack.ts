// The local stack behind `npm start`: embedded S3 (s3rver), the embedded SFTP server and the Lambda handler, wired
// as templates/bridge.yaml wires them in AWS (bucket notifications -> queue -> handler for push, a schedule per stream
// for pull, the Invoke API for everything else), so a newcomer sees the real code path move files on one machine.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type { S3EventRecord, SQSRecord } from "aws-lambda";
import {
  decodeS3EventKey,
  doneDirOf,
  loadConfig,
  matchesPatterns,
  parseConfigDocument,
  validateConfig,
  pullDestPrefix,
  pushSourcePrefix,
  type BridgeConfig,
  type RunReport,
} from "../../lambda/bridge";
import { LOCAL_ENV } from "../../lambda/env";
import { LocalQueue } from "./event-queue";
import { startInvokeEndpoint, type InvokeEndpoint } from "./invoke-endpoint";
import { LocalLambda, findLogEntry, type Invocation, type LambdaHandler } from "./lambda-runtime";
import { startLocalS3, type LocalS3 } from "./s3-server";
import { startSftpServer, type EmbeddedSftpServer } from "./sftp-server";
import {
  keyFileName,
  localDocument,
  persistentKey,
  renderLocalConfig,
  streamUsers,
  writePrivate,
} from "./stack-config";

export interface LocalStackOptions {
  /** State directory (`.bridge`): S3 data, SFTP root, keys, logs, the effective config. Kept across restarts. */
  dir: string;
  /** The stream config to run (examples/local.config.yaml). Its SFTP sides are pointed at the embedded server. */
  configPath: string;
  /** 0 or absent: any free port. */
  s3Port?: number;
  sftpPort?: number;
  lambdaPort?: number;
  functionName?: string;
  /** Pull every stream this often instead of its schedule; 0 turns scheduled pulls off. */
  pullIntervalMs?: number;
  /** Until a failed SQS message is retried (AWS: six times the function timeout). */
  retryDelayMs?: number;
  /** No instructions and no per-file lines. */
  quiet?: boolean;
  /** Where lines go (default stdout). */
  output?: (line: string) => void;
}

export interface StreamInfo {
  name: string;
  bucket: string;
  username: string;
  keyPath: string;
  push?: { source: string; to: string; patterns: string[] };
  pull?: {
    from: string;
    dest: string;
    doneDir: string;
    after: "move" | "delete" | "leave";
    everyMs: number;
    patterns: string[];
    minAgeSeconds: number;
  };
}

export interface LocalStack {
  dir: string;
  /** The config the handler reads (BRIDGE_CONFIG): the source with its SFTP sides pointed here. */
  configPath: string;
  sourceConfigPath: string;
  config: BridgeConfig;
  streams: StreamInfo[];
  s3: LocalS3;
  sftp: EmbeddedSftpServer;
  lambda: { url: string; port: number; functionName: string; functionArn: string };
  knownHostsPath: string;
  /** What a client on this machine needs: endpoints, credentials, region, BRIDGE_CONFIG. */
  env: Record<string, string>;
  /** Invokes the handler as the Invoke API would (queued behind running invocations), printing what moved. */
  invoke(event: unknown): Promise<Invocation>;
  /** Where the function's per-file events go (`.bridge/events.jsonl`), one JSON object per line. */
  eventsPath: string;
  /** The plain-words text printed at start. */
  instructions(): string;
  stop(): Promise<void>;
}

const FUNCTION_TIMEOUT_SECONDS = 300;
const DEFAULT_PULL_EVERY_MS = 10_000;
/** The template's MaxReceiveCount default. */
const MAX_RECEIVE_COUNT = 5;
const REGION = "us-east-1";

/** `rate(N unit)` as N seconds, whatever the unit: local mode runs a 30-minute schedule every 30 seconds. */
export function localPullInterval(schedule: string | undefined): number {
  const rate = /^rate\((\d+) [a-z]+\)$/.exec(schedule ?? "");
  return rate ? Math.max(1, Number(rate[1])) * 1000 : DEFAULT_PULL_EVERY_MS;
}

export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const dir = path.resolve(options.dir);
  const sourceConfigPath = path.resolve(options.configPath);
  const out = options.quiet ? () => undefined : (options.output ?? ((line: string) => console.log(line)));
  const functionName = options.functionName ?? "bridge";
  const sftpRoot = path.join(dir, "sftp");
  const keysDir = path.join(dir, "keys");
  // Only the source's shape is needed before the servers exist (user names); it is validated once it is local.
  const sourceText = await readFile(sourceConfigPath, "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the config ${sourceConfigPath}: ${err.code ?? err.message}; pass --config <file>`);
  });
  const sourceDoc = parseConfigDocument(sourceText, options.configPath);
  // Problems are reported against the user's file, before any server starts.
  validateConfig(sourceDoc, options.configPath, { allowFileCredentials: true });
  await Promise.all(
    [sftpRoot, keysDir, path.join(dir, "s3"), path.join(dir, "logs")].map((d) => mkdir(d, { recursive: true })),
  );
  const users = streamUsers(sourceDoc);
  const keyPathFor = (username: string) => path.join(keysDir, keyFileName(username));
  const hostKey = await persistentKey(path.join(keysDir, "ssh_host_ed25519_key"));
  const userKeys = new Map<string, string>();
  for (const username of new Set(users.values())) {
    userKeys.set(username, (await persistentKey(keyPathFor(username))).publicKey);
  }

  const cleanup: (() => Promise<void>)[] = [];
  const unwind = async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  };
  try {
    const sftp = await startSftpServer({
      root: sftpRoot,
      port: options.sftpPort ?? 0,
      hostKey: hostKey.privateKey,
      users: [...userKeys].map(([username, publicKey]) => ({ username, publicKey })),
    }).catch((err: NodeJS.ErrnoException) => {
      throw portError("SFTP", options.sftpPort, "--sftp-port", err);
    });
    cleanup.push(() => sftp.close());

    const configPath = path.join(dir, "bridge.config.yaml");
    const eventsPath = path.join(dir, "events.jsonl");
    const local = localDocument(sourceDoc, sftp, keyPathFor);
    await writePrivate(configPath, renderLocalConfig(local, path.relative(process.cwd(), sourceConfigPath)));
    // Read back through the loader the handler uses: a config the stack accepts is one the handler accepts.
    const config = await loadConfig(configPath, {}, { allowFileCredentials: true });

    const buckets = [
      ...new Set([...Object.values(config.streams).map((s) => s.s3.bucket), config.receipts.bucket ?? []].flat()),
    ];
    // s3rver's child dies with a stack trace on a busy port; finding out first keeps that off the user's screen.
    if (options.s3Port) await assertPortFree(options.s3Port, "S3", "--s3-port");
    const s3 = await startLocalS3({ directory: path.join(dir, "s3"), port: options.s3Port ?? 0, buckets }).catch(
      (err: Error) => {
        throw portError("S3", options.s3Port, "--s3-port", err);
      },
    );
    cleanup.push(() => s3.close());

    const streams = describeStreams(config, options.pullIntervalMs, keyPathFor);
    for (const s of streams) {
      for (const remote of [s.push?.to, s.pull?.from].filter((p): p is string => Boolean(p))) {
        await mkdir(path.join(sftpRoot, remote), { recursive: true });
      }
    }
    const knownHostsPath = path.join(dir, "known_hosts");
    await writeFile(knownHostsPath, `[${sftp.host}]:${sftp.port} ${sftp.hostPublicKey}\n`);

    const clientEnv: Record<string, string> = {
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
      AWS_REGION: s3.region,
      // s3rver stores streamed bodies with the SDK's checksum framing inside them otherwise (docs/field-notes.md).
      AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED",
      AWS_RESPONSE_CHECKSUM_VALIDATION: "WHEN_REQUIRED",
      BRIDGE_CONFIG: configPath,
    };
    // The function's environment, as the template sets it, plus what makes its SDK clients talk to s3rver.
    const functionEnv: Record<string, string> = {
      ...clientEnv,
      BRIDGE_ALLOW_FILE_CREDENTIALS: "true",
      // Per-file events of streams with `events: true`, where AWS would put them on an EventBridge bus.
      [LOCAL_ENV.eventsFile]: eventsPath,
      POWERTOOLS_SERVICE_NAME: process.env.POWERTOOLS_SERVICE_NAME ?? "s3-sftp-bridge",
      POWERTOOLS_METRICS_NAMESPACE: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "S3SftpBridge",
      // At least INFO: the per-file lines of SQS batches come from the handler's "run report" log entry.
      POWERTOOLS_LOG_LEVEL: ["DEBUG", "TRACE"].includes(process.env.POWERTOOLS_LOG_LEVEL ?? "")
        ? (process.env.POWERTOOLS_LOG_LEVEL as string)
        : "INFO",
    };
    const savedEnv = Object.fromEntries(Object.keys(functionEnv).map((k) => [k, process.env[k]]));
    Object.assign(process.env, functionEnv);
    cleanup.push(async () => {
      for (const [k, v] of Object.entries(savedEnv)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });

    const lambda = new LocalLambda({
      functionName,
      timeoutSeconds: FUNCTION_TIMEOUT_SECONDS,
      region: REGION,
      logFile: path.join(dir, "logs", "lambda.log"),
      // Required late: the handler's module reads Powertools settings from the environment when it loads, and the
      // module is one warm container for the life of this process (one stack per process).
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      load: () => (require("../../lambda/handler") as { handler: LambdaHandler }).handler,
    });
    cleanup.push(() => lambda.close());

    const printer = new ReportPrinter(out);
    const events = new EventsTail(eventsPath, out);
    const invoke = async (event: unknown, invokeOptions = {}) => {
      const invocation = await lambda.invoke(event, invokeOptions);
      printer.invocation(event, invocation);
      await events.print();
      return invocation;
    };

    const queue = new LocalQueue({
      maxReceiveCount: MAX_RECEIVE_COUNT,
      visibilityTimeoutMs: options.retryDelayMs ?? 10_000,
      deliver: async (event) => {
        const invocation = await invoke(event);
        if (invocation.error) return "all";
        const answer = invocation.result as { batchItemFailures?: { itemIdentifier: string }[] } | undefined;
        return (answer?.batchItemFailures ?? []).map((f) => f.itemIdentifier);
      },
      onDeadLetter: (record) =>
        out(
          line(
            `gave up on ${describeMessage(record)} after ${MAX_RECEIVE_COUNT} attempts (AWS would move it to the dead-letter queue)`,
          ),
        ),
    });
    cleanup.push(() => queue.close());

    // The template subscribes the queue to ObjectCreated under each push source only; receipts and pulled files
    // never reach the function.
    const pushSources = streams.filter((s) => s.push).map((s) => ({ bucket: s.bucket, prefix: s.push!.source }));
    const unsubscribe = s3.onEvent((record: S3EventRecord) => {
      if (!record.eventName.startsWith("ObjectCreated")) return;
      const key = decodeS3EventKey(record.s3.object.key);
      if (!pushSources.some((p) => p.bucket === record.s3.bucket.name && key.startsWith(p.prefix))) return;
      queue.send(JSON.stringify({ Records: [record] }));
    });
    cleanup.push(async () => void unsubscribe());

    const endpoint: InvokeEndpoint = await startInvokeEndpoint({
      functionName,
      functionArn: lambda.functionArn,
      port: options.lambdaPort ?? 0,
      invoke,
    }).catch((err: Error) => {
      throw portError("Lambda Invoke", options.lambdaPort, "--lambda-port", err);
    });
    cleanup.push(() => endpoint.close());
    clientEnv.AWS_ENDPOINT_URL_LAMBDA = endpoint.url;

    const timers = new Map<string, NodeJS.Timeout>();
    let stopping = false;
    cleanup.push(async () => {
      stopping = true;
      timers.forEach((t) => clearTimeout(t));
    });
    for (const s of streams) {
      if (!s.pull || s.pull.everyMs <= 0) continue;
      const tick = async () => {
        if (stopping) return;
        await invoke({ streams: [s.name] });
        if (!stopping)
          timers.set(
            s.name,
            setTimeout(() => void tick(), s.pull!.everyMs),
          );
      };
      // First pull soon after start: files dropped while the stack was down are taken at once.
      timers.set(
        s.name,
        setTimeout(() => void tick(), 500),
      );
    }

    const stackFile = path.join(dir, "stack.json");
    const stack: LocalStack = {
      dir,
      configPath,
      sourceConfigPath,
      config,
      streams,
      s3,
      sftp,
      lambda: { url: endpoint.url, port: endpoint.port, functionName, functionArn: lambda.functionArn },
      knownHostsPath,
      env: clientEnv,
      invoke: (event) => invoke(event),
      eventsPath,
      instructions: () => instructions(stack),
      stop: once(async () => {
        await rm(stackFile, { force: true });
        // Stop taking work first (timers, events, the endpoint), then let running invocations finish, then servers.
        await unwind();
      }),
    };
    await writePrivate(stackFile, JSON.stringify(stackState(stack), null, 2) + "\n");
    await writeFile(path.join(dir, "env"), envFile(clientEnv));
    out(stack.instructions());
    return stack;
  } catch (err) {
    await unwind();
    throw err;
  }
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= fn());
}

function assertPortFree(port: number, what: string, flag: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", (err: NodeJS.ErrnoException) => reject(portError(what, port, flag, err)));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve()));
  });
}

function portError(what: string, port: number | undefined, flag: string, err: Error): Error {
  const inUse = (err as NodeJS.ErrnoException).code === "EADDRINUSE" || /EADDRINUSE/.test(err.message);
  if (!inUse) return err;
  return new Error(
    `the ${what} port ${port} is already in use (another local stack?); stop that, or pass ${flag} <port> (0 = any free port)`,
  );
}

function describeStreams(
  config: BridgeConfig,
  pullIntervalMs: number | undefined,
  keyPathFor: (username: string) => string,
): StreamInfo[] {
  return Object.entries(config.streams).map(([name, s]) => {
    const username = s.sftp.username as string;
    return {
      name,
      bucket: s.s3.bucket,
      username,
      keyPath: keyPathFor(username),
      ...(s.push ? { push: { source: pushSourcePrefix(s) as string, to: s.push.to, patterns: s.push.patterns } } : {}),
      ...(s.pull
        ? {
            pull: {
              from: s.pull.from,
              dest: pullDestPrefix(s) as string,
              doneDir: doneDirOf(s.pull),
              after: s.pull.after,
              everyMs: pullIntervalMs ?? localPullInterval(s.schedule),
              patterns: s.pull.patterns,
              minAgeSeconds: s.pull.minAgeSeconds,
            },
          }
        : {}),
    };
  });
}

/** What `.bridge/stack.json` holds while the stack runs: where everything is, for tools and tests. */
function stackState(stack: LocalStack) {
  return {
    pid: process.pid,
    dir: stack.dir,
    configPath: stack.configPath,
    sourceConfigPath: stack.sourceConfigPath,
    s3: { endpoint: stack.s3.endpoint, port: stack.s3.port, pid: stack.s3.pid, region: stack.s3.region },
    sftp: {
      host: stack.sftp.host,
      port: stack.sftp.port,
      root: stack.sftp.root,
      hostKeyFingerprint: stack.sftp.hostKeyFingerprint,
      knownHosts: stack.knownHostsPath,
    },
    lambda: stack.lambda,
    streams: stack.streams,
    env: stack.env,
  };
}

function envFile(env: Record<string, string>): string {
  return (
    "# Source this file (. .bridge/env) to point the AWS CLI, the SDKs and `bridge` at the local stack.\n" +
    Object.entries(env)
      .map(([k, v]) => `export ${k}=${JSON.stringify(v)}`)
      .join("\n") +
    "\n"
  );
}

function shortPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith("..") ? rel : p;
}

function instructions(stack: LocalStack): string {
  const { s3, sftp, lambda } = stack;
  const onDisk = (remote: string) => shortPath(path.join(sftp.root, remote));
  const lines: string[] = [];
  const say = (text = "") => lines.push(text);
  say(
    `s3-sftp-bridge local stack is running: state in ${shortPath(stack.dir)}, config ${shortPath(stack.sourceConfigPath)}`,
  );
  say(
    `(the handler reads ${shortPath(stack.configPath)}: the same streams, their SFTP side pointed at the embedded server).`,
  );
  for (const s of stack.streams) {
    say();
    say(`Stream "${s.name}"`);
    if (s.push) {
      say(`  S3 -> SFTP: put a file${matching(s.push.patterns)} under s3://${s.bucket}/${s.push.source}`);
      say(`              it arrives on the SFTP server in ${s.push.to} (on disk: ${onDisk(s.push.to)})`);
    }
    if (s.pull) {
      const files = s.pull.minAgeSeconds ? `files at least ${s.pull.minAgeSeconds} s old` : "new files";
      const when = s.pull.everyMs > 0 ? `every ${s.pull.everyMs / 1000} s` : "on each pull (no schedule: invoke it)";
      const after = {
        move: `the originals moved to ${s.pull.doneDir}`,
        delete: "the originals deleted",
        leave: "the originals left in place (taken again only when they change)",
      }[s.pull.after];
      say(
        `  SFTP -> S3: put a file${matching(s.pull.patterns)} in the SFTP folder ${s.pull.from} (on disk: ${onDisk(s.pull.from)})`,
      );
      say(`              ${when}, ${files} are copied to s3://${s.bucket}/${s.pull.dest} and ${after}`);
    }
  }
  const first = stack.streams[0];
  say();
  say(
    `Embedded S3     ${s3.endpoint}  (access key ${s3.credentials.accessKeyId}, secret ${s3.credentials.secretAccessKey}, region ${s3.region}, path-style)`,
  );
  say(`Embedded SFTP   ${sftp.host} port ${sftp.port}  host key ${sftp.hostKeyFingerprint}`);
  for (const user of new Map(stack.streams.map((s) => [s.username, s.keyPath]))) {
    say(`                user ${user[0]}, private key ${shortPath(user[1])}`);
  }
  say(`Lambda Invoke   ${lambda.url}  function "${lambda.functionName}" (set AWS_ENDPOINT_URL_LAMBDA to it)`);
  say(`Lambda logs     ${shortPath(path.join(stack.dir, "logs", "lambda.log"))}`);
  say();
  say(
    `Try it (". ${shortPath(path.join(stack.dir, "env"))}" sets the endpoint and credential variables in your shell):`,
  );
  if (first?.push) {
    const name = exampleName(first.push.patterns);
    say(`  echo hello > ${name} && aws s3 cp ${name} s3://${first.bucket}/${first.push.source}${name}`);
  }
  if (first) {
    const name = first.pull ? exampleName(first.pull.patterns) : "";
    const put = first.pull ? ` <<< 'put ${name} ${first.pull.from}/'` : "";
    say(
      `  sftp -P ${sftp.port} -i ${shortPath(first.keyPath)} -o UserKnownHostsFile=${shortPath(stack.knownHostsPath)} ${first.username}@${sftp.host}${put}`,
    );
  }
  say(
    `  aws lambda invoke --function-name ${lambda.functionName} --cli-binary-format raw-in-base64-out --payload '{"streams":["${first?.name ?? "demo"}"]}' /dev/stdout`,
  );
  if (first) say(`  npx bridge test-connection ${first.name}     npx bridge receipts ${first.name}`);
  say();
  say("Each file moved is listed below. Ctrl-C stops everything.");
  return lines.join("\n");
}

function matching(patterns: string[]): string {
  return patterns.length === 1 && patterns[0] === "**" ? "" : ` matching ${patterns.join(" or ")}`;
}

/** A file name the stream's patterns accept, so the example commands move something. */
export function exampleName(patterns: string[]): string {
  for (const candidate of ["hello.txt", ...patterns.map((p) => p.replace(/\*+/g, "hello").replace(/\?/g, "x"))]) {
    if (!candidate.includes("/") && matchesPatterns(candidate, patterns)) return candidate;
  }
  return "hello.txt";
}

function line(text: string): string {
  return `${new Date().toTimeString().slice(0, 8)}  ${text}`;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function describeMessage(record: SQSRecord): string {
  try {
    const body = JSON.parse(record.body) as { Records?: S3EventRecord[] };
    const keys = (body.Records ?? []).map((r) => `s3://${r.s3.bucket.name}/${decodeS3EventKey(r.s3.object.key)}`);
    return keys.join(", ") || `message ${record.messageId}`;
  } catch {
    return `message ${record.messageId}`;
  }
}

/** Prints the per-file events the function appended since the last look, one line each. */
class EventsTail {
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
class ReportPrinter {
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
