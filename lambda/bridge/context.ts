import { randomBytes } from "node:crypto";
import type { S3Client } from "@aws-sdk/client-s3";
import type { BridgeConfig } from "./config/schema";
import type { CredentialResolver } from "./credentials";
import type { Logger } from "./logger";
import { ClaimStore } from "./claims";
import type { FileEventSink } from "./file-events";
import { ReceiptStore } from "./receipts";
import { S3Endpoint, type S3UploadOptions } from "./s3";
import { connectSftp, type SftpConnector } from "./sftp";

/** Everything the engine is given by an adapter. Nothing here comes from the environment. */
export interface EngineDeps {
  config: BridgeConfig;
  s3: S3Client;
  credentials: CredentialResolver;
  logger: Logger;
  /** Defaults to the ssh2-sftp-client connector; tests inject fault-injecting ones. */
  connect?: SftpConnector;
  clock?: () => number;
  upload?: S3UploadOptions;
  /** Recorded in receipts (the Lambda request id, a CLI run id). */
  requestId?: string;
  /** Where per-file events go, for streams with `events: true`; none when absent. */
  events?: FileEventSink;
}

export interface EngineContext {
  config: BridgeConfig;
  s3: S3Endpoint;
  receipts: ReceiptStore;
  claims: ClaimStore;
  credentials: CredentialResolver;
  connect: SftpConnector;
  logger: Logger;
  clock: () => number;
  upload: S3UploadOptions;
  requestId?: string;
  events?: FileEventSink;
}

export function engineContext(deps: EngineDeps): EngineContext {
  const s3 = new S3Endpoint(deps.s3);
  const receipts = new ReceiptStore(deps.s3, deps.config);
  const clock = deps.clock ?? Date.now;
  // A claim names its holder; without a request id, a random one still tells two runs apart.
  const owner = deps.requestId ?? `run-${randomBytes(6).toString("hex")}`;
  return {
    config: deps.config,
    s3,
    receipts,
    claims: new ClaimStore(s3, receipts, clock, deps.logger, owner),
    credentials: deps.credentials,
    connect: deps.connect ?? connectSftp,
    logger: deps.logger,
    clock,
    upload: deps.upload ?? {},
    requestId: deps.requestId,
    events: deps.events,
  };
}

/** Options every run takes from its adapter. */
export interface RunOptions {
  /** Epoch ms after which no new file is started (the adapter subtracts its safety margin). */
  deadline?: number;
  /**
   * Epoch ms at which the run is stopped for good (a Lambda's timeout). Push claims last until then, so a run that is
   * killed blocks a file no longer than it could have run.
   */
  endsAt?: number;
}
