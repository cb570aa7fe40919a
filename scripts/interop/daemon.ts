// What the real SFTP daemons behind the interop tests and benchmarks (./sshd.ts, ./proftpd.ts) share: system users,
// free ports, waiting for an SSH banner, log files and the /proc bookkeeping that makes sure a stopped daemon left no
// session behind.
import { execFile } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import net from "node:net";
import { promisify } from "node:util";

const run = promisify(execFile);
const SSH_KEYGEN = "/usr/bin/ssh-keygen";

/** Creates the SFTP-only system user if missing; its password field must be "*" ("!" reads as locked to sshd). */
/**
 * A system user for a test daemon, created once (no home, no login shell). `lockPassword` sets the password field to
 * "*": sshd refuses an account whose field is "!" (locked), even for key logins; ProFTPD does not care.
 */
export async function ensureSystemUser(
  username: string,
  options: { lockPassword?: boolean } = {},
): Promise<{ uid: number; gid: number }> {
  for (let attempt = 0; ; attempt += 1) {
    if (!passwdEntry(username)) {
      await run("useradd", [
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        username,
      ]).catch((error: { stderr?: string }) => {
        // Another test process may be creating it at the same moment; the check below decides.
        if (attempt >= 5) throw new Error(`useradd ${username} failed: ${error.stderr ?? error}`);
      });
    }
    const entry = passwdEntry(username);
    if (!entry) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    if (options.lockPassword && shadowPassword(username) !== "*") await run("usermod", ["-p", "*", username]);
    return entry;
  }
}

function shadowPassword(username: string): string | undefined {
  const line = readFileSync("/etc/shadow", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${username}:`));
  return line?.split(":")[1];
}

/** The SHA256 fingerprint ssh-keygen prints for a public key file. */
export async function keyFileFingerprint(publicKeyFile: string): Promise<string> {
  const { stdout } = await run(SSH_KEYGEN, ["-l", "-E", "sha256", "-f", publicKeyFile]);
  const match = /^\d+ (SHA256:[A-Za-z0-9+/]+) /.exec(stdout);
  if (!match) throw new Error(`unexpected ssh-keygen -lf output: ${stdout}`);
  return match[1]!;
}

export function passwdEntry(username: string): { uid: number; gid: number } | undefined {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${username}:`));
  if (!line) return undefined;
  const fields = line.split(":");
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

export function readLogFile(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "(no log)";
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true once the server sends an SSH identification string, false if it cannot be reached yet. */
export function sshBanner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.once("data", (chunk: Buffer) => done(chunk.toString("latin1").startsWith("SSH-2.0-")));
    socket.once("error", () => done(false));
  });
}

export function childrenOf(pid: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry) && parentOf(Number(entry)) === pid)
    .map(Number);
}

export function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses; fields resume after the last ")".
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

export function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, signal);
    } catch {
      // Already gone.
    }
  }
}
