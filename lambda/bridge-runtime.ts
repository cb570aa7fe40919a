import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { S3Client } from "@aws-sdk/client-s3";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SSMClient } from "@aws-sdk/client-ssm";
import {
  createCredentialResolver,
  loadConfig,
  type BridgeConfig,
  type CredentialResolver,
  type FileEventSink,
} from "./bridge";
import { eventBridgeSink, jsonLinesSink } from "./event-sinks";

/**
 * The engine's AWS dependencies as every adapter builds them, the Lambda function and the CLI alike. Each adapter
 * reads its own settings (environment, flags) and passes them in, so none depends on another's.
 */
export interface RuntimeOptions {
  /** Where the stream config lives: a file path, `s3://bucket/key`, or an SSM parameter name. */
  configLocation: string;
  /** How long a loaded config and resolved credentials are reused; 0 reloads them every time. */
  cacheTtlMs: number;
  /** Accept `credentials: { file: ... }` in the config. */
  allowFileCredentials: boolean;
  /** A receipts prefix that overrides the config's, and the setting it came from (named in config errors). */
  receiptsPrefix?: { value: string; from: string };
  /** Per-file events appended to this JSON lines file; wins over `eventBus`. */
  eventsFile?: string;
  /** EventBridge bus for per-file events. */
  eventBus?: string;
}

/**
 * What a long-lived process keeps between runs: SDK clients (connection reuse), the validated config and resolved
 * credentials, each for `cacheTtlMs`, so a rotated secret or an edited config is picked up without a restart.
 */
export interface BridgeRuntime {
  s3: S3Client;
  credentials: CredentialResolver;
  /** Per-file events: a JSON lines file (local stack), else the configured bus, else none. */
  events?: FileEventSink;
  config(): Promise<BridgeConfig>;
}

export function createBridgeRuntime(options: RuntimeOptions, clock: () => number = Date.now): BridgeRuntime {
  // Region and endpoints come from the standard AWS variables (AWS_REGION, AWS_ENDPOINT_URL_*), as in any SDK client;
  // an S3 endpoint of our own (the local stack's) serves buckets by path, not by host name.
  // eslint-disable-next-line no-restricted-properties -- the SDK reads this variable itself; path style must follow it
  const s3 = new S3Client({ forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3) });
  const ssm = new SSMClient({});
  const credentials = createCredentialResolver({
    secretsManager: new SecretsManagerClient({}),
    ssm,
    s3,
    ttlMs: options.cacheTtlMs,
    clock,
    allowFiles: options.allowFileCredentials,
  });
  let cached: { config: BridgeConfig; at: number } | undefined;
  const events = options.eventsFile
    ? jsonLinesSink(options.eventsFile, clock)
    : options.eventBus
      ? eventBridgeSink(new EventBridgeClient({}), options.eventBus)
      : undefined;
  return {
    s3,
    credentials,
    events,
    async config() {
      if (cached && clock() - cached.at < options.cacheTtlMs) return cached.config;
      const config = await loadConfig(
        options.configLocation,
        { s3, ssm },
        { allowFileCredentials: options.allowFileCredentials, receiptsPrefix: options.receiptsPrefix },
      );
      cached = { config, at: clock() };
      return config;
    },
  };
}
