// The local stack behind `npm start`: embedded S3 (s3rver), the embedded SFTP server and the Lambda handler, wired
// as templates/bridge.yaml wires them in AWS (bucket notifications -> queue -> handler for push, a schedule per stream
// for pull, the Invoke API for everything else), so a newcomer sees the real code path move files on one machine.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { S3EventRecord } from "aws-lambda";
import {
  decodeS3EventKey,
  doneDirOf,
  loadConfig,
  parseConfigDocument,
  validateConfig,
  pullDestPrefix,
  pushSourcePrefix,
  type BridgeConfig,
} from "../../lambda/bridge";
import { LOCAL_ENV } from "../../lambda/env";
import { LocalQueue } from "./event-queue";
import { instructions } from "./instructions";
import { onlyFunction, startInvokeEndpoint, type InvokeEndpoint } from "./invoke-endpoint";
import { LocalLambda, type InvokeOptions, type Invocation, type LambdaHandler } from "./lambda-runtime";
import { assertPortFree, portError } from "./ports";
import { EventsTail, ReportPrinter, describeMessage, line } from "./report-printer";
import { startLocalS3, type LocalS3 } from "./s3-server";
import { startSftpServer, type EmbeddedSftpServer } from "./sftp-server";
import {
  keyFileName,
  localDocument,
  persistentKey,
  renderLocalConfig,
  streamUsers,
  writePrivate,
  type KeyPair,
} from "./stack-config";

export { reportOf } from "./report-printer";

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
  const out = options.quiet ? () => undefined : (options.output ?? ((text: string) => console.log(text)));
  const functionName = options.functionName ?? "bridge";
  const sourceConfigPath = path.resolve(options.configPath);
  const state = stateLayout(path.resolve(options.dir));
  const sourceDoc = await readSourceConfig(sourceConfigPath, options.configPath);
  await makeStateDirs(state);
  const keys = await stackKeys(state, sourceDoc);

  const cleanup = new Cleanup();
  try {
    const sftp = await startSftp(state, keys, options.sftpPort, cleanup);
    const config = await writeEffectiveConfig(state, sourceDoc, sftp, sourceConfigPath);
    const s3 = await startS3(state, config, options.s3Port, cleanup);
    const streams = describeStreams(config, options.pullIntervalMs, state.keyPathFor);
    await makeRemoteFolders(state, streams);
    await writeKnownHosts(state, sftp);
    const clientEnv = clientEnvironment(s3, state);
    applyFunctionEnvironment(functionEnvironment(clientEnv, state), cleanup);
    const lambda = startLambda(state, functionName, cleanup);
    const invoke = printingInvoke(lambda, state, out);
    const queue = startQueue(invoke, options.retryDelayMs, out, cleanup);
    subscribePushSources(s3, streams, queue, cleanup);
    const endpoint = await startEndpoint(functionName, lambda, invoke, options.lambdaPort, cleanup);
    startPullTimers(streams, invoke, cleanup);

    const stack: LocalStack = {
      dir: state.dir,
      configPath: state.configPath,
      sourceConfigPath,
      config,
      streams,
      s3,
      sftp,
      lambda: { url: endpoint.url, port: endpoint.port, functionName, functionArn: lambda.functionArn },
      knownHostsPath: state.knownHostsPath,
      env: { ...clientEnv, AWS_ENDPOINT_URL_LAMBDA: endpoint.url },
      invoke: (event) => invoke(event),
      eventsPath: state.eventsPath,
      instructions: () => instructions(stack),
      stop: once(async () => {
        await rm(state.stackFile, { force: true });
        // Stop taking work first (timers, events, the endpoint), then let running invocations finish, then servers.
        await cleanup.unwind();
      }),
    };
    await writeStateFiles(stack, state);
    out(stack.instructions());
    return stack;
  } catch (err) {
    await cleanup.unwind();
    throw err;
  }
}

/** What was started, stopped in the reverse order: on a failed start, and by `stop()`. */
class Cleanup {
  private readonly steps: (() => Promise<void>)[] = [];

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  async unwind(): Promise<void> {
    for (const step of this.steps.reverse()) await step().catch(() => undefined);
  }
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= fn());
}

type Invoke = (event: unknown, invokeOptions?: InvokeOptions) => Promise<Invocation>;

/** The state directory (`.bridge`): what lives where. */
function stateLayout(dir: string) {
  const keysDir = path.join(dir, "keys");
  return {
    dir,
    sftpRoot: path.join(dir, "sftp"),
    keysDir,
    s3Dir: path.join(dir, "s3"),
    logsDir: path.join(dir, "logs"),
    /** The effective config: the source with its SFTP sides pointed at the embedded server. */
    configPath: path.join(dir, "bridge.config.yaml"),
    eventsPath: path.join(dir, "events.jsonl"),
    knownHostsPath: path.join(dir, "known_hosts"),
    stackFile: path.join(dir, "stack.json"),
    envFile: path.join(dir, "env"),
    keyPathFor: (username: string) => path.join(keysDir, keyFileName(username)),
  };
}

