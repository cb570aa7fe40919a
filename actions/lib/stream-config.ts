import type { S3Client } from "@aws-sdk/client-s3";
import type { SSMClient } from "@aws-sdk/client-ssm";
import { loadConfig, type BridgeConfig, type StreamConfig } from "../../lambda/bridge/config";
import { ActionError } from "./errors";

// Apart from deployment.ts, so an action that never reads the bridge's config (resend) does not bundle its loader.

/** The bridge's own config, read where the function reads it, and the one stream the action is about. */
export async function loadStream(
  location: string,
  stream: string,
  clients: { s3: S3Client; ssm: SSMClient },
): Promise<{ config: BridgeConfig; stream: StreamConfig }> {
  // File credentials are allowed here: a workflow may write a key file for the action; the action only reads paths.
  const config = await loadConfig(location, clients, { allowFileCredentials: true });
  const found = config.streams[stream];
  if (!found) {
    throw new ActionError(
      "UNKNOWN_STREAM",
      `stream ${JSON.stringify(stream)} is not in the bridge config ${location} (it has: ${Object.keys(config.streams).join(", ") || "none"})`,
    );
  }
  return { config, stream: found };
}
