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
import { ENV, type HandlerEnv } from "./env";
import { eventBridgeSink, jsonLinesSink } from "./event-sinks";

/**
 * What a warm container keeps between invocations: SDK clients (connection reuse), the validated config and resolved
 * credentials, each for `cacheTtlMs`, so a rotated secret or an edited config is picked up without a redeploy.
 */
export interface Runtime {
  s3: S3Client;
  credentials: CredentialResolver;
  /** Per-file events: a JSON lines file (local stack), else the configured bus, else none. */
  events?: FileEventSink;
  config(): Promise<BridgeConfig>;
}

export function createRuntime(env: HandlerEnv, clock: () => number = Date.now): Runtime {
  // Region and endpoints come from the standard AWS variables (AWS_REGION, AWS_ENDPOINT_URL_*), as in any SDK client.
  const s3 = new S3Client({ forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3) });
  const ssm = new SSMClient({});
  const credentials = createCredentialResolver({
    secretsManager: new SecretsManagerClient({}),
    ssm,
    s3,
    ttlMs: env.cacheTtlMs,
    clock,
    allowFiles: env.allowFileCredentials,
  });
  let cached: { config: BridgeConfig; at: number } | undefined;
  const events = env.eventsFile
    ? jsonLinesSink(env.eventsFile, clock)
    : env.eventBus
      ? eventBridgeSink(new EventBridgeClient({}), env.eventBus)
      : undefined;
  return {
    s3,
    credentials,
    events,
    async config() {
      if (cached && clock() - cached.at < env.cacheTtlMs) return cached.config;
      const config = await loadConfig(
        env.configLocation,
        { s3, ssm },
        {
          allowFileCredentials: env.allowFileCredentials,
          receiptsPrefix: env.receiptsPrefix ? { value: env.receiptsPrefix, from: ENV.receiptsPrefix } : undefined,
        },
      );
      cached = { config, at: clock() };
      return config;
    },
  };
}