type StateLayout = ReturnType<typeof stateLayout>;

async function readSourceConfig(sourceConfigPath: string, displayPath: string): Promise<unknown> {
  // Only the source's shape is needed before the servers exist (user names); it is validated once it is local.
  const sourceText = await readFile(sourceConfigPath, "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the config ${sourceConfigPath}: ${err.code ?? err.message}; pass --config <file>`);
  });
  const sourceDoc = parseConfigDocument(sourceText, displayPath);
  // Problems are reported against the user's file, before any server starts.
  validateConfig(sourceDoc, displayPath, { allowFileCredentials: true });
  return sourceDoc;
}

async function makeStateDirs(state: StateLayout): Promise<void> {
  await Promise.all(
    [state.sftpRoot, state.keysDir, state.s3Dir, state.logsDir].map((d) => mkdir(d, { recursive: true })),
  );
}

/** The host key and each stream user's public key, generated on the first start and read back on later ones. */
async function stackKeys(
  state: StateLayout,
  sourceDoc: unknown,
): Promise<{ hostKey: KeyPair; userKeys: Map<string, string> }> {
  const users = streamUsers(sourceDoc);
  const hostKey = await persistentKey(path.join(state.keysDir, "ssh_host_ed25519_key"));
  const userKeys = new Map<string, string>();
  for (const username of new Set(users.values())) {
    userKeys.set(username, (await persistentKey(state.keyPathFor(username))).publicKey);
  }
  return { hostKey, userKeys };
}

async function startSftp(
  state: StateLayout,
  keys: { hostKey: KeyPair; userKeys: Map<string, string> },
  port: number | undefined,
  cleanup: Cleanup,
): Promise<EmbeddedSftpServer> {
  const sftp = await startSftpServer({
    root: state.sftpRoot,
    port: port ?? 0,
    hostKey: keys.hostKey.privateKey,
    users: [...keys.userKeys].map(([username, publicKey]) => ({ username, publicKey })),
  }).catch((err: NodeJS.ErrnoException) => {
    throw portError("SFTP", port, "--sftp-port", err);
  });
  cleanup.add(() => sftp.close());
  return sftp;
}

async function writeEffectiveConfig(
  state: StateLayout,
  sourceDoc: unknown,
  sftp: EmbeddedSftpServer,
  sourceConfigPath: string,
): Promise<BridgeConfig> {
  const local = localDocument(sourceDoc, sftp, state.keyPathFor);
  await writePrivate(state.configPath, renderLocalConfig(local, path.relative(process.cwd(), sourceConfigPath)));
  // Read back through the loader the handler uses: a config the stack accepts is one the handler accepts.
  return loadConfig(state.configPath, {}, { allowFileCredentials: true });
}

async function startS3(
  state: StateLayout,
  config: BridgeConfig,
  port: number | undefined,
  cleanup: Cleanup,
): Promise<LocalS3> {
  const buckets = [
    ...new Set([...Object.values(config.streams).map((s) => s.s3.bucket), config.receipts.bucket ?? []].flat()),
  ];
  // s3rver's child dies with a stack trace on a busy port; finding out first keeps that off the user's screen.
  if (port) await assertPortFree(port, "S3", "--s3-port");
  const s3 = await startLocalS3({ directory: state.s3Dir, port: port ?? 0, buckets }).catch((err: Error) => {
    throw portError("S3", port, "--s3-port", err);
  });
  cleanup.add(() => s3.close());
  return s3;
}

async function makeRemoteFolders(state: StateLayout, streams: StreamInfo[]): Promise<void> {
  for (const s of streams) {
    for (const remote of [s.push?.to, s.pull?.from].filter((p): p is string => Boolean(p))) {
      await mkdir(path.join(state.sftpRoot, remote), { recursive: true });
    }
  }
}

async function writeKnownHosts(state: StateLayout, sftp: EmbeddedSftpServer): Promise<void> {
  await writeFile(state.knownHostsPath, `[${sftp.host}]:${sftp.port} ${sftp.hostPublicKey}\n`);
}

/** What a client on this machine needs to reach the stack (the Lambda endpoint is added once it listens). */
function clientEnvironment(s3: LocalS3, state: StateLayout): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
    AWS_REGION: s3.region,
    // s3rver stores streamed bodies with the SDK's checksum framing inside them otherwise (docs/field-notes.md).
    AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED",
    AWS_RESPONSE_CHECKSUM_VALIDATION: "WHEN_REQUIRED",
    BRIDGE_CONFIG: state.configPath,
  };
}

