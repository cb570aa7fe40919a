// An SFTP server built on ssh2's Server that serves one local directory as "/". It stands in for the partner's server
// in the integration tests, the local stack and benchmarks: a real SSH transport, real files, OpenSSH's semantics where
// clients can tell the difference (RENAME never replaces, posix-rename@openssh.com does), and switches to inject faults.
import { timingSafeEqual } from "node:crypto";
import { constants as fsConstants, type Dir, type Stats } from "node:fs";
import { type FileHandle, link, lstat, mkdir, open, opendir, readlink, realpath } from "node:fs/promises";
import { chmod, chown, rename, rmdir, stat, truncate, unlink, utimes } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fingerprint } from "../../lambda/bridge/sftp";
import {
  type Algorithms,
  type Attributes,
  type AuthContext,
  type Connection,
  type FileEntry,
  type NegotiatedAlgorithms,
  type ParsedKey,
  type SFTPWrapper,
  Server,
  utils,
} from "ssh2";

export interface SftpUser {
  username: string;
  password?: string;
  /** OpenSSH public key line ("ssh-ed25519 AAAA... comment"). */
  publicKey?: string;
}

/** Fault switches, read on every request: flip them at runtime through `EmbeddedSftpServer.faults`. */
export interface SftpFaults {
  /** Answer plain RENAME with PERMISSION_DENIED, as servers that forbid renaming do. */
  refuseRename: boolean;
  /** Answer posix-rename@openssh.com with PERMISSION_DENIED (it stays advertised, as on servers that deny it by policy). */
  refusePosixRename: boolean;
  /** Answer REMOVE with PERMISSION_DENIED (a pull that cannot delete what it fetched). */
  refuseRemove?: boolean;
  /** Per open file: a WRITE that would take the bytes written through this handle past N gets FAILURE. */
  failWriteAfterBytes?: number;
  /** Per open file: once more than N bytes were read or written through one handle, the TCP connection is destroyed. */
  dropConnectionAfterBytes?: number;
  /**
   * WRITE data for file offsets at or past N is answered OK but never stored, as by a server that loses data silently
   * (a full disk it does not report): only comparing sizes afterwards can tell.
   */
  discardWritesPastOffset?: number;
  /**
   * STAT, LSTAT and FSTAT of regular files report the size plus N, while listings keep the true size: a file that
   * seems to change between two looks, or a server that misreports sizes.
   */
  statSizeOffset?: number;
  /** Wait this long before handling each SFTP request (a slow or distant server). */
  delayMs?: number;
  /** READ answers carry their first byte flipped: a server (or disk) that corrupts what it serves. */
  corruptReads?: boolean;
}

export interface EmbeddedSftpOptions {
  /** The directory clients see as "/" (created if missing). */
  root: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Private host key (OpenSSH or PEM). When absent an ed25519 key is generated, so the fingerprint changes per start. */
  hostKey?: string | Buffer;
  users: SftpUser[];
  /** ssh2's transport algorithm lists (kex, cipher, hmac, serverHostKey, compress); ssh2's defaults when absent. */
  algorithms?: Algorithms;
  /** Initial fault switches; all off by default. */
  faults?: Partial<SftpFaults>;
  logger?: (line: string) => void;
}

export interface SftpServerStats {
  /** Connections that authenticated. */
  sessionsOpened: number;
  activeSessions: number;
  maxConcurrentSessions: number;
  /** Rejected password and public-key attempts ("none" probes are not counted). */
  authFailures: number;
}

/**
 * What clients negotiated and held open, so tests can check that a client setting reached the wire. Apart from
 * `stats`, whose shape callers compare whole; resetStats() restarts these too.
 */
export interface SftpServerObserved {
  /** Each completed key exchange (first and re-key), oldest first; only the latest MAX_HANDSHAKES_KEPT are kept. */
  handshakes: NegotiatedAlgorithms[];
  /** Files open for writing now, over every connection (a gauge), from the OPEN reply until CLOSE or disconnect. */
  openWriteHandles: number;
  /** The most files open for writing at once since the start or the last resetStats(). */
  maxOpenWriteHandles: number;
  /**
   * Every successful RENAME or posix-rename target, by path as the client sees it, oldest first (the latest
   * MAX_RENAMES_KEPT): how many times a file was put into place, i.e. delivered.
   */
  renamedTo: string[];
  /**
   * The most channel window any client had granted this server when it answered a READ: how much a client lets the
   * server send ahead of its own reading (ssh2 alone: 2 MiB at most).
   */
  maxClientWindow: number;
  /** The most bytes of READ requests received and not yet answered at once, over every connection. */
  maxPendingReadBytes: number;
  /** SFTP requests received, by ssh2's event name (OPEN, WRITE, FSTAT, STAT, EXTENDED, ...), over every connection. */
  requests: Record<string, number>;
}

export interface EmbeddedSftpServer {
  host: string;
  port: number;
  /** Absolute path of the served directory, symlinks resolved. */
  root: string;
  /** The private host key, as given or as generated (OpenSSH format). */
  hostKey: string;
  /** The public host key as a known_hosts/authorized_keys line: "ssh-ed25519 AAAA...". */
  hostPublicKey: string;
  /** "SHA256:<base64 without padding>", as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint: string;
  /** Live counters. */
  stats: SftpServerStats;
  /** Live observations of negotiated algorithms and open write handles. */
  observed: SftpServerObserved;
  /** Live fault switches. */
  faults: SftpFaults;
  /** Zeroes the counters; activeSessions is a gauge and keeps its value (maxConcurrentSessions restarts from it). */
  resetStats(): void;
  /** Ends every client connection, then resolves once the listener is closed and every open file is closed. */
  close(): Promise<void>;
}

const { OPEN_MODE, STATUS_CODE } = utils.sftp;

/** Server software name sent in the SSH identification line (RFC 4253: no spaces or minus signs). */
const IDENT = "s3_sftp_bridge_embedded";
/** OpenSSH's limits: 256 KiB packets, reads and writes up to 1 KiB less. ssh2's server accepts packets this large. */
const MAX_PACKET_LENGTH = 256 * 1024;
const MAX_READ_LENGTH = MAX_PACKET_LENGTH - 1024;
const MAX_WRITE_LENGTH = MAX_PACKET_LENGTH - 1024;
/** Names per READDIR reply (OpenSSH sends 100). */
const READDIR_BATCH = 100;
/** How long close() lets clients finish the disconnect before destroying their sockets. */
const CLOSE_GRACE_MS = 1000;
/** Symlink hops followed while checking a path, as Linux's MAXSYMLINKS. */
const MAX_SYMLINK_HOPS = 40;
/** The local stack runs for hours; an unbounded handshake list would grow with every connection. */
const MAX_HANDSHAKES_KEPT = 100;
const MAX_RENAMES_KEPT = 10_000;

