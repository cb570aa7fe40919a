// The Lambda handler as the deployed function runs it: configured only through the environment the template sets,
// here pointed at a BridgeEnv's local S3 and SFTP server, and invoked with a Lambda context.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { Context } from "aws-lambda";
import { stringify } from "yaml";
import type { BridgeEnv } from "./bridge-env";

type Handler = typeof import("../../lambda/handler").handler;

/** The context fields that stay the same from one invocation to the next. */
export const LAMBDA_CONTEXT_FIELDS = {
  functionName: "bridge",
  functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:bridge",
  memoryLimitInMB: "512",
} as const;

/** A Lambda context whose clock stands still at `remainingMs`, so the handler's deadline planning is predictable. */
export function lambdaContext(awsRequestId: string, remainingMs: number): Context {
  return { ...LAMBDA_CONTEXT_FIELDS, awsRequestId, getRemainingTimeInMillis: () => remainingMs } as unknown as Context;
}

export interface HandlerEnvOptions {
  /** The config file's name in the BridgeEnv's directory. */
  configName?: string;
  /** BRIDGE_DEADLINE_MARGIN_MS; without it the handler keeps its own margin. */
  deadlineMarginMs?: number;
  /** POWERTOOLS_SERVICE_NAME, set with the template's metrics namespace; without it Powertools keeps its defaults. */
  service?: string;
}

/** Writes the BridgeEnv's config to a file and returns the variables that point the handler at it and at s3rver. */
export async function handlerEnvironment(env: BridgeEnv, options: HandlerEnvOptions = {}): Promise<NodeJS.ProcessEnv> {
  const configPath = path.join(env.dir, options.configName ?? "bridge.config.yaml");
  await writeFile(configPath, stringify(env.configDoc()));
  return {
    BRIDGE_CONFIG: configPath,
    BRIDGE_ALLOW_FILE_CREDENTIALS: "true",
    ...(options.deadlineMarginMs === undefined ? {} : { BRIDGE_DEADLINE_MARGIN_MS: String(options.deadlineMarginMs) }),
    AWS_ENDPOINT_URL_S3: env.s3.endpoint,
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
    AWS_REGION: "us-east-1",
    AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED",
    ...(options.service === undefined
      ? {}
      : { POWERTOOLS_METRICS_NAMESPACE: "S3SftpBridge", POWERTOOLS_SERVICE_NAME: options.service }),
  };
}

/**
 * Sets `variables` on process.env, then loads the handler in this process; `restore` puts the environment back as it
 * was. The handler is required only now because Powertools reads its namespace and service name at module load.
 */
export function loadHandler(variables: NodeJS.ProcessEnv): { handler: Handler; restore(): void } {
  const saved = { ...process.env };
  const restore = () => {
    process.env = saved;
  };
  Object.assign(process.env, variables);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { handler } = require("../../lambda/handler") as typeof import("../../lambda/handler");
    return { handler, restore };
  } catch (err) {
    restore();
    throw err;
  }
}
