import type { RuntimeOptions } from "./bridge-runtime";

/**
 * The Lambda function's environment contract: every name the function reads from `process.env` (Powertools and the
 * AWS SDK read their own standard variables too, and the handler names the service for Powertools). The bridge template
 * (`templates/bridge.yaml`) sets exactly these names, plus the runtime's NODE_OPTIONS; a test checks the two agree.
 */
export const ENV = {
  /** Where the stream config lives: a file path, `s3://bucket/key`, or an SSM parameter name (`/bridge/config` or `ssm:/bridge/config`). Required. */
  config: "BRIDGE_CONFIG",
  /** Seconds a loaded config (and resolved credentials) stay cached in a warm container. Default 300. */
  cacheTtlSeconds: "BRIDGE_CACHE_TTL_SECONDS",
  /** Stop taking new files this many ms before the Lambda deadline. Default 30000. */
  deadlineMarginMs: "BRIDGE_DEADLINE_MARGIN_MS",
  /** Bucket-notification prefix of the receipts (overrides the config's receipts.prefix). Optional. */
  receiptsPrefix: "BRIDGE_RECEIPTS_PREFIX",
  /**
   * Accept `credentials: { file: ... }` in the config. Only the local stack sets it: in AWS a key file would have to
   * ship inside the deployment package.
   */
  allowFileCredentials: "BRIDGE_ALLOW_FILE_CREDENTIALS",
  /** EventBridge bus for the per-file events of streams with `events: true`. Optional: without it none are sent. */
  eventBus: "BRIDGE_EVENT_BUS",
  /** Powertools settings, read by Powertools itself. */
  serviceName: "POWERTOOLS_SERVICE_NAME",
  metricsNamespace: "POWERTOOLS_METRICS_NAMESPACE",
  logLevel: "POWERTOOLS_LOG_LEVEL",
} as const;

/**
 * Names only the local stack sets (never the template): per-file events appended to this JSON lines file instead of
 * an event bus, so a newcomer sees them without an AWS account.
 */
export const LOCAL_ENV = {
  eventsFile: "BRIDGE_EVENTS_FILE",
} as const;

/** Names the function requires in every deployment. */
export const REQUIRED_ENV = [ENV.config] as const;

export interface HandlerEnv {
  configLocation: string;
  cacheTtlMs: number;
  deadlineMarginMs: number;
  receiptsPrefix?: string;
  allowFileCredentials: boolean;
  eventBus?: string;
  eventsFile?: string;
}

function intFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`environment variable ${name}=${JSON.stringify(raw)} must be a whole number`);
  return n;
}

export function readEnv(env: NodeJS.ProcessEnv = process.env): HandlerEnv {
  const configLocation = env[ENV.config];
  if (!configLocation) {
    throw new Error(
      `environment variable ${ENV.config} is not set: point it at the stream config (path, s3://bucket/key or SSM parameter name)`,
    );
  }
  return {
    configLocation,
    cacheTtlMs: intFrom(env, ENV.cacheTtlSeconds, 300) * 1000,
    deadlineMarginMs: intFrom(env, ENV.deadlineMarginMs, 30_000),
    receiptsPrefix: env[ENV.receiptsPrefix] || undefined,
    allowFileCredentials: env[ENV.allowFileCredentials] === "true",
    eventBus: env[ENV.eventBus] || undefined,
    eventsFile: env[LOCAL_ENV.eventsFile] || undefined,
  };
}

/** The function's settings for the shared AWS wiring; a receipts override names its variable in config errors. */
export function runtimeOptions(env: HandlerEnv): RuntimeOptions {
  return {
    configLocation: env.configLocation,
    cacheTtlMs: env.cacheTtlMs,
    allowFileCredentials: env.allowFileCredentials,
    receiptsPrefix: env.receiptsPrefix ? { value: env.receiptsPrefix, from: ENV.receiptsPrefix } : undefined,
    eventsFile: env.eventsFile,
    eventBus: env.eventBus,
  };
}
