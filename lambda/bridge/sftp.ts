import { createHash, createSecretKey, randomBytes, randomFillSync, type Hash } from "node:crypto";
import type { Socket } from "node:net";
import { posix } from "node:path";
import { Readable } from "node:stream";
import SftpClient from "ssh2-sftp-client";
import type { Client, SFTPWrapper, Stats } from "ssh2";
import { HostKeyError, SftpError, VerifyError, BridgeError, type ErrorContext } from "./errors";
import type { Logger } from "./logger";
import type { ResolvedCredentials } from "./credentials";

/**
 * The SFTP endpoint: one authenticated connection with pinned host keys, and the few operations the engine needs.
 * Bulk data goes through our own pipelined reader/writer on ssh2's SFTP channel, because ssh2's streams keep a single
 * request in flight (docs/field-notes.md: that caps a loopback transfer far below the link); every foreign error is wrapped
 * here, once, into an SftpError naming the operation and the remote path.
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

export interface SftpSession {
  readonly target: SftpTarget;
  readonly fingerprint: string;
  list(dir: string): Promise<RemoteFile[]>;
  stat(path: string): Promise<RemoteFile | undefined>;
  mkdirp(dir: string): Promise<void>;
  write(path: string, source: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<{ bytes: number }>;
  /** Reads exactly `size` bytes (from a prior stat) with several requests in flight, in order. */
  read(path: string, size: number): Readable;
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

// SFTP status codes (draft-ietf-secsh-filexfer-02) that callers branch on.
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;
/**
 * The SSH channel window we grant the server, and the bytes of READ and WRITE requests a transfer keeps outstanding.
 * A transfer moves at most (bytes in flight) per round trip: 8 MiB is 80 MB/s at 100 ms. ssh2 grants only 2 MiB and
 * tops it up when half is used (about 1 MiB per round trip, 10 MB/s at 100 ms); widenReceiveWindow lifts that.
 */
export const DEFAULT_WINDOW_BYTES = 16 * 1024 * 1024;
const MAX_WRITE_BYTES_IN_FLIGHT = 8 * 1024 * 1024;
const MAX_READ_BYTES_IN_FLIGHT = 4 * 1024 * 1024;
/**
 * A partner this far away (the quickest READ answer, in ms) gets more READ bytes in flight: up to three quarters of the
 * window. On loopback more in flight only costs (a 128 MiB read: 245 MB/s with 4 MiB, 140 MB/s with 8 MiB).
 */
const DISTANT_MS = 10;
const CLOSE_GRACE_MS = 2000;

/** The SFTP status of an error, whether it came raw from ssh2 (a number) or via ssh2-sftp-client (an errno name). */
function sftpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === "number") return code;
  if (code === "ENOENT") return NO_SUCH_FILE;
  if (code === "EACCES") return PERMISSION_DENIED;
  return undefined;
}

function reason(err: unknown): string {
  const code = sftpCode(err);
  if (code === NO_SUCH_FILE) return "no such file or directory";
  if (code === PERMISSION_DENIED) return "permission denied";
  const message = err instanceof Error ? err.message : String(err);
  // ssh2-sftp-client prefixes its method name and sometimes appends the path; keep the server's words only.
  return message.replace(/^[_a-zA-Z]+(->|: )/, "");
}

function opError(op: string, path: string, err: unknown, context: ErrorContext): SftpError {
  if (err instanceof BridgeError) return err as SftpError;
  const connectionLost = /No response from server|Not connected|connection|ECONNRESET|EPIPE|closed/i.test(reason(err));
  return new SftpError(
    op === "rename" ? "SFTP_RENAME_FAILED" : "SFTP_OPERATION_FAILED",
    `sftp ${op} ${path}: ${reason(err)}`,
    // A lost connection is worth retrying; a refusal by the server usually is not.
    {
      cause: err,
      context: { ...context, path, sftpStatus: sftpCode(err) },
      retryable: connectionLost || sftpCode(err) === undefined,
    },
  );
}

