import { createHash, type Hash } from "node:crypto";
import type { Readable } from "node:stream";
import type { ResolvedCredentials } from "../credentials";
import type { Logger } from "../logger";

/**
 * The SFTP endpoint's contract: what a connection to a partner is asked for (SftpTarget), what it can do (SftpSession)
 * and what it reports (RemoteFile). The engine depends on these only; sftp/connect.ts provides the ssh2 implementation
 * and tests may inject another connector.
 */
export interface SftpTarget {
  stream: string;
  host: string;
  port: number;
  username?: string;
  credentials: ResolvedCredentials;
  hostKeys: string[];
  readyTimeoutMs: number;
  operationTimeoutMs: number;
  keepaliveIntervalMs: number;
  algorithms?: { kex?: string[]; cipher?: string[]; serverHostKey?: string[]; hmac?: string[] };
  /** The receive window granted to the server (DEFAULT_WINDOW_BYTES when absent). */
  windowBytes?: number;
}

export interface RemoteFile {
  path: string;
  name: string;
  type: "file" | "dir" | "link" | "other";
  size: number;
  mtimeMs: number;
}

export interface WriteOptions {
  /** Write under a temporary name in the same directory and rename into place once verified. */
  atomic: boolean;
  tempSuffix: string;
  /** Size the source announced; a mismatch fails the write before the rename. */
  expectedSize?: number;
  /** Updated with every byte written (receipts carry the SHA-256). */
  hash?: Hash;
  /**
   * Create the directory (mkdir -p) if the server says it is missing: a look only when needed, not one per folder
   * per batch before the first write.
   */
  createDirs?: boolean;
}

export interface ReadOptions {
  /**
   * The size and mtime the file was listed with: the read fails (VerifyError) if the file no longer has them once
   * read, so a file the partner changes while we read it never reaches S3.
   */
  unchanged?: {
    size: number;
    mtimeMs: number;
    /** Epoch ms before which the final look is not taken: the file must stay unchanged at least until then. */
    notBefore?: number;
  };
}

export interface SftpSession {
  readonly target: SftpTarget;
  readonly fingerprint: string;
  list(dir: string): Promise<RemoteFile[]>;
  stat(path: string): Promise<RemoteFile | undefined>;
  mkdirp(dir: string): Promise<void>;
  write(path: string, source: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<{ bytes: number }>;
  /** Reads exactly `size` bytes (from a prior stat) with several requests in flight, in order. */
  read(path: string, size: number, options?: ReadOptions): Readable;
  /** Moves a file; `replace` overwrites an existing target (atomically where the server supports posix-rename). */
  rename(from: string, to: string, replace: boolean): Promise<void>;
  remove(path: string): Promise<void>;
  /** Sets a file's access and modification times. */
  setTimes(path: string, at: Date): Promise<void>;
  readonly supportsPosixRename: boolean;
  close(): Promise<void>;
}

export type SftpConnector = (target: SftpTarget, logger: Logger) => Promise<SftpSession>;

/** OpenSSH's rendering of a host key: "SHA256:" + unpadded base64 of the SHA-256 of the key blob. */
export function fingerprint(keyBlob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "");
}
