import type { Client } from "ssh2";
import SftpClient from "ssh2-sftp-client";
import { SftpError } from "../errors";
import { connectError, reason } from "./errors";
import { DEFAULT_WINDOW_BYTES } from "./pipelined-io";
import { Ssh2Session } from "./session";
import { tuneTransport, widenReceiveWindow } from "./ssh2-tuning";
import { fingerprint, type SftpConnector } from "./types";

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