// Extensions advertised in the VERSION packet; each is implemented in SftpSession.extended.
const EXTENSIONS: ReadonlyArray<readonly [string, string]> = [
  ["posix-rename@openssh.com", "1"],
  ["fsync@openssh.com", "1"],
  ["limits@openssh.com", "1"],
];

const SFTP_VERSION = 2;
const SFTP_EXTENDED_REPLY = 201;

/**
 * A fresh ed25519 key pair in OpenSSH format. ssh2 1.17's generator drops a leading zero byte of the public key about
 * once in 300 keys (a 31-byte key that its own parser then refuses as malformed), so a pair is only returned once both
 * halves parse.
 */
export function generateUserKey(): { privateKey: string; publicKey: string } {
  for (;;) {
    const pair = utils.generateKeyPairSync("ed25519");
    if (!(utils.parseKey(pair.public) instanceof Error) && !(utils.parseKey(pair.private) instanceof Error)) {
      return { privateKey: pair.private, publicKey: pair.public };
    }
  }
}

/** OpenSSH's fingerprint of a public key blob (the SSH wire encoding): the engine's, so the two never disagree. */
export const fingerprintOf = fingerprint;

export async function startSftpServer(options: EmbeddedSftpOptions): Promise<EmbeddedSftpServer> {
  const log = options.logger ?? (() => undefined);
  const hostKey = options.hostKey === undefined ? generateUserKey().privateKey : options.hostKey;
  const hostKeyText = typeof hostKey === "string" ? hostKey : hostKey.toString("utf8");
  const parsedHostKey = parseOneKey(hostKey, "hostKey");
  if (!parsedHostKey.isPrivateKey()) throw new Error("hostKey: expected a private key");
  const hostBlob = parsedHostKey.getPublicSSH();
  const users = prepareUsers(options.users);

  await mkdir(options.root, { recursive: true });
  const root = await realpath(options.root);

  const stats: SftpServerStats = { sessionsOpened: 0, activeSessions: 0, maxConcurrentSessions: 0, authFailures: 0 };
  const observed: SftpServerObserved = {
    handshakes: [],
    openWriteHandles: 0,
    maxOpenWriteHandles: 0,
    renamedTo: [],
    maxClientWindow: 0,
    maxPendingReadBytes: 0,
    requests: {},
  };
  let pendingReadBytes = 0;
  const readsPending = (delta: number): void => {
    pendingReadBytes += delta;
    observed.maxPendingReadBytes = Math.max(observed.maxPendingReadBytes, pendingReadBytes);
  };
  const sawClientWindow = (window: number): void => {
    observed.maxClientWindow = Math.max(observed.maxClientWindow, window);
  };
  const renamed = (to: string): void => {
    observed.renamedTo.push(to);
    if (observed.renamedTo.length > MAX_RENAMES_KEPT) observed.renamedTo.shift();
  };
  const writeHandles = {
    opened(): void {
      observed.openWriteHandles += 1;
      observed.maxOpenWriteHandles = Math.max(observed.maxOpenWriteHandles, observed.openWriteHandles);
    },
    closed(): void {
      observed.openWriteHandles -= 1;
    },
  };
  const faults: SftpFaults = { refuseRename: false, refusePosixRename: false, ...options.faults };
  const files = new Jail(root);
  const connections = new Set<ConnectionState>();
  const sockets = new Map<string, net.Socket>();
  const disposals = new Set<Promise<void>>();
  let allDisconnected: (() => void) | undefined;
  let nextConnectionId = 1;

  const ssh = new Server({ hostKeys: [hostKey], ident: IDENT, algorithms: options.algorithms }, (client, info) => {
    const state: ConnectionState = {
      id: nextConnectionId++,
      client,
      socket: sockets.get(socketKey(info.ip, info.port)),
      username: undefined,
      authenticated: false,
      sessions: new Set(),
    };
    connections.add(state);
    const tag = `sftp conn#${state.id}`;
    log(`${tag}: connected from ${info.ip}:${info.port} (${info.header.identRaw})`);

    client.on("handshake", (negotiated) => {
      observed.handshakes.push(negotiated);
      if (observed.handshakes.length > MAX_HANDSHAKES_KEPT) observed.handshakes.shift();
    });

    client.on("authentication", (ctx) => {
      const result = authenticate(ctx, users);
      if (result === "accept") {
        state.username = ctx.username;
        ctx.accept();
        return;
      }
      if (result === "failure") {
        stats.authFailures += 1;
        log(`${tag}: ${ctx.method} authentication failed for user "${ctx.username}"`);
      }
      ctx.reject(["password", "publickey"]);
    });

    client.on("ready", () => {
      state.authenticated = true;
      stats.sessionsOpened += 1;
      stats.activeSessions += 1;
      stats.maxConcurrentSessions = Math.max(stats.maxConcurrentSessions, stats.activeSessions);
      log(`${tag}: user "${state.username ?? ""}" authenticated`);
      client.on("session", (acceptSession) => {
        const session = acceptSession();
        session.on("sftp", (acceptSftp) => {
          const sftp = acceptSftp();
          const sftpSession = new SftpSession(sftp, {
            files,
            faults,
            log: (line) => log(`${tag} ${state.username ?? ""}: ${line}`),
            drop: () => state.socket?.destroy(),
            writeHandles,
            renamed,
            sawClientWindow,
            readsPending,
            requested: (event: string) => {
              observed.requests[event] = (observed.requests[event] ?? 0) + 1;
            },
          });
          state.sessions.add(sftpSession);
        });
      });
    });

    client.on("error", (err: Error) => log(`${tag}: ${err.message}`));

    client.on("close", () => {
      connections.delete(state);
      if (state.authenticated) stats.activeSessions -= 1;
      for (const session of state.sessions) {
        const disposal = session.dispose();
        disposals.add(disposal);
        void disposal.finally(() => disposals.delete(disposal));
      }
      log(`${tag}: closed`);
      if (connections.size === 0) allDisconnected?.();
    });
  });

  // The TCP listener is ours and hands sockets to ssh2 (injectSocket, a public API): that sets TCP_NODELAY before the
  // first byte, and lets close() and the drop fault destroy a socket, which ssh2's Connection offers no way to do.
  const tcp = net.createServer({ noDelay: true }, (socket) => {
    socket.setNoDelay(true);
    const key = socketKey(socket.remoteAddress, socket.remotePort);
    sockets.set(key, socket);
    socket.once("close", () => sockets.delete(key));
    ssh.injectSocket(socket);
  });

  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(options.port ?? 0, host, () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  tcp.on("error", (err) => log(`sftp listener: ${err.message}`));
  const address = tcp.address();
  if (address === null || typeof address === "string") throw new Error("sftp listener has no TCP address");
  const fingerprint = fingerprintOf(hostBlob);
  log(`sftp: listening on ${host}:${address.port}, root ${root}, host key ${fingerprint}`);

  let closing: Promise<void> | undefined;
  return {
    host,
    port: address.port,
    root,
    hostKey: hostKeyText,
    hostPublicKey: `${parsedHostKey.type} ${hostBlob.toString("base64")}`,
    hostKeyFingerprint: fingerprint,
    stats,
    observed,
    faults,
    resetStats() {
      stats.sessionsOpened = 0;
      stats.authFailures = 0;
      stats.maxConcurrentSessions = stats.activeSessions;
      observed.handshakes = [];
      observed.maxOpenWriteHandles = observed.openWriteHandles;
      observed.renamedTo = [];
      observed.maxClientWindow = 0;
      observed.maxPendingReadBytes = pendingReadBytes;
      observed.requests = {};
    },
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
        // ssh2 reports a connection's close after the socket's, which may come after the listener's close.
        const disconnected = new Promise<void>((resolve) => {
          allDisconnected = resolve;
          if (connections.size === 0) resolve();
        });
        for (const state of connections) state.client.end();
        const straggler = setTimeout(() => {
          for (const socket of sockets.values()) socket.destroy();
        }, CLOSE_GRACE_MS);
        // Sockets still in the SSH handshake have no Connection to end; they would hold the listener open.
        for (const socket of sockets.values()) {
          if (![...connections].some((c) => c.socket === socket)) socket.destroy();
        }
        await closed;
        await disconnected;
        clearTimeout(straggler);
        await Promise.allSettled([...disposals]);
        log("sftp: closed");
      })();
      return closing;
    },
  };
}