/** The function's environment, as the template sets it, plus what makes its SDK clients talk to s3rver. */
function functionEnvironment(clientEnv: Record<string, string>, state: StateLayout): Record<string, string> {
  return {
    ...clientEnv,
    BRIDGE_ALLOW_FILE_CREDENTIALS: "true",
    // Per-file events of streams with `events: true`, where AWS would put them on an EventBridge bus.
    [LOCAL_ENV.eventsFile]: state.eventsPath,
    POWERTOOLS_SERVICE_NAME: process.env.POWERTOOLS_SERVICE_NAME ?? "s3-sftp-bridge",
    POWERTOOLS_METRICS_NAMESPACE: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "S3SftpBridge",
    // At least INFO: the per-file lines of SQS batches come from the handler's "run report" log entry.
    POWERTOOLS_LOG_LEVEL: ["DEBUG", "TRACE"].includes(process.env.POWERTOOLS_LOG_LEVEL ?? "")
      ? (process.env.POWERTOOLS_LOG_LEVEL as string)
      : "INFO",
  };
}

/** The handler runs in this process, so its environment is this process's, restored when the stack stops. */
function applyFunctionEnvironment(functionEnv: Record<string, string>, cleanup: Cleanup): void {
  const savedEnv = Object.fromEntries(Object.keys(functionEnv).map((k) => [k, process.env[k]]));
  Object.assign(process.env, functionEnv);
  cleanup.add(async () => {
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

function startLambda(state: StateLayout, functionName: string, cleanup: Cleanup): LocalLambda {
  const lambda = new LocalLambda({
    functionName,
    timeoutSeconds: FUNCTION_TIMEOUT_SECONDS,
    region: REGION,
    logFile: path.join(state.logsDir, "lambda.log"),
    // Required late: the handler's module reads Powertools settings from the environment when it loads, and the
    // module is one warm container for the life of this process (one stack per process).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    load: () => (require("../../lambda/handler") as { handler: LambdaHandler }).handler,
  });
  cleanup.add(() => lambda.close());
  return lambda;
}

/** Every way in (queue, endpoint, schedule, `stack.invoke`) goes through this, so every run prints what it moved. */
function printingInvoke(lambda: LocalLambda, state: StateLayout, out: (line: string) => void): Invoke {
  const printer = new ReportPrinter(out);
  const events = new EventsTail(state.eventsPath, out);
  return async (event, invokeOptions = {}) => {
    const invocation = await lambda.invoke(event, invokeOptions);
    printer.invocation(event, invocation);
    await events.print();
    return invocation;
  };
}

function startQueue(
  invoke: Invoke,
  retryDelayMs: number | undefined,
  out: (line: string) => void,
  cleanup: Cleanup,
): LocalQueue {
  const queue = new LocalQueue({
    maxReceiveCount: MAX_RECEIVE_COUNT,
    visibilityTimeoutMs: retryDelayMs ?? 10_000,
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
  cleanup.add(() => queue.close());
  return queue;
}

function subscribePushSources(s3: LocalS3, streams: StreamInfo[], queue: LocalQueue, cleanup: Cleanup): void {
  // The template subscribes the queue to ObjectCreated under each push source only; receipts and pulled files
  // never reach the function.
  const pushSources = streams.filter((s) => s.push).map((s) => ({ bucket: s.bucket, prefix: s.push!.source }));
  const unsubscribe = s3.onEvent((record: S3EventRecord) => {
    if (!record.eventName.startsWith("ObjectCreated")) return;
    const key = decodeS3EventKey(record.s3.object.key);
    if (!pushSources.some((p) => p.bucket === record.s3.bucket.name && key.startsWith(p.prefix))) return;
    queue.send(JSON.stringify({ Records: [record] }));
  });
  cleanup.add(async () => void unsubscribe());
}

async function startEndpoint(
  functionName: string,
  lambda: LocalLambda,
  invoke: Invoke,
  port: number | undefined,
  cleanup: Cleanup,
): Promise<InvokeEndpoint> {
  const endpoint = await startInvokeEndpoint({
    functions: onlyFunction(functionName, { functionArn: lambda.functionArn, invoke }),
    arnPrefix: lambda.functionArn.replace(/[^:]+$/, ""),
    port: port ?? 0,
  }).catch((err: Error) => {
    throw portError("Lambda Invoke", port, "--lambda-port", err);
  });
  cleanup.add(() => endpoint.close());
  return endpoint;
}

/** Each pulling stream's schedule, as a timer chain: the next run is set only once the last has finished. */
function startPullTimers(streams: StreamInfo[], invoke: Invoke, cleanup: Cleanup): void {
  const timers = new Map<string, NodeJS.Timeout>();
  let stopping = false;
  cleanup.add(async () => {
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
}

async function writeStateFiles(stack: LocalStack, state: StateLayout): Promise<void> {
  await writePrivate(state.stackFile, JSON.stringify(stackState(stack), null, 2) + "\n");
  await writeFile(state.envFile, envFile(stack.env));
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