function withTimeout<T>(promise: Promise<T>, ms: number, describe: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new SftpError("SFTP_OPERATION_TIMEOUT", `${describe()}: no answer within ${ms} ms`, { retryable: true }),
        ),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function typeOf(longnameOrType: string): RemoteFile["type"] {
  if (longnameOrType === "-") return "file";
  if (longnameOrType === "d") return "dir";
  if (longnameOrType === "l") return "link";
  return "other";
}

function statToFile(path: string, st: Stats | SftpClient.FileStats): RemoteFile {
  const isDir = typeof st.isDirectory === "function" ? st.isDirectory() : Boolean(st.isDirectory);
  const isFile = typeof st.isFile === "function" ? st.isFile() : Boolean(st.isFile);
  const isLink =
    typeof st.isSymbolicLink === "function"
      ? st.isSymbolicLink()
      : Boolean((st as SftpClient.FileStats).isSymbolicLink);
  const mtime = "modifyTime" in st ? st.modifyTime : (st as Stats).mtime * 1000;
  return {
    path,
    name: posix.basename(path),
    type: isFile ? "file" : isDir ? "dir" : isLink ? "link" : "other",
    size: Number(st.size),
    mtimeMs: mtime,
  };
}

function connectError(target: SftpTarget, err: unknown, seen: string | undefined, rejected: boolean): BridgeError {
  const where = `${target.host}:${target.port}`;
  if (rejected && seen) return new HostKeyError(target.host, target.port, seen, target.hostKeys);
  const raw = err as { level?: string; code?: string; message?: string };
  const context = { stream: target.stream, host: target.host, port: target.port };
  if (raw?.level === "client-authentication") {
    return new SftpError(
      "SFTP_AUTH_FAILED",
      `sftp connect ${where}: authentication failed for user "${target.username ?? target.credentials.username}"; ` +
        `check the stream's credentials (username, password or private key) and that the partner has our public key`,
      { cause: err, context },
    );
  }
  if (raw?.level === "client-timeout" || /timed out/i.test(raw?.message ?? "")) {
    return new SftpError("SFTP_CONNECT_TIMEOUT", `sftp connect ${where}: timed out after ${target.readyTimeoutMs} ms`, {
      cause: err,
      context,
      retryable: true,
    });
  }
  return new SftpError("SFTP_CONNECT_FAILED", `sftp connect ${where}: ${raw?.message ?? String(err)}`, {
    cause: err,
    context,
    retryable: true,
  });
}

/** The production connector: ssh2-sftp-client for the session, our pipelining for the bytes. */
export const connectSftp: SftpConnector = async (target, logger) => {
  const username = target.username ?? target.credentials.username;
  if (!username) {
    throw new SftpError(
      "SFTP_CONNECT_FAILED",
      `sftp connect ${target.host}:${target.port}: no username; set streams.${target.stream}.sftp.username or a "username" field in the secret`,
      { context: { stream: target.stream } },
    );
  }
  const client = new SftpClient(`bridge:${target.stream}`, {
    // The library's default listeners print to the console; route them to our logger instead.
    error: (err: unknown) => logger.debug("sftp connection error", { stream: target.stream, error: reason(err) }),
    end: () => logger.debug("sftp connection ended", { stream: target.stream }),
    close: () => logger.debug("sftp connection closed", { stream: target.stream }),
  });
  // ssh2-sftp-client keeps its ssh2 Client public but untyped; we need it for raw errors and the socket.
  const ssh = (client as unknown as { client: Client }).client;
  let seen: string | undefined;
  let rejected = false;
  let rawError: unknown;
  ssh.on("error", (err: unknown) => (rawError ??= err));
  try {
    await client.connect({
      host: target.host,
      port: target.port,
      username,
      // ssh2 makes a password attempt, before the key, for any string it is given, even "": only pass a real one.
      ...(target.credentials.password ? { password: target.credentials.password } : {}),
      privateKey: target.credentials.privateKey,
      passphrase: target.credentials.passphrase,
      readyTimeout: target.readyTimeoutMs,
      keepaliveInterval: target.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      algorithms: target.algorithms as never,
      hostVerifier: (key: Buffer) => {
        seen = fingerprint(key);
        rejected = !target.hostKeys.includes(seen);
        return !rejected;
      },
    });
  } catch (err) {
    await client.end().catch(() => undefined);
    throw connectError(target, rawError ?? err, seen, rejected);
  }
  tuneTransport(ssh);
  widenReceiveWindow((client as unknown as { sftp?: unknown }).sftp, ssh, target.windowBytes ?? DEFAULT_WINDOW_BYTES);
  return new Ssh2Session(target, client, ssh, seen as string, logger);
};

