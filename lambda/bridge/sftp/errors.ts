import { BridgeError, HostKeyError, SftpError, type ErrorContext } from "../errors";
import type { SftpTarget } from "./types";

/** Foreign SFTP errors, wrapped once into SftpErrors that name the operation and the remote path. */

// SFTP status codes (draft-ietf-secsh-filexfer-02) that callers branch on.
export const NO_SUCH_FILE = 2;
export const PERMISSION_DENIED = 3;

/** The SFTP status of an error, whether it came raw from ssh2 (a number) or via ssh2-sftp-client (an errno name). */
export function sftpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === "number") return code;
  if (code === "ENOENT") return NO_SUCH_FILE;
  if (code === "EACCES") return PERMISSION_DENIED;
  return undefined;
}

export function reason(err: unknown): string {
  const code = sftpCode(err);
  if (code === NO_SUCH_FILE) return "no such file or directory";
  if (code === PERMISSION_DENIED) return "permission denied";
  const message = err instanceof Error ? err.message : String(err);
  // ssh2-sftp-client prefixes its method name and sometimes appends the path; keep the server's words only.
  return message.replace(/^[_a-zA-Z]+(->|: )/, "");
}

export function opError(op: string, path: string, err: unknown, context: ErrorContext): SftpError {
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

export function withTimeout<T>(promise: Promise<T>, ms: number, describe: () => string): Promise<T> {
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

export function connectError(
  target: SftpTarget,
  err: unknown,
  seen: string | undefined,
  rejected: boolean,
): BridgeError {
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
