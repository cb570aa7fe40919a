// The server: a TCP listener of our own feeding ssh2's Server, connections that log in and open SFTP channels, and a
// close() that leaves no socket or open file behind.
import { mkdir, realpath } from "node:fs/promises";
import net from "node:net";
import { type Algorithms, type Connection, Server } from "ssh2";
import { authenticate, prepareUsers, type SftpUser } from "./auth";
import { initialFaults, type SftpFaults } from "./faults";
import { Jail } from "./jail";
import { hostKeyOf } from "./keys";
import { Recorder, type SftpServerObserved, type SftpServerStats } from "./observed";
import { SftpSession } from "./session";

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

/** Server software name sent in the SSH identification line (RFC 4253: no spaces or minus signs). */
const IDENT = "s3_sftp_bridge_embedded";
/** How long close() lets clients finish the disconnect before destroying their sockets. */
const CLOSE_GRACE_MS = 1000;

interface ConnectionState {
  id: number;
  client: Connection;
  socket: net.Socket | undefined;
  username: string | undefined;
  authenticated: boolean;
  sessions: Set<SftpSession>;
}

export async function startSftpServer(options: EmbeddedSftpOptions): Promise<EmbeddedSftpServer> {
  const log = options.logger ?? (() => undefined);
  const hostKey = hostKeyOf(options.hostKey);
  const users = prepareUsers(options.users);

  await mkdir(options.root, { recursive: true });
  const root = await realpath(options.root);

  const record = new Recorder();
  const faults = initialFaults(options.faults);
  const files = new Jail(root);
  const connections = new Set<ConnectionState>();
  const sockets = new Map<string, net.Socket>();
  const disposals = new Set<Promise<void>>();
  let allDisconnected: (() => void) | undefined;
  let nextConnectionId = 1;

  const ssh = new Server({ hostKeys: [hostKey.key], ident: IDENT, algorithms: options.algorithms }, (client, info) => {
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

    client.on("handshake", (negotiated) => record.handshake(negotiated));

    client.on("authentication", (ctx) => {
      const result = authenticate(ctx, users);
      if (result === "accept") {
        state.username = ctx.username;
        ctx.accept();
        return;
      }
      if (result === "failure") {
        record.authFailed();
        log(`${tag}: ${ctx.method} authentication failed for user "${ctx.username}"`);
      }
      ctx.reject(["password", "publickey"]);
    });

    client.on("ready", () => {
      state.authenticated = true;
      record.sessionOpened();
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
            record,
          });
          state.sessions.add(sftpSession);
        });
      });
    });

    client.on("error", (err: Error) => log(`${tag}: ${err.message}`));

    client.on("close", () => {
      connections.delete(state);
      if (state.authenticated) record.sessionClosed();
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
  log(`sftp: listening on ${host}:${address.port}, root ${root}, host key ${hostKey.fingerprint}`);

  let closing: Promise<void> | undefined;
  return {
    host,
    port: address.port,
    root,
    hostKey: hostKey.text,
    hostPublicKey: hostKey.publicKey,
    hostKeyFingerprint: hostKey.fingerprint,
    stats: record.stats,
    observed: record.observed,
    faults,
    resetStats() {
      record.reset();
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

function socketKey(address: string | undefined, port: number | undefined): string {
  return `${address ?? ""}|${port ?? ""}`;
}