interface ConnectionState {
  id: number;
  client: Connection;
  socket: net.Socket | undefined;
  username: string | undefined;
  authenticated: boolean;
  sessions: Set<SftpSession>;
}

interface PreparedUser {
  password?: Buffer;
  key?: ParsedKey;
}

function socketKey(address: string | undefined, port: number | undefined): string {
  return `${address ?? ""}|${port ?? ""}`;
}

function parseOneKey(data: string | Buffer, what: string): ParsedKey {
  const parsed = utils.parseKey(data);
  if (parsed instanceof Error) throw new Error(`${what}: ${parsed.message}`);
  // Newer OpenSSH files may hold several keys; ssh2 parses them into an array (its own Server takes the first too).
  const key: ParsedKey | undefined = Array.isArray(parsed) ? (parsed as ParsedKey[])[0] : parsed;
  if (key === undefined) throw new Error(`${what}: no key found`);
  return key;
}

function prepareUsers(users: SftpUser[]): Map<string, PreparedUser> {
  const prepared = new Map<string, PreparedUser>();
  for (const user of users) {
    if (prepared.has(user.username)) throw new Error(`users: "${user.username}" is listed twice`);
    if (user.password === undefined && user.publicKey === undefined) {
      throw new Error(`users: "${user.username}" needs a password or a publicKey`);
    }
    prepared.set(user.username, {
      password: user.password === undefined ? undefined : Buffer.from(user.password),
      key:
        user.publicKey === undefined ? undefined : parseOneKey(user.publicKey, `users["${user.username}"].publicKey`),
    });
  }
  return prepared;
}

