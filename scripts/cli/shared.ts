// What every `bridge` command shares: where output goes, how the config and AWS clients are found, and how an error
// becomes one line and an exit code.
import { randomUUID } from "node:crypto";
import {
  BridgeError,
  createBridge,
  jsonLogger,
  type Bridge,
  type BridgeConfig,
  type LogFields,
  type Logger,
} from "../../lambda/bridge";
import { createBridgeRuntime, type BridgeRuntime } from "../../lambda/bridge-runtime";

export interface Io {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
}

/**
 * Exit codes, documented in `bridge --help` and the README: 0 everything worked; 1 the command could not start (usage,
 * config, unknown stream, credentials that cannot be read); 2 a transfer or connection failed (some files failed,
 * the server refused us, its host key is not pinned).
 */
export const EXIT = { ok: 0, usage: 1, failed: 2 } as const;

/** A mistake in how the command was called or configured: exit 1, no stack trace needed. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Something failed while talking to a server, already described on stdout: exit 2. */
export class FailedError extends Error {
  override name = "FailedError";
}

const SETUP_CODES = new Set([
  "CONFIG_INVALID",
  "CONFIG_NOT_FOUND",
  "UNKNOWN_STREAM",
  "INVALID_KEY",
  "CREDENTIALS_NOT_FOUND",
  "CREDENTIALS_INVALID",
  "REQUEST_INVALID",
]);

/** The SDK's own wording when the environment lacks what every AWS call needs. */
function awsSetupProblem(err: unknown): string | undefined {
  const message = (err as Error)?.message ?? "";
  if (/Region is missing/i.test(message)) return "no AWS region: set AWS_REGION (for example AWS_REGION=eu-west-1)";
  if ((err as Error)?.name === "CredentialsProviderError" || /Could not load credentials/i.test(message)) {
    return "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (the local stack's are in .bridge/env)";
  }
  return undefined;
}

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT.usage;
  if (err instanceof BridgeError && SETUP_CODES.has(err.code)) return EXIT.usage;
  if (awsSetupProblem(err)) return EXIT.usage;
  return EXIT.failed;
}

/** One line (a config error keeps its list of problems), then the stack and causes only when asked for. */
export function describeFailure(err: unknown, debug: boolean): string[] {
  const lines = [`error: ${awsSetupProblem(err) ?? (err instanceof Error ? err.message : String(err))}`];
  if (!debug) return lines;
  let current: unknown = err;
  for (let depth = 0; current && depth < 5; depth++) {
    lines.push(current instanceof Error ? (current.stack ?? String(current)) : String(current));
    current = (current as { cause?: unknown }).cause;
    if (current) lines.push("caused by:");
  }
  return lines;
}

export interface Globals {
  config?: string;
  debug?: boolean;
}

/** --config, else BRIDGE_CONFIG, else ./bridge.config.yaml: the same lookup for every command. */
export function configLocation(globals: Globals, io: Io): string {
  return globals.config ?? io.env.BRIDGE_CONFIG ?? "bridge.config.yaml";
}

/**
 * The function's own wiring (SDK clients from the standard AWS variables, AWS_ENDPOINT_URL_S3 and friends), except
 * that the CLI accepts `credentials: { file: ... }` and never caches.
 */
export function cliRuntime(location: string): BridgeRuntime {
  return createBridgeRuntime({ configLocation: location, cacheTtlMs: 0, allowFileCredentials: true });
}

export interface Opened {
  location: string;
  runtime: BridgeRuntime;
  config: BridgeConfig;
}

export async function openConfig(globals: Globals, io: Io): Promise<Opened> {
  const location = configLocation(globals, io);
  const runtime = cliRuntime(location);
  return { location, runtime, config: await runtime.config() };
}

export function bridgeFor(opened: Opened, logger: Logger): Bridge {
  return createBridge({
    config: opened.config,
    s3: opened.runtime.s3,
    credentials: opened.runtime.credentials,
    logger,
    requestId: `cli-${randomUUID()}`,
  });
}

/** Engine log lines as JSON on stderr with --debug; otherwise only `onEntry` sees them. */
export function cliLogger(
  io: Io,
  debug: boolean | undefined,
  onEntry?: (message: string, fields: LogFields) => void,
): Logger {
  const json = debug ? jsonLogger((l) => io.err(l), "debug") : undefined;
  const entry = (level: keyof Logger) => (message: string, fields?: LogFields) => {
    json?.[level](message, fields);
    onEntry?.(message, fields ?? {});
  };
  return { debug: entry("debug"), info: entry("info"), warn: entry("warn"), error: entry("error") };
}

export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