/**
 * Performance settings for an established ssh2 connection; none changes what goes over the wire, only how fast.
 * - TCP_NODELAY: Nagle's algorithm stalls request/response SFTP traffic (docs/field-notes.md: 1.6 MB/s -> 142 MB/s).
 * - Writes batched per tick: ssh2 hands the socket each packet in 3-4 pieces (length, body, tag), so with NODELAY
 *   every SSH packet cost 3-4 write syscalls and as many TCP segments. Corking until the end of the tick turns the
 *   requests issued together into one writev.
 * - AES-GCM keys as KeyObjects: without ssh2's native binding (not built for this Node) ssh2 creates a node:crypto
 *   cipher per packet from a Buffer key, and Node 24 spends longer converting that key than encrypting 32 KiB. On
 *   the same path, each packet's random padding is taken from a pooled block of CSPRNG output (allocGcmPacket).
 *   Guarded by class and field names: on any other ssh2 build or cipher nothing is changed.
 */
function tuneTransport(ssh: Client): void {
  const internals = ssh as unknown as { _sock?: Socket; _protocol?: Record<string, unknown> };
  const sock = internals._sock;
  if (sock && typeof sock.setNoDelay === "function") {
    sock.setNoDelay(true);
    corkPerTick(sock);
  }
  const protocol = internals._protocol;
  if (!protocol) return;
  for (const [field, keyField] of [
    ["_cipher", "_encKey"],
    ["_decipher", "_decipherKey"],
  ] as const) {
    // An accessor, so that a cipher installed by a later re-key is converted too.
    let current = protocol[field];
    keyObjectFor(current, keyField);
    Object.defineProperty(protocol, field, {
      configurable: true,
      enumerable: true,
      get: () => current,
      set: (value: unknown) => {
        current = value;
        keyObjectFor(value, keyField);
      },
    });
  }
}

const NODE_CRYPTO_GCM = new Set(["AESGCMCipherNative", "AESGCMDecipherNative"]);

function keyObjectFor(cipher: unknown, keyField: string): void {
  const c = cipher as Record<string, unknown> | undefined;
  if (!c || !NODE_CRYPTO_GCM.has((c.constructor as { name?: string } | undefined)?.name ?? "")) return;
  const key = c[keyField];
  if (Buffer.isBuffer(key)) c[keyField] = createSecretKey(key);
  if (c.constructor?.name === "AESGCMCipherNative" && typeof c.allocPacket === "function")
    c.allocPacket = allocGcmPacket;
}

/**
 * ssh2's AESGCMCipherNative.allocPacket, except that the 4-19 bytes of random padding come from a 64 KiB block of
 * CSPRNG output instead of one randomFillSync call per packet (7% of a push's CPU). Same layout: uint32 length, pad
 * length, payload (written by the caller), random padding to a multiple of the 16-byte block.
 */
function allocGcmPacket(payloadLen: number): Buffer {
  let pktLen = 4 + 1 + payloadLen;
  let padLen = 16 - ((pktLen - 4) & 15);
  if (padLen < 4) padLen += 16;
  pktLen += padLen;
  const packet = Buffer.allocUnsafe(pktLen);
  packet.writeUInt32BE(pktLen - 4, 0);
  packet[4] = padLen;
  randomPadding(packet, 5 + payloadLen, padLen);
  return packet;
}

