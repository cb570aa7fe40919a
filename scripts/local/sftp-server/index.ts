/**
 * An SFTP server built on ssh2's Server that serves one local directory as "/". It stands in for the partner's server
 * in the integration tests, the local stack and benchmarks: a real SSH transport, real files, OpenSSH's semantics where
 * clients can tell the difference (RENAME never replaces, posix-rename@openssh.com does), and switches to inject faults.
 *
 *   server.ts              the TCP listener, ssh2's Server, connections and close()
 *   auth.ts                the users and how their passwords and public keys are checked
 *   keys.ts                key generation (generateUserKey), parsing, the host key's public forms and fingerprint
 *   observed.ts            what the server records: stats and observed, and resetStats()
 *   faults.ts              the fault switches and what each does to a request
 *   session.ts             one SFTP channel: routing requests, error replies, ending like OpenSSH
 *   request-scope.ts       what every request handler is given
 *   handles.ts             a channel's open files and directories, and waiting for a handle's in-flight I/O
 *   file-requests.ts       OPEN, READ, WRITE, CLOSE, FSTAT, FSETSTAT (and fsync)
 *   directory-requests.ts  OPENDIR, READDIR, MKDIR, RMDIR
 *   path-requests.ts       STAT, LSTAT, SETSTAT, REMOVE, REALPATH, READLINK
 *   rename-requests.ts     RENAME (never replaces) and posix-rename (replaces)
 *   extended-requests.ts   EXTENDED: posix-rename, fsync and limits@openssh.com
 *   ssh2-internals.ts      every write on ssh2's private SFTP state (advertising extensions, raw replies)
 *   jail.ts                client paths to real paths, never outside the root
 *   attributes.ts          fs Stats as SFTP attributes and `ls -l` names, and SETSTAT applied
 *   status.ts              how failures become SFTP status replies without leaking real paths
 *   limits.ts              the packet, read and write sizes promised to clients
 */
export { type SftpUser } from "./auth";
export { type SftpFaults } from "./faults";
export { fingerprintOf, generateUserKey } from "./keys";
export { type SftpServerObserved, type SftpServerStats } from "./observed";
export { type EmbeddedSftpOptions, type EmbeddedSftpServer, startSftpServer } from "./server";