/** "accept", "failure" (a wrong credential, counted), or "skip" (a method we do not offer, such as the "none" probe). */
function authenticate(ctx: AuthContext, users: Map<string, PreparedUser>): "accept" | "failure" | "skip" {
  const user = users.get(ctx.username);
  switch (ctx.method) {
    case "password": {
      if (user?.password === undefined) return "failure";
      const given = Buffer.from(ctx.password);
      // timingSafeEqual needs equal lengths; on a mismatch compare the input with itself so the time taken stays alike.
      const lengthsMatch = given.length === user.password.length;
      const same = timingSafeEqual(given, lengthsMatch ? user.password : given);
      return lengthsMatch && same ? "accept" : "failure";
    }
    case "publickey": {
      if (user?.key === undefined || !ctx.key.data.equals(user.key.getPublicSSH())) return "failure";
      // Without a signature the client only asks whether this key would do; it signs in the next attempt.
      if (ctx.signature === undefined || ctx.blob === undefined) return "accept";
      return user.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true ? "accept" : "failure";
    }
    default:
      return "skip";
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Paths: the client sees the root as "/". Lexically, ".." may never climb above "/", and every path's symlinks must
// resolve inside the root. The checks and the operation are not atomic; clients cannot create symlinks, so only
// someone with local access to the root could race them, which is acceptable for a test and development server.

class SftpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

class Jail {
  constructor(readonly root: string) {}

  /** Normalises a client path (relative ones start at "/", the home directory) to an absolute virtual path. */
  virtual(clientPath: string, op: string): string {
    if (clientPath.includes("\0")) throw new SftpStatusError(STATUS_CODE.BAD_MESSAGE, `${op}: path contains NUL`);
    const parts: string[] = [];
    for (const part of clientPath.split("/")) {
      if (part === "" || part === ".") continue;
      if (part === "..") {
        if (parts.length === 0) {
          throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `${op} ${clientPath}: path climbs above the root`);
        }
        parts.pop();
      } else {
        parts.push(part);
      }
    }
    return `/${parts.join("/")}`;
  }

  lexical(virtualPath: string): string {
    return virtualPath === "/" ? this.root : path.join(this.root, ...virtualPath.slice(1).split("/"));
  }

  /** The virtual path of a real path inside the root. */
  toVirtual(realPath: string): string {
    const relative = path.relative(this.root, realPath);
    return relative === "" ? "/" : `/${relative.split(path.sep).join("/")}`;
  }

  inside(realPath: string): boolean {
    return (
      realPath === this.root || realPath.startsWith(this.root.endsWith(path.sep) ? this.root : this.root + path.sep)
    );
  }

  /**
   * The real path to operate on. `follow`: the operation follows a symlink in the last component (open, stat), so
   * the link's target must be inside too; otherwise only the directory holding the last component is checked (lstat,
   * unlink, rename).
   */
  async resolve(virtualPath: string, follow: boolean, op: string): Promise<string> {
    const lexical = this.lexical(virtualPath);
    if (lexical === this.root) return this.root;
    const resolved = follow
      ? await this.resolveExisting(lexical, 0)
      : path.join(await this.resolveExisting(path.dirname(lexical), 0), path.basename(lexical));
    const checked = follow ? resolved : path.dirname(resolved);
    if (!this.inside(checked)) {
      throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `${op} ${virtualPath}: resolves outside the root`);
    }
    return resolved;
  }

  /** realpath() that tolerates missing trailing components, and follows dangling symlinks to where they would create. */
  private async resolveExisting(realPath: string, hops: number): Promise<string> {
    try {
      return await realpath(realPath);
    } catch (err) {
      if (errnoOf(err) !== "ENOENT" || realPath === path.dirname(realPath)) throw err;
    }
    let target: string | undefined;
    try {
      target = await readlink(realPath);
    } catch (err) {
      const code = errnoOf(err);
      if (code !== "ENOENT" && code !== "EINVAL") throw err;
    }
    if (target !== undefined) {
      if (hops >= MAX_SYMLINK_HOPS) throw Object.assign(new Error("too many symlinks"), { code: "ELOOP" });
      return this.resolveExisting(path.resolve(path.dirname(realPath), target), hops + 1);
    }
    return path.join(await this.resolveExisting(path.dirname(realPath), hops), path.basename(realPath));
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// One SFTP channel. Requests run concurrently (clients pipeline READ/WRITE with positions, so pread/pwrite order does
// not matter); FSTAT, FSETSTAT, fsync and CLOSE wait for the handle's earlier READ/WRITEs, so results are as if in order.

interface OpenFile {
  kind: "file";
  path: string;
  fh: FileHandle;
  writable: boolean;
  inflight: Set<Promise<void>>;
  bytesWritten: number;
  bytesMoved: number;
}

interface OpenDirectory {
  kind: "dir";
  path: string;
  real: string;
  dir: Dir;
  sentDots: boolean;
}

type OpenEntry = OpenFile | OpenDirectory;

interface SessionContext {
  files: Jail;
  faults: SftpFaults;
  log: (line: string) => void;
  /** Destroys this connection's socket (the drop fault). */
  drop: () => void;
  /** The server-wide gauge of files open for writing. */
  writeHandles: { opened(): void; closed(): void };
  /** Records a file put into place by a rename. */
  renamed: (to: string) => void;
  /** Records the window the client grants, as seen when a READ is answered. */
  sawClientWindow: (window: number) => void;
  /** Counts READ bytes requested and not yet answered (+ on arrival, - once answered). */
  readsPending: (delta: number) => void;
  /** Counts a request by its event name. */
  requested: (event: string) => void;
}

type RequestHandler = (reqid: number, ...args: never[]) => Promise<void>;

class SftpSession {
  private readonly handles = new Map<number, OpenEntry>();
  private nextHandle = 0;
  private disposed: Promise<void> | undefined;
  private running = 0;
  private ending = false;

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly ctx: SessionContext,
  ) {
    advertiseExtensions(sftp, ctx.log);
    this.route("OPEN", this.open);
    this.route("READ", this.read);
    this.route("WRITE", this.write);
    this.route("CLOSE", this.close);
    this.route("FSTAT", this.fstat);
    this.route("FSETSTAT", this.fsetstat);
    this.route("STAT", (reqid: number, p: string) => this.stat(reqid, p, true));
    this.route("LSTAT", (reqid: number, p: string) => this.stat(reqid, p, false));
    this.route("SETSTAT", this.setstat);
    this.route("OPENDIR", this.opendir);
    this.route("READDIR", this.readdir);
    this.route("REMOVE", this.remove);
    this.route("RMDIR", this.rmdir);
    this.route("MKDIR", this.mkdir);
    this.route("RENAME", this.rename);
    this.route("REALPATH", this.realpath);
    this.route("READLINK", this.readlink);
    this.route("EXTENDED", this.extended);
    // The client's EOF ends the subsystem: once the requests already received are answered, close our side too, as
    // OpenSSH's sftp-server exits (OpenSSH's client waits for that).
    sftp.on("end", () => {
      this.ending = true;
      this.endIfIdle();
    });
    sftp.on("close", () => void this.dispose());
    sftp.on("error", (err: Error) => ctx.log(`sftp: ${err.message}`));
  }

  /** Closes every open file and directory (the channel or connection is gone). */
  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      const entries = [...this.handles.values()];
      this.handles.clear();
      for (const entry of entries) if (entry.kind === "file" && entry.writable) this.ctx.writeHandles.closed();
      await Promise.allSettled(entries.map((entry) => closeEntry(entry)));
    })();
    return this.disposed;
  }

  private endIfIdle(): void {
    if (!this.ending || this.running > 0) return;
    this.sftp.end();
    void this.dispose();
  }

  private route(event: string, handler: RequestHandler): void {
    this.sftp.on(event, (reqid: number, ...args: never[]) => {
      this.running += 1;
      this.ctx.requested(event);
      const readBytes = event === "READ" ? Number(args[2]) || 0 : 0;
      if (readBytes) this.ctx.readsPending(readBytes);
      const run = (): void => {
        handler
          .call(this, reqid, ...args)
          .catch((err: unknown) => this.fail(reqid, event, args, err))
          .finally(() => {
            if (readBytes) this.ctx.readsPending(-readBytes);
            this.running -= 1;
            this.endIfIdle();
          });
      };
      const delay = this.ctx.faults.delayMs ?? 0;
      if (delay > 0) setTimeout(run, delay);
      else run();
    });
  }

  private fail(reqid: number, event: string, args: unknown[], err: unknown): void {
    try {
      this.reply(reqid, event, args, err);
    } catch (replyError) {
      this.ctx.log(`${event}: could not send the error reply: ${String(replyError)}`);
    }
  }

  private reply(reqid: number, event: string, args: unknown[], err: unknown): void {
    let status: number;
    let message: string;
    if (err instanceof SftpStatusError) {
      status = err.status;
      message = err.message;
    } else {
      const code = errnoOf(err);
      status = code === undefined ? STATUS_CODE.FAILURE : statusOfErrno(code);
      // Built from the code and the virtual path only: fs messages carry real paths, which clients must not see.
      message = `${event.toLowerCase()} ${this.subject(args)}: ${describeErrno(code)}`;
      if (code === undefined) this.ctx.log(`${event} failed unexpectedly: ${String(err)}`);
    }
    // Existence probes (mkdir -p, exists()) routinely miss; logging them would bury the failures that matter.
    const probe = status === STATUS_CODE.NO_SUCH_FILE && (event === "STAT" || event === "LSTAT");
    if (!probe) this.ctx.log(`${message} (status ${status})`);
    this.sftp.status(reqid, status, message);
  }

  private subject(args: unknown[]): string {
    const paths = args.filter((a): a is string => typeof a === "string");
    if (paths.length > 0) return paths.join(" -> ");
    const handle = args[0];
    return Buffer.isBuffer(handle) ? (this.handles.get(handleId(handle))?.path ?? "(closed handle)") : "";
  }

  private entry(handle: Buffer): OpenEntry {
    const entry = this.handles.get(handleId(handle));
    if (entry === undefined) throw new SftpStatusError(STATUS_CODE.FAILURE, "invalid handle");
    return entry;
  }

  private file(handle: Buffer): OpenFile {
    const entry = this.entry(handle);
    if (entry.kind !== "file") throw new SftpStatusError(STATUS_CODE.FAILURE, `${entry.path}: not an open file`);
    return entry;
  }

  private addHandle(entry: OpenEntry): Buffer {
    const id = this.nextHandle;
    this.nextHandle = (this.nextHandle + 1) % 2 ** 32;
    this.handles.set(id, entry);
    const handle = Buffer.allocUnsafe(4);
    handle.writeUInt32BE(id, 0);
    return handle;
  }

  /** Runs a READ/WRITE on a handle so later FSTAT/CLOSE can wait for it. */
  private async track(file: OpenFile, work: () => Promise<void>): Promise<void> {
    const running = work();
    file.inflight.add(running);
    try {
      await running;
    } finally {
      file.inflight.delete(running);
    }
  }

  private async open(reqid: number, filename: string, pflags: number, attrs: Partial<Attributes>): Promise<void> {
    const vpath = this.ctx.files.virtual(filename, "open");
    const real = await this.ctx.files.resolve(vpath, true, "open");
    const readable = (pflags & OPEN_MODE.READ) !== 0;
    const writable = (pflags & OPEN_MODE.WRITE) !== 0;
    let flags = readable && writable ? fsConstants.O_RDWR : writable ? fsConstants.O_WRONLY : fsConstants.O_RDONLY;
    if (pflags & OPEN_MODE.CREAT) flags |= fsConstants.O_CREAT;
    if (pflags & OPEN_MODE.TRUNC) flags |= fsConstants.O_TRUNC;
    if (pflags & OPEN_MODE.EXCL) flags |= fsConstants.O_EXCL;
    if (pflags & OPEN_MODE.APPEND) flags |= fsConstants.O_APPEND;
    const mode = typeof attrs.mode === "number" ? attrs.mode & 0o7777 : 0o666;
    const fh = await open(real, flags, mode);
    try {
      // Linux opens directories read-only without complaint; SFTP clients expect a file here.
      if ((await fh.stat()).isDirectory())
        throw new SftpStatusError(STATUS_CODE.FAILURE, `open ${vpath}: is a directory`);
    } catch (err) {
      await fh.close();
      throw err;
    }
    if (this.disposed !== undefined) {
      await fh.close();
      return;
    }
    const entry: OpenFile = {
      kind: "file",
      path: vpath,
      fh,
      writable,
      inflight: new Set(),
      bytesWritten: 0,
      bytesMoved: 0,
    };
    if (writable) this.ctx.writeHandles.opened();
    this.sftp.handle(reqid, this.addHandle(entry));
  }

  private async read(reqid: number, handle: Buffer, offset: number, length: number): Promise<void> {
    const file = this.file(handle);
    await this.track(file, async () => {
      const wanted = Math.min(length, MAX_READ_LENGTH);
      const buffer = Buffer.allocUnsafe(wanted);
      const { bytesRead } = await file.fh.read(buffer, 0, wanted, offset);
      if (bytesRead === 0 && wanted > 0) {
        this.sftp.status(reqid, STATUS_CODE.EOF);
        return;
      }
      if (this.dropAfter(file, bytesRead)) return;
      const window = (this.sftp as unknown as { outgoing?: { window?: number } }).outgoing?.window;
      if (typeof window === "number") this.ctx.sawClientWindow(window);
      if (this.ctx.faults.corruptReads && bytesRead > 0) buffer[0] = (buffer[0] as number) ^ 0xff;
      this.sftp.data(reqid, bytesRead === wanted ? buffer : buffer.subarray(0, bytesRead));
    });
  }

  private async write(reqid: number, handle: Buffer, offset: number, data: Buffer): Promise<void> {
    const file = this.file(handle);
    const limit = this.ctx.faults.failWriteAfterBytes;
    if (limit !== undefined && file.bytesWritten + data.length > limit) {
      throw new SftpStatusError(
        STATUS_CODE.FAILURE,
        `write ${file.path}: refused past ${limit} bytes (injected fault)`,
      );
    }
    const discardAfter = this.ctx.faults.discardWritesPastOffset;
    // By offset, not by arrival: clients pipeline writes out of order, and the stored file must end at N either way.
    const kept = discardAfter === undefined ? data.length : Math.min(data.length, Math.max(0, discardAfter - offset));
    // Only the write holding byte N logs: one line per file rather than one per discarded write.
    if (discardAfter !== undefined && offset <= discardAfter && discardAfter < offset + data.length)
      this.ctx.log(`write ${file.path}: dropping bytes from offset ${discardAfter} (injected fault)`);
    file.bytesWritten += data.length;
    if (this.dropAfter(file, data.length)) return;
    await this.track(file, async () => {
      let done = 0;
      while (done < kept) {
        const { bytesWritten } = await file.fh.write(data, done, kept - done, offset + done);
        done += bytesWritten;
      }
    });
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  /** The dropConnectionAfterBytes fault: true when the connection was destroyed instead of answering. */
  private dropAfter(file: OpenFile, bytes: number): boolean {
    file.bytesMoved += bytes;
    const limit = this.ctx.faults.dropConnectionAfterBytes;
    if (limit === undefined || file.bytesMoved <= limit) return false;
    this.ctx.log(`${file.path}: dropping the connection after ${limit} bytes (injected fault)`);
    this.ctx.drop();
    return true;
  }

  private async close(reqid: number, handle: Buffer): Promise<void> {
    const entry = this.entry(handle);
    this.handles.delete(handleId(handle));
    if (entry.kind === "file" && entry.writable) this.ctx.writeHandles.closed();
    await closeEntry(entry);
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  private async fstat(reqid: number, handle: Buffer): Promise<void> {
    const file = this.file(handle);
    await Promise.allSettled([...file.inflight]);
    this.sftp.attrs(reqid, this.statAttributes(await file.fh.stat()));
  }

  private async fsetstat(reqid: number, handle: Buffer, attrs: Partial<Attributes>): Promise<void> {
    const file = this.file(handle);
    await Promise.allSettled([...file.inflight]);
    const fh = file.fh;
    await applyAttributes(attrs, {
      truncate: (size) => fh.truncate(size),
      chmod: (mode) => fh.chmod(mode),
      utimes: (atime, mtime) => fh.utimes(atime, mtime),
      chown: (uid, gid) => fh.chown(uid, gid),
    });
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  private async stat(reqid: number, clientPath: string, follow: boolean): Promise<void> {
    const op = follow ? "stat" : "lstat";
    const vpath = this.ctx.files.virtual(clientPath, op);
    const real = await this.ctx.files.resolve(vpath, follow, op);
    this.sftp.attrs(reqid, this.statAttributes(follow ? await stat(real) : await lstat(real)));
  }

  /** A STAT-family answer, with the statSizeOffset fault applied. */
  private statAttributes(st: Stats): Attributes {
    const attrs = attributesOf(st);
    const offset = this.ctx.faults.statSizeOffset ?? 0;
    return offset !== 0 && st.isFile() ? { ...attrs, size: Math.max(0, attrs.size + offset) } : attrs;
  }

  private async setstat(reqid: number, clientPath: string, attrs: Partial<Attributes>): Promise<void> {
    const vpath = this.ctx.files.virtual(clientPath, "setstat");
    const real = await this.ctx.files.resolve(vpath, true, "setstat");
    await applyAttributes(attrs, {
      truncate: (size) => truncate(real, size),
      chmod: (mode) => chmod(real, mode),
      utimes: (atime, mtime) => utimes(real, atime, mtime),
      chown: (uid, gid) => chown(real, uid, gid),
    });
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  private async opendir(reqid: number, clientPath: string): Promise<void> {
    const vpath = this.ctx.files.virtual(clientPath, "opendir");
    const real = await this.ctx.files.resolve(vpath, true, "opendir");
    const dir = await opendir(real, { bufferSize: READDIR_BATCH });
    if (this.disposed !== undefined) {
      await dir.close();
      return;
    }
    this.sftp.handle(reqid, this.addHandle({ kind: "dir", path: vpath, real, dir, sentDots: false }));
  }

  private async readdir(reqid: number, handle: Buffer): Promise<void> {
    const entry = this.entry(handle);
    if (entry.kind !== "dir") throw new SftpStatusError(STATUS_CODE.FAILURE, `${entry.path}: not an open directory`);
    const names: Array<{ name: string; real: string }> = [];
    if (!entry.sentDots) {
      entry.sentDots = true;
      // OpenSSH lists "." and ".."; above the root, ".." is the root itself.
      names.push({ name: ".", real: entry.real });
      names.push({ name: "..", real: entry.path === "/" ? entry.real : path.dirname(entry.real) });
    }
    while (names.length < READDIR_BATCH) {
      const dirent = await entry.dir.read();
      if (dirent === null) break;
      names.push({ name: dirent.name, real: path.join(entry.real, dirent.name) });
    }
    if (names.length === 0) {
      this.sftp.status(reqid, STATUS_CODE.EOF);
      return;
    }
    const now = Date.now();
    const listed = await Promise.all(
      names.map(async ({ name, real }): Promise<FileEntry | undefined> => {
        // An entry removed since the directory was read is left out rather than failing the whole batch.
        const st = await lstat(real).catch(() => undefined);
        return st && { filename: name, longname: longnameOf(name, st, now), attrs: attributesOf(st) };
      }),
    );
    this.sftp.name(
      reqid,
      listed.filter((e): e is FileEntry => e !== undefined),
    );
  }

  private async remove(reqid: number, clientPath: string): Promise<void> {
    const vpath = this.ctx.files.virtual(clientPath, "remove");
    if (this.ctx.faults.refuseRemove) {
      throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `remove ${vpath}: refused (injected fault)`);
    }
    await unlink(await this.ctx.files.resolve(vpath, false, "remove"));
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  private async rmdir(reqid: number, clientPath: string): Promise<void> {
    const vpath = this.ctx.files.virtual(clientPath, "rmdir");
    if (vpath === "/") throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, "rmdir /: the root stays");
    await rmdir(await this.ctx.files.resolve(vpath, false, "rmdir"));
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  private async mkdir(reqid: number, clientPath: string, attrs: Partial<Attributes>): Promise<void> {
    const vpath = this.ctx.files.virtual(clientPath, "mkdir");
    const mode = typeof attrs.mode === "number" ? attrs.mode & 0o7777 : 0o777;
    await mkdir(await this.ctx.files.resolve(vpath, false, "mkdir"), { mode });
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  /** OpenSSH's RENAME: never replaces an existing target (link + unlink for files, so even a racing creator loses). */
  private async rename(reqid: number, fromPath: string, toPath: string): Promise<void> {
    const [from, to, fromReal, toReal] = await this.renamePaths(fromPath, toPath, "rename");
    if (this.ctx.faults.refuseRename) {
      throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `rename ${from} -> ${to}: refused (injected fault)`);
    }
    const exists = new SftpStatusError(STATUS_CODE.FAILURE, `rename ${from} -> ${to}: target exists`);
    if ((await lstat(fromReal)).isFile()) {
      let linked = true;
      try {
        await link(fromReal, toReal);
      } catch (err) {
        const code = errnoOf(err);
        if (code === "EEXIST") throw exists;
        // File systems without hard links: fall back to check-then-rename, as OpenSSH does.
        if (!["EPERM", "EXDEV", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EMLINK"].includes(code ?? "")) throw err;
        linked = false;
      }
      if (linked) {
        try {
          await unlink(fromReal);
        } catch (err) {
          await unlink(toReal).catch(() => undefined);
          throw err;
        }
        this.ctx.renamed(to);
        this.sftp.status(reqid, STATUS_CODE.OK);
        return;
      }
    }
    if (
      await lstat(toReal).then(
        () => true,
        () => false,
      )
    ) {
      throw exists;
    }
    await rename(fromReal, toReal);
    this.ctx.renamed(to);
    this.sftp.status(reqid, STATUS_CODE.OK);
  }

  private async renamePaths(fromPath: string, toPath: string, op: string): Promise<[string, string, string, string]> {
    const from = this.ctx.files.virtual(fromPath, op);
    const to = this.ctx.files.virtual(toPath, op);
    if (from === "/" || to === "/") throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `${op}: the root stays`);
    return [from, to, await this.ctx.files.resolve(from, false, op), await this.ctx.files.resolve(to, false, op)];
  }

  /** Like OpenSSH: resolves symlinks, and only the last component may be missing. */
  private async realpath(reqid: number, clientPath: string): Promise<void> {
    const files = this.ctx.files;
    const vpath = files.virtual(clientPath, "realpath");
    const lexical = files.lexical(vpath);
    let resolved: string;
    try {
      resolved = await realpath(lexical);
    } catch (err) {
      if (errnoOf(err) !== "ENOENT" || lexical === files.root) throw err;
      resolved = path.join(await realpath(path.dirname(lexical)), path.basename(lexical));
    }
    if (!files.inside(resolved)) {
      throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `realpath ${vpath}: resolves outside the root`);
    }
    // REALPATH replies carry a name only; OpenSSH sends empty attributes (flags 0), which ssh2 encodes from {}.
    this.sftp.name(reqid, [{ filename: files.toVirtual(resolved), longname: "", attrs: {} as Attributes }]);
  }

  private async readlink(reqid: number, clientPath: string): Promise<void> {
    const files = this.ctx.files;
    const vpath = files.virtual(clientPath, "readlink");
    const real = await files.resolve(vpath, false, "readlink");
    let target = await readlink(real);
    if (path.isAbsolute(target)) {
      if (!files.inside(target)) {
        throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `readlink ${vpath}: points outside the root`);
      }
      target = files.toVirtual(target);
    }
    this.sftp.name(reqid, [{ filename: target, longname: target, attrs: {} as Attributes }]);
  }

  private async extended(reqid: number, name: string, data: Buffer | undefined): Promise<void> {
    const fields = readSshStrings(data ?? Buffer.alloc(0));
    switch (name) {
      case "posix-rename@openssh.com": {
        const [fromPath, toPath] = fields;
        if (fromPath === undefined || toPath === undefined) throw badMessage(name);
        const [from, to, fromReal, toReal] = await this.renamePaths(fromPath.toString(), toPath.toString(), name);
        if (this.ctx.faults.refusePosixRename) {
          throw new SftpStatusError(
            STATUS_CODE.PERMISSION_DENIED,
            `${name} ${from} -> ${to}: refused (injected fault)`,
          );
        }
        await rename(fromReal, toReal).catch((err: unknown) => {
          throw withSubject(err, `${name} ${from} -> ${to}`);
        });
        this.ctx.renamed(to);
        this.sftp.status(reqid, STATUS_CODE.OK);
        return;
      }
      case "fsync@openssh.com": {
        const [handle] = fields;
        if (handle === undefined) throw badMessage(name);
        const file = this.file(handle);
        await Promise.allSettled([...file.inflight]);
        await file.fh.sync();
        this.sftp.status(reqid, STATUS_CODE.OK);
        return;
      }
      case "limits@openssh.com": {
        const reply = Buffer.alloc(4 + 1 + 4 + 32);
        reply.writeUInt32BE(reply.length - 4, 0);
        reply[4] = SFTP_EXTENDED_REPLY;
        reply.writeUInt32BE(reqid, 5);
        reply.writeBigUInt64BE(BigInt(MAX_PACKET_LENGTH), 9);
        reply.writeBigUInt64BE(BigInt(MAX_READ_LENGTH), 17);
        reply.writeBigUInt64BE(BigInt(MAX_WRITE_LENGTH), 25);
        reply.writeBigUInt64BE(0n, 33); // open handles: no limit
        if (!sendRawPacket(this.sftp, reply)) {
          // The client then keeps its default sizes.
          throw new SftpStatusError(STATUS_CODE.FAILURE, `${name}: reply could not be sent`);
        }
        return;
      }
      default:
        throw new SftpStatusError(STATUS_CODE.OP_UNSUPPORTED, `${name}: extension not supported`);
    }
  }
}

/** An fs error as a status whose message names the operation and virtual paths (never the real ones). */
function withSubject(err: unknown, subject: string): unknown {
  const code = errnoOf(err);
  return code === undefined ? err : new SftpStatusError(statusOfErrno(code), `${subject}: ${describeErrno(code)}`);
}

function handleId(handle: Buffer): number {
  return handle.length === 4 ? handle.readUInt32BE(0) : -1;
}

async function closeEntry(entry: OpenEntry): Promise<void> {
  if (entry.kind === "file") {
    await Promise.allSettled([...entry.inflight]);
    await entry.fh.close();
  } else {
    await entry.dir.close().catch((err: unknown) => {
      if ((err as { code?: string }).code !== "ERR_DIR_CLOSED") throw err;
    });
  }
}

function badMessage(extension: string): SftpStatusError {
  return new SftpStatusError(STATUS_CODE.BAD_MESSAGE, `${extension}: malformed request`);
}

/** The SSH "string" fields (uint32 length + bytes) of an extended request's data. */
function readSshStrings(data: Buffer): Buffer[] {
  const fields: Buffer[] = [];
  let offset = 0;
  while (offset + 4 <= data.length) {
    const length = data.readUInt32BE(offset);
    if (offset + 4 + length > data.length) break;
    fields.push(data.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return fields;
}

interface AttributeTarget {
  truncate(size: number): Promise<void>;
  chmod(mode: number): Promise<void>;
  utimes(atime: number, mtime: number): Promise<void>;
  chown(uid: number, gid: number): Promise<void>;
}

/** In OpenSSH's order: size, permissions, times, owner. ssh2 leaves absent fields undefined. */
async function applyAttributes(attrs: Partial<Attributes>, target: AttributeTarget): Promise<void> {
  if (typeof attrs.size === "number") await target.truncate(attrs.size);
  if (typeof attrs.mode === "number") await target.chmod(attrs.mode & 0o7777);
  if (typeof attrs.atime === "number" && typeof attrs.mtime === "number") await target.utimes(attrs.atime, attrs.mtime);
  if (typeof attrs.uid === "number" && typeof attrs.gid === "number") await target.chown(attrs.uid, attrs.gid);
}

function attributesOf(st: Stats): Attributes {
  return {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    atime: Math.floor(st.atimeMs / 1000),
    mtime: Math.floor(st.mtimeMs / 1000),
  };
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const SIX_MONTHS_MS = 182 * 24 * 3600 * 1000;

/** `ls -l` style, as OpenSSH's sftp-server writes it; clients such as ssh2-sftp-client parse type and rights from it. */
function longnameOf(name: string, st: Stats, now: number): string {
  const date = new Date(st.mtimeMs);
  const day = String(date.getDate()).padStart(2);
  const recent = Math.abs(now - st.mtimeMs) < SIX_MONTHS_MS;
  const when = recent
    ? `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`
    : ` ${date.getFullYear()}`;
  const owner = String(st.uid).padEnd(8);
  const group = String(st.gid).padEnd(8);
  const size = String(st.size).padStart(8);
  return `${modeString(st.mode)} ${String(st.nlink).padStart(3)} ${owner} ${group} ${size} ${MONTHS[date.getMonth()]} ${day} ${when} ${name}`;
}

function modeString(mode: number): string {
  const type = mode & fsConstants.S_IFMT;
  const kind =
    type === fsConstants.S_IFDIR
      ? "d"
      : type === fsConstants.S_IFLNK
        ? "l"
        : type === fsConstants.S_IFIFO
          ? "p"
          : type === fsConstants.S_IFSOCK
            ? "s"
            : type === fsConstants.S_IFCHR
              ? "c"
              : type === fsConstants.S_IFBLK
                ? "b"
                : "-";
  const triplet = (shift: number, special: number, specialChar: string): string => {
    const bits = (mode >> shift) & 7;
    const x = bits & 1;
    const execute = mode & special ? (x ? specialChar : specialChar.toUpperCase()) : x ? "x" : "-";
    return `${bits & 4 ? "r" : "-"}${bits & 2 ? "w" : "-"}${execute}`;
  };
  return kind + triplet(6, 0o4000, "s") + triplet(3, 0o2000, "s") + triplet(0, 0o1000, "t");
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** OpenSSH's errno_to_portable(). */
function statusOfErrno(code: string): number {
  switch (code) {
    case "ENOENT":
    case "ENOTDIR":
    case "EBADF":
    case "ELOOP":
      return STATUS_CODE.NO_SUCH_FILE;
    case "EPERM":
    case "EACCES":
    case "EFAULT":
      return STATUS_CODE.PERMISSION_DENIED;
    case "ENAMETOOLONG":
    case "EINVAL":
      return STATUS_CODE.BAD_MESSAGE;
    case "ENOSYS":
      return STATUS_CODE.OP_UNSUPPORTED;
    default:
      return STATUS_CODE.FAILURE;
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  EEXIST: "file exists",
  ENOTEMPTY: "directory not empty",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "file name too long",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
  EXDEV: "cross-device link",
  EINVAL: "invalid argument",
  EBUSY: "resource busy",
  EMFILE: "too many open files",
};

function describeErrno(code: string | undefined): string {
  if (code === undefined) return "internal error";
  return ERRNO_TEXT[code] ?? code;
}

// ---------------------------------------------------------------------------------------------------------------------
// Advertising extensions. ssh2 1.17's server answers the client's INIT itself with a fixed VERSION packet (version 3,
// no extension pairs: SERVER_VERSION_BUFFER in lib/protocol/SFTP.js) and has no option or event to add pairs, while
// its client (like OpenSSH's sftp) only sends posix-rename@openssh.com, fsync@openssh.com or limits@openssh.com when
// the server's VERSION listed them. EXTENDED requests themselves reach us as a public "EXTENDED" event.
//
// The least invasive fix found: SFTP writes every packet through its connection's Protocol.channelData(channelId,
// bytes) (lib/protocol/SFTP.js tryWritePayload). While a channel's VERSION is pending, the connection's channelData is
// wrapped to swap that one 9-byte packet for the same packet plus extension pairs, and the extra bytes are charged to
// the channel's flow-control window exactly as ssh2 charges its own. Nothing else passes through differently, the
// wrapper is installed once per connection, and if ssh2 ever writes VERSION differently the swap simply does not
// happen (logged) and clients see a server without extensions. The alternative, re-implementing INIT by intercepting
// the incoming packet, would have to set more of SFTP's private state (_version, _extensions, the 'ready' event).
//
// The limits@openssh.com reply (EXTENDED_REPLY) likewise has no public writer; sendRawPacket writes it the same way.

/** The private parts of ssh2 1.17's SFTP channel that the two functions below rely on. */
interface Ssh2SftpInternals {
  _protocol: ChannelDataWriter;
  outgoing: { id: number; window: number; packetSize: number; state: string };
}

interface ChannelDataWriter {
  channelData(channelId: number, data: Buffer): void;
}

interface PendingVersion {
  packet: Buffer;
  outgoing: Ssh2SftpInternals["outgoing"];
}

const pendingVersions = new WeakMap<ChannelDataWriter, Map<number, PendingVersion>>();

const VERSION_PACKET = ((): Buffer => {
  const pairs = EXTENSIONS.flatMap(([name, value]) => [sshString(name), sshString(value)]);
  const body = Buffer.concat([Buffer.from([SFTP_VERSION, 0, 0, 0, 3]), ...pairs]);
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(body.length, 0);
  return Buffer.concat([length, body]);
})();

function sshString(value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([length, bytes]);
}

/** ssh2's own VERSION packet: length 5, type VERSION, version 3, nothing else. */
function isBareVersion(data: Buffer): boolean {
  return data.length === 9 && data.readUInt32BE(0) === 5 && data[4] === SFTP_VERSION && data.readUInt32BE(5) === 3;
}

function advertiseExtensions(sftp: SFTPWrapper, log: (line: string) => void): void {
  const inner = sftp as unknown as Ssh2SftpInternals;
  const protocol = inner._protocol;
  if (typeof protocol?.channelData !== "function" || typeof inner.outgoing?.id !== "number") {
    log("sftp: this ssh2 version's internals differ; extensions (posix-rename) are not advertised");
    return;
  }
  let pending = pendingVersions.get(protocol);
  if (pending === undefined) {
    const waiting = new Map<number, PendingVersion>();
    pending = waiting;
    pendingVersions.set(protocol, waiting);
    const original = protocol.channelData;
    protocol.channelData = function (this: ChannelDataWriter, channelId: number, data: Buffer): void {
      const swap = waiting.size === 0 ? undefined : waiting.get(channelId);
      if (swap === undefined) return original.call(this, channelId, data);
      waiting.delete(channelId);
      const extra = swap.packet.length - data.length;
      if (!isBareVersion(data) || swap.outgoing.window < extra || swap.packet.length > swap.outgoing.packetSize) {
        log("sftp: could not add extensions to the VERSION packet; clients will see none");
        return original.call(this, channelId, data);
      }
      swap.outgoing.window -= extra;
      return original.call(this, channelId, swap.packet);
    };
  }
  const channelId = inner.outgoing.id;
  pending.set(channelId, { packet: VERSION_PACKET, outgoing: inner.outgoing });
  const forget = (): void => void pending.delete(channelId);
  sftp.once("ready", forget);
  sftp.once("close", forget);
}

/** Writes a complete SFTP packet on the channel, as ssh2's own writers do; false when the window has no room now. */
function sendRawPacket(sftp: SFTPWrapper, packet: Buffer): boolean {
  const inner = sftp as unknown as Ssh2SftpInternals;
  const outgoing = inner.outgoing;
  if (outgoing.state !== "open" || outgoing.window < packet.length || packet.length > outgoing.packetSize) return false;
  outgoing.window -= packet.length;
  inner._protocol.channelData(outgoing.id, packet);
  return true;
}