const padding = { pool: Buffer.alloc(0), at: 0 };

function randomPadding(target: Buffer, offset: number, length: number): void {
  if (padding.at + length > padding.pool.length) {
    padding.pool = randomFillSync(Buffer.allocUnsafe(64 * 1024));
    padding.at = 0;
  }
  padding.pool.copy(target, offset, padding.at, padding.at + length);
  padding.at += length;
}

/** Window credit is returned in steps of at least this much: one WINDOW_ADJUST per step, not per packet. */
const WINDOW_STEP = 1024 * 1024;

/**
 * Grants the server a receive window of `windowBytes` on the SFTP channel and returns credit as soon as a step of it
 * is used, as OpenSSH does in small steps, instead of ssh2's fixed 2 MiB topped up only at half (which holds a pull
 * to about 1 MiB per round trip). The window only says how much the server may send unasked; an SFTP server sends
 * only answers to our READs, and those are bounded by MAX_READ_BYTES_IN_FLIGHT, so memory stays bounded.
 * Guarded by field names: on an ssh2 build without them nothing changes.
 */
function widenReceiveWindow(sftp: unknown, ssh: Client, windowBytes: number): void {
  const channel = sftp as
    | {
        incoming?: { window?: number };
        outgoing?: { id?: number; state?: string };
        push?: (data: Buffer) => boolean;
      }
    | undefined;
  const protocol = (ssh as unknown as { _protocol?: { channelWindowAdjust?: (id: number, amount: number) => void } })
    ._protocol;
  const incoming = channel?.incoming;
  const outgoing = channel?.outgoing;
  const push = channel?.push;
  if (
    !channel ||
    !incoming ||
    !outgoing ||
    typeof incoming.window !== "number" ||
    typeof outgoing.id !== "number" ||
    typeof push !== "function" ||
    typeof protocol?.channelWindowAdjust !== "function"
  ) {
    return;
  }
  const topUp = () => {
    if (outgoing.state !== "open") return;
    const amount = windowBytes - (incoming.window as number);
    if (amount < WINDOW_STEP) return;
    incoming.window = (incoming.window as number) + amount;
    protocol.channelWindowAdjust!(outgoing.id as number, amount);
  };
  topUp();
  // ssh2 subtracts each CHANNEL_DATA from the window, then hands it to push(): credit goes back right after. Kept
  // above half the window, ssh2's own top-up (at 1 MiB) never fires.
  channel.push = function (this: unknown, data: Buffer) {
    const result = push.call(this, data);
    topUp();
    return result;
  };
}

