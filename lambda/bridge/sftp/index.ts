/**
 * The SFTP endpoint: one authenticated connection with pinned host keys, and the few operations the engine needs.
 * Bulk data goes through our own pipelined reader/writer on ssh2's SFTP channel; every foreign error is wrapped here,
 * once, into an SftpError naming the operation and the remote path.
 *
 *   types.ts         the contract (SftpTarget, SftpSession, RemoteFile) and the OpenSSH fingerprint
 *   connect.ts       the production connector: authenticate, pin the host key, tune the transport
 *   session.ts       the session's operations (list, stat, mkdir -p, atomic write, rename, remove)
 *   pipelined-io.ts  reads and writes with many requests in flight
 *   ssh2-tuning.ts   every patch of ssh2's private fields
 *   errors.ts        how foreign errors become SftpErrors
 */
export * from "./types";
export { connectSftp } from "./connect";
export { DEFAULT_WINDOW_BYTES } from "./pipelined-io";
