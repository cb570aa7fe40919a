// What adapters, scripts and tests outside the engine may use: names nobody outside needs stay unexported, so the
// engine's internals can change without touching its callers. Tests of one module's internals import that module.

// The engine: one bridge over a config, and what it is built from.
export { createBridge, type Bridge } from "./bridge";
export { type EngineDeps } from "./context";

// Config: the stream config, loaded and validated as the function loads it.
export {
  loadConfig,
  parseConfigDocument,
  validateConfig,
  type BridgeConfig,
  type BridgeConfigInput,
  type CredentialsRef,
  type StreamConfig,
} from "./config";

// Events and routing: which stream an S3 key or stream name belongs to, and where its files live.
export { pullDestPrefix, pushSourcePrefix, requireStream, routeObject } from "./routing";
export {
  decodeS3EventKey,
  doneDirOf,
  matchesPatterns,
  normalizePrefix,
  parseS3Uri,
  relativeKey,
  remoteRelative,
} from "./paths";

// Transfers: what a push takes and what a pull refuses.
export { type PushItem } from "./push";
export { PULL_REFUSED } from "./pull";
export { PulledState } from "./pulled-state";

// Receipts: the record of each delivery.
export { ReceiptStore, type Receipt } from "./receipts";

// Credentials: secrets resolved (and cached) for a stream's SFTP login.
export { createCredentialResolver, type CredentialResolver, type ResolvedCredentials } from "./credentials";

// SFTP: connecting to a stream's server and pinning its host key.
export { connectSftp, fingerprint, type SftpConnector, type SftpSession, type SftpTarget } from "./sftp";
export { sftpTargetFor } from "./session";

// S3: the store that objects and receipts live in.
export { S3Endpoint } from "./s3";

// Per-file events, for an adapter's sink.
export { EVENT_SOURCE, type FileEvent, type FileEventSink } from "./file-events";

// Errors and reporting: what failed, what moved, and how an adapter logs and measures it.
export { BridgeError, HostKeyError, InvalidKeyError, SftpError } from "./errors";
export { type Direction, type RunReport, type StreamReport } from "./report";
export { reportMetrics, type MetricName } from "./metrics";
export { jsonLogger, silentLogger, type LogFields, type Logger } from "./logger";