function corkPerTick(sock: Socket): void {
  const write = sock.write as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = () => {
    corked = false;
    sock.uncork();
  };
  sock.write = function (this: Socket, ...args: unknown[]) {
    if (!corked && !sock.destroyed) {
      corked = true;
      sock.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Socket["write"];
}

class Ssh2Session implements SftpSession {
  private readonly made = new Set<string>();
  private readonly sftp: SFTPWrapper;
  private readonly readers = new Set<PipelinedReader>();
  /** Rejects once the connection is gone, so nothing waits for answers that cannot come (ssh2 would leave them pending). */
  private readonly lost: Promise<never>;
  private gone: Error | undefined;
  readonly supportsPosixRename: boolean;

  constructor(
    readonly target: SftpTarget,
    private readonly client: SftpClient,
    private readonly ssh: Client,
    readonly fingerprint: string,
    private readonly logger: Logger,
  ) {
    this.sftp = (client as unknown as { sftp: SFTPWrapper }).sftp;
    const extensions = (this.sftp as unknown as { _extensions?: Record<string, unknown> })._extensions ?? {};
    this.supportsPosixRename = "posix-rename@openssh.com" in extensions;
    this.lost = new Promise<never>((_, reject) => {
      const onGone = () => {
        if (this.gone) return;
        this.gone = new SftpError("SFTP_CONNECT_FAILED", `sftp ${target.host}:${target.port}: connection lost`, {
          context: { stream: target.stream, host: target.host },
          retryable: true,
        });
        for (const reader of this.readers) reader.destroy(this.gone);
        reject(this.gone);
      };
      ssh.once("close", onGone);
      ssh.once("end", onGone);
    });
    this.lost.catch(() => undefined);
  }

  /** An SFTP request bounded by the operation timeout and by the life of the connection. */
  private guard<T>(promise: Promise<T>, describe: () => string): Promise<T> {
    if (this.gone) {
      promise.catch(() => undefined);
      return Promise.reject(this.gone);
    }
    return withTimeout(Promise.race([promise, this.lost]), this.target.operationTimeoutMs, describe);
  }

  private get ctx(): ErrorContext {
    return { stream: this.target.stream, host: this.target.host };
  }

  private op<T>(name: string, path: string, run: () => Promise<T>): Promise<T> {
    return this.guard(run(), () => `sftp ${name} ${path}`).catch((err: unknown) => {
      throw opError(name, path, err, this.ctx);
    });
  }

  async list(dir: string): Promise<RemoteFile[]> {
    const entries = await this.op("list", dir, () => this.client.list(dir));
    return entries
      .filter((e) => e.name !== "." && e.name !== "..")
      .map((e) => ({
        path: posix.join(dir, e.name),
        name: e.name,
        type: typeOf(e.type),
        size: e.size,
        mtimeMs: e.modifyTime,
      }));
  }

  async stat(path: string): Promise<RemoteFile | undefined> {
    try {
      const st = await this.guard(this.client.stat(path), () => `sftp stat ${path}`);
      return statToFile(path, st);
    } catch (err) {
      if (sftpCode(err) === NO_SUCH_FILE) return undefined;
      throw opError("stat", path, err, this.ctx);
    }
  }

  async mkdirp(dir: string): Promise<void> {
    const normal = posix.normalize(dir);
    if (normal === "/" || normal === "." || this.made.has(normal)) return;
    const existing = await this.stat(normal);
    if (existing?.type === "dir") {
      this.made.add(normal);
      return;
    }
    if (existing) throw opError("mkdir", normal, new Error("exists and is not a directory"), this.ctx);
    await this.mkdirp(posix.dirname(normal));
    try {
      await this.guard(this.client.mkdir(normal, false), () => `sftp mkdir ${normal}`);
    } catch (err) {
      // Another writer (a concurrent file of this batch) may have made it first.
      if ((await this.stat(normal))?.type !== "dir") throw opError("mkdir", normal, err, this.ctx);
    }
    this.made.add(normal);
  }

  async write(path: string, source: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<{ bytes: number }> {
    const dir = posix.dirname(path);
    const tempPath = options.atomic
      ? posix.join(dir, `.${posix.basename(path)}.${randomBytes(4).toString("hex")}${options.tempSuffix}`)
      : path;
    let bytes = 0;
    try {
      let handle: Buffer;
      try {
        handle = await this.guard(this.openHandle(tempPath, "w"), () => `sftp open ${tempPath}`);
      } catch (err) {
        if (!options.createDirs || sftpCode(err) !== NO_SUCH_FILE) throw opError("open", tempPath, err, this.ctx);
        await this.mkdirp(dir);
        handle = await this.op("open", tempPath, () => this.openHandle(tempPath, "w"));
      }
      let failure: unknown;
      bytes = await pipelinedWrite(
        this.sftp,
        handle,
        source,
        this.lost,
        this.target.operationTimeoutMs,
        options.hash,
      ).catch((err: unknown) => {
        failure = err;
        return 0;
      });
      // The size is asked on the handle together with the close, in one round trip; a server that does not answer
      // FSTAT (or answers it after the close) is asked by path afterwards.
      const sized =
        failure === undefined
          ? this.guard(this.fstatHandle(handle), () => `sftp fstat ${tempPath}`).then(
              (st) => statToFile(tempPath, st),
              () => undefined,
            )
          : undefined;
      // The server may only report a failed write (disk full) on close, so a close error counts too.
      await this.op("close", tempPath, () => this.closeHandle(handle)).catch((err: unknown) => (failure ??= err));
      if (failure !== undefined) throw failure;
      const written = (await sized) ?? (await this.stat(tempPath));
      if (
        !written ||
        written.size !== bytes ||
        (options.expectedSize !== undefined && bytes !== options.expectedSize)
      ) {
        throw new VerifyError(
          `sftp verify ${tempPath}: remote size ${written?.size ?? "missing"}, wrote ${bytes}` +
            (options.expectedSize === undefined ? "" : `, source size ${options.expectedSize}`),
          { ...this.ctx, path },
        );
      }
      if (options.atomic) await this.rename(tempPath, path, true);
      return { bytes };
    } catch (err) {
      // Never leave a partial file behind: the temp name in atomic mode, the target itself otherwise.
      await this.guard(this.client.delete(tempPath, true), () => "cleanup").catch((cleanupErr: unknown) =>
        this.logger.warn("could not remove partial remote file", {
          ...this.ctx,
          path: tempPath,
          error: reason(cleanupErr),
        }),
      );
      throw err instanceof BridgeError ? err : opError("put", path, err, this.ctx);
    }
  }

  read(path: string, size: number): Readable {
    const reader = new PipelinedReader(
      this.sftp,
      path,
      size,
      this.target.operationTimeoutMs,
      (op, err) => opError(op, path, err, this.ctx),
      this.target.windowBytes,
    );
    if (this.gone) {
      reader.destroy(this.gone);
      return reader;
    }
    this.readers.add(reader);
    reader.once("close", () => this.readers.delete(reader));
    return reader;
  }

  async rename(from: string, to: string, replace: boolean): Promise<void> {
    if (replace && this.supportsPosixRename) {
      await this.op("rename", `${from} -> ${to}`, () => this.client.posixRename(from, to));
      return;
    }
    try {
      await this.guard(this.client.rename(from, to), () => `sftp rename ${from}`);
    } catch (err) {
      // Plain SFTP rename refuses an existing target (docs/field-notes.md); without posix-rename the best we can do is
      // remove the old copy first. The window where neither exists is short and the new bytes are already verified.
      if (replace && (await this.stat(to).catch(() => undefined))) {
        await this.remove(to);
        await this.op("rename", `${from} -> ${to}`, () => this.client.rename(from, to));
        return;
      }
      throw opError("rename", `${from} -> ${to}`, err, this.ctx);
    }
  }

  async setTimes(path: string, at: Date): Promise<void> {
    const seconds = Math.floor(at.getTime() / 1000);
    await this.op(
      "setstat",
      path,
      () =>
        new Promise<void>((resolve, reject) =>
          this.sftp.utimes(path, seconds, seconds, (err) => (err ? reject(err) : resolve())),
        ),
    );
  }

  async remove(path: string): Promise<void> {
    await this.op("delete", path, () => this.client.delete(path));
  }

  async close(): Promise<void> {
    if (this.gone) return;
    // A polite end waits for the server's answer; a wedged connection never gives one, so cut it after a moment.
    let timer: NodeJS.Timeout | undefined;
    const ended = this.client.end().catch(() => undefined);
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
    await Promise.race([ended, grace]);
    clearTimeout(timer);
    if (!this.gone) this.ssh.destroy();
  }

  private openHandle(path: string, flags: "w" | "r"): Promise<Buffer> {
    return new Promise((resolve, reject) =>
      this.sftp.open(path, flags, (err, handle) => (err ? reject(err) : resolve(handle))),
    );
  }

  private fstatHandle(handle: Buffer): Promise<Stats> {
    return new Promise((resolve, reject) => this.sftp.fstat(handle, (err, st) => (err ? reject(err) : resolve(st))));
  }

  private closeHandle(handle: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.sftp.close(handle, (err) => (err ? reject(err) : resolve())));
  }
}

function maxWriteLen(sftp: SFTPWrapper): number {
  return (sftp as unknown as { _maxWriteLen?: number })._maxWriteLen ?? 32 * 1024;
}

function maxReadLen(sftp: SFTPWrapper): number {
  return (sftp as unknown as { _maxReadLen?: number })._maxReadLen ?? 32 * 1024;
}

/**
 * Writes a byte stream at increasing offsets with many WRITE requests of the server's maximum size in flight, bounded
 * by bytes in flight. ssh2 copies each request into its own packet, so source buffers are free once `write` returns.
 */
async function pipelinedWrite(
  sftp: SFTPWrapper,
  handle: Buffer,
  source: AsyncIterable<Uint8Array>,
  lost: Promise<never>,
  timeoutMs: number,
  hash?: Hash,
): Promise<number> {
  const chunk = maxWriteLen(sftp);
  let offset = 0;
  let inFlight = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const settle = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  lost.catch((err: unknown) => {
    failure ??= err;
    settle();
  });
  // A server that stops answering (but keeps the connection open) must not hang the batch: no progress within the
  // operation timeout fails the write.
  const waitFor = async (condition: () => boolean) => {
    while (!condition()) {
      const timer = setTimeout(() => {
        failure ??= new SftpError("SFTP_OPERATION_TIMEOUT", `sftp write: no answer within ${timeoutMs} ms`, {
          retryable: true,
        });
        settle();
      }, timeoutMs);
      await new Promise<void>((r) => (wake = r));
      clearTimeout(timer);
    }
  };

  const send = async (piece: Buffer) => {
    await waitFor(() => failure !== undefined || inFlight < MAX_WRITE_BYTES_IN_FLIGHT);
    if (failure !== undefined) throw failure;
    const length = piece.length;
    inFlight += length;
    sftp.write(handle, piece, 0, length, offset, (err) => {
      inFlight -= length;
      if (err && failure === undefined) failure = err;
      settle();
    });
    offset += length;
  };
  // Source chunks (64 KiB or less from an S3 body) are gathered into full-size WRITEs: a 64 KiB WRITE goes out as
  // two full SSH packets and a 29-byte one, a 255 KiB WRITE as eight; fewer packets, fewer requests, less CPU.
  const staging = Buffer.allocUnsafeSlow(chunk);
  let staged = 0;
  for await (const data of source) {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    hash?.update(buf);
    let at = 0;
    while (at < buf.length) {
      if (staged === 0 && buf.length - at >= chunk) {
        await send(buf.subarray(at, at + chunk));
        at += chunk;
        continue;
      }
      const n = Math.min(chunk - staged, buf.length - at);
      buf.copy(staging, staged, at, at + n);
      staged += n;
      at += n;
      // ssh2 copies a WRITE into its own packet before write() returns, so the staging buffer is free again.
      if (staged === chunk) {
        await send(staging);
        staged = 0;
      }
    }
  }
  if (staged > 0) await send(staging.subarray(0, staged));
  await waitFor(() => failure !== undefined || inFlight === 0);
  if (failure !== undefined) throw failure;
  return offset;
}

/**
 * A Readable over a remote file with up to MAX_READ_BYTES_IN_FLIGHT of READs outstanding (more for a distant server),
 * delivered in order.
 */
class PipelinedReader extends Readable {
  private handle: Buffer | undefined;
  private opening = false;
  private nextOffset = 0;
  private delivered = 0;
  private inFlight = 0;
  private inFlightBytes = 0;
  private wanting = false;
  private ended = false;
  private readonly chunks = new Map<number, Buffer>();
  private limit = MAX_READ_BYTES_IN_FLIGHT;
  /** The quickest answer so far: a READ issued with nothing ahead of it comes back in about one round trip. */
  private quickestMs = Infinity;

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly path: string,
    private readonly size: number,
    private readonly timeoutMs: number,
    private readonly wrapError: (op: string, err: unknown) => Error,
    private readonly windowBytes: number = DEFAULT_WINDOW_BYTES,
  ) {
    super({ highWaterMark: 4 * 1024 * 1024 });
  }

  private idle: NodeJS.Timeout | undefined;

  /** Restarted on every answer; fires when requests are outstanding and the server has gone quiet. */
  private watch(): void {
    clearTimeout(this.idle);
    if (this.inFlight === 0 || this.destroyed) return;
    this.idle = setTimeout(
      () =>
        this.destroy(
          new SftpError("SFTP_OPERATION_TIMEOUT", `sftp read ${this.path}: no answer within ${this.timeoutMs} ms`, {
            retryable: true,
          }),
        ),
      this.timeoutMs,
    );
  }

  override _read(): void {
    this.wanting = true;
    if (!this.handle) {
      if (this.opening) return;
      this.opening = true;
      this.sftp.open(this.path, "r", (err, handle) => {
        if (err) return this.destroy(this.wrapError("open", err));
        this.handle = handle;
        this.pump();
      });
      return;
    }
    this.pump();
  }

  private pump(): void {
    if (this.destroyed || !this.handle) return;
    if (this.delivered >= this.size) {
      if (!this.ended) this.push(null);
      this.ended = true;
      return;
    }
    const len = maxReadLen(this.sftp);
    // Refill in batches once a quarter of the bytes are answered, not one request per answer: each batch is one
    // writev and one wake-up of the server, where a request per answer cost a syscall per 255 KiB read
    // (docs/benchmarks.md). Counted in bytes, so servers with small READs (ProFTPD: 32 KiB) keep as much in flight.
    const refill = this.inFlightBytes <= (this.limit * 3) / 4;
    while (refill && this.wanting && this.inFlightBytes + len <= this.limit && this.nextOffset < this.size) {
      const start = this.nextOffset;
      const want = Math.min(len, this.size - start);
      this.nextOffset += want;
      this.inFlight++;
      this.inFlightBytes += want;
      this.readRange(start, want);
    }
    this.watch();
  }

  private readRange(start: number, want: number, parts: Buffer[] = [], got = 0): void {
    const buf = Buffer.allocUnsafe(want - got);
    const sent = performance.now();
    this.sftp.read(this.handle as Buffer, buf, 0, buf.length, start + got, (err, bytesRead) => {
      if (this.destroyed) return;
      this.watch();
      this.quickestMs = Math.min(this.quickestMs, performance.now() - sent);
      if (this.quickestMs >= DISTANT_MS) {
        this.limit = Math.max(MAX_READ_BYTES_IN_FLIGHT, Math.floor((this.windowBytes * 3) / 4));
      }
      if (err || bytesRead === 0) {
        // EOF before the size we listed: the file shrank or was replaced while we read it.
        return this.destroy(
          err
            ? this.wrapError("read", err)
            : this.wrapError("read", new Error(`file ended at ${start + got} of ${this.size} bytes`)),
        );
      }
      parts.push(buf.subarray(0, bytesRead));
      got += bytesRead;
      // Servers may answer short; ask for the rest of this range before handing it on, to keep order simple.
      if (got < want) return this.readRange(start, want, parts, got);
      this.inFlight--;
      this.inFlightBytes -= want;
      this.chunks.set(start, parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
      this.flush();
    });
  }

  private flush(): void {
    let next = this.chunks.get(this.delivered);
    while (next) {
      this.chunks.delete(this.delivered);
      this.delivered += next.length;
      this.wanting = this.push(next);
      next = this.chunks.get(this.delivered);
    }
    this.pump();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    clearTimeout(this.idle);
    const handle = this.handle;
    this.handle = undefined;
    // Close without waiting: a server that went quiet would hold the error back until the keepalive gives up, and
    // a lost connection answers nothing at all.
    if (handle && !(err instanceof SftpError && err.code === "SFTP_CONNECT_FAILED")) {
      try {
        this.sftp.close(handle, () => undefined);
      } catch {
        // The channel is already gone; nothing to close.
      }
    }
    cb(err);
  }
}
