// A real OpenSSH sshd (Debian's openssh-server) on loopback, serving only internal-sftp to a dedicated user in a
// chroot, with host and user keys made per run. Interop tests and benchmarks use it as the "partner" SFTP server.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, openSync, closeSync, readFileSync, readdirSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fingerprint } from "../../lambda/bridge/sftp";
import { promisify } from "node:util";

import {
  ensureSystemUser,
  keyFileFingerprint,
  readLogFile,
  freePort,
  sshBanner,
  childrenOf,
  parentOf,
  signalAll,
} from "./daemon";

const run = promisify(execFile);

export interface Sshd {
  host: "127.0.0.1";
  port: number;
  username: string;
  /** OpenSSH-format ed25519 private key authorised for `username`. */
  privateKey: string;
  /** "SHA256:..." exactly as `ssh-keygen -lf` prints it (base64 without padding). */
  hostKeyFingerprint: string;
  /** The host key as a known_hosts/authorized_keys style line: "ssh-ed25519 AAAA...". */
  hostPublicKey: string;
  /** Local directory the SFTP user starts in; tests read and write files here directly. */
  root: string;
  /** The same directory as the SFTP user names it (the user is chrooted, so this differs from `root`). */
  remoteRoot: string;
  /** The sshd listener's process id. */
  pid: number;
  /** sshd's log so far (LogLevel VERBOSE); print it when something fails. */
  readLog(): string;
  /** Stops sshd and every session process it started, and deletes keys, config, log and files. */
  close(): Promise<void>;
}

export const SSHD_REQUIREMENT = "interop tests need root and openssh-server; run .ci/run";

const SSHD = "/usr/sbin/sshd";
const SSH_KEYGEN = "/usr/bin/ssh-keygen";
const USERNAME = "bridgetest";
// Chroot paths must be root-owned and not group/world-writable all the way up, so not under /tmp.
const BASE = "/srv/s3-sftp-bridge-test";
const REMOTE_ROOT = "/upload";
const START_TIMEOUT_MS = 15_000;

export async function startSshd(): Promise<Sshd> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push("not running as root");
  if (!existsSync(SSHD)) missing.push(`${SSHD} is missing`);
  if (!existsSync(SSH_KEYGEN)) missing.push(`${SSH_KEYGEN} is missing`);
  if (missing.length > 0) throw new Error(`${SSHD_REQUIREMENT} (${missing.join(", ")})`);

  const { uid, gid } = await ensureSystemUser(USERNAME, { lockPassword: true });
  // sshd refuses to start without its privilege-separation directory; the package creates it only at boot.
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });

  await mkdir(BASE, { recursive: true, mode: 0o755 });
  await chown(BASE, 0, 0);
  await chmod(BASE, 0o755);
  const runDir = await mkdtemp(path.join(BASE, "run-"));
  try {
    await chmod(runDir, 0o755);
    const etc = path.join(runDir, "etc");
    const jail = path.join(runDir, "jail");
    const root = path.join(jail, REMOTE_ROOT);
    await mkdir(etc, { mode: 0o755 });
    await mkdir(jail, { mode: 0o755 });
    await mkdir(root, { mode: 0o755 });
    await chown(root, uid, gid);

    const hostKey = path.join(etc, "ssh_host_ed25519_key");
    const clientKey = path.join(etc, "client_ed25519");
    await keygen(hostKey, "s3-sftp-bridge-test-host");
    await keygen(clientKey, "s3-sftp-bridge-test-client");
    const hostPublicKey = firstTwoFields(await readFile(`${hostKey}.pub`, "utf8"));
    const authorizedKeys = path.join(etc, "authorized_keys");
    await writeFile(authorizedKeys, await readFile(`${clientKey}.pub`, "utf8"), { mode: 0o644 });
    const hostKeyFingerprint = await keyFileFingerprint(`${hostKey}.pub`);
    const privateKey = await readFile(clientKey, "utf8");

    const logFile = path.join(runDir, "sshd.log");
    const configFile = path.join(etc, "sshd_config");
    const pidFile = path.join(runDir, "sshd.pid");

    // A port found free can be taken before sshd binds it; try again on another.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const port = await freePort();
      await writeFile(configFile, sshdConfig({ port, hostKey, pidFile, authorizedKeys, jail, username: USERNAME }), {
        mode: 0o644,
      });
      // Reject a bad config with sshd's own words before starting anything.
      await run(SSHD, ["-t", "-f", configFile]).catch((error: { stderr?: string }) => {
        throw new Error(`sshd -t rejected ${configFile}: ${error.stderr ?? error}`);
      });
      try {
        const child = await launch(configFile, logFile, port);
        return handle({
          child,
          port,
          runDir,
          logFile,
          root,
          privateKey,
          hostKeyFingerprint,
          hostPublicKey,
        });
      } catch (error) {
        lastError = error;
        if (!/Address already in use|Bind to port/i.test(readLogFile(logFile))) break;
      }
    }
    throw lastError;
  } catch (error) {
    await rm(runDir, { recursive: true, force: true });
    throw error;
  }
}

function sshdConfig(o: {
  port: number;
  hostKey: string;
  pidFile: string;
  authorizedKeys: string;
  jail: string;
  username: string;
}): string {
  return `# Written per run by scripts/interop/sshd.ts.
Port ${o.port}
ListenAddress 127.0.0.1
HostKey ${o.hostKey}
PidFile ${o.pidFile}
LogLevel VERBOSE
UsePAM no
PermitRootLogin no
AllowUsers ${o.username}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile ${o.authorizedKeys}
StrictModes yes
UseDNS no
PrintMotd no
PrintLastLog no
PermitTTY no
DisableForwarding yes
MaxStartups 64:30:128
MaxSessions 32
Subsystem sftp internal-sftp
ChrootDirectory ${o.jail}
ForceCommand internal-sftp -d ${REMOTE_ROOT} -u 0022
`;
}

async function launch(configFile: string, logFile: string, port: number): Promise<ChildProcess> {
  const logFd = openSync(logFile, "a", 0o600);
  let child: ChildProcess;
  try {
    // -D: stay in the foreground as our child; -e: log to stderr, which goes to the log file.
    child = spawn(SSHD, ["-D", "-e", "-f", configFile], { stdio: ["ignore", logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  const exited = new Promise<string>((resolve) =>
    child.once("exit", (code, signal) => resolve(`sshd exited during start (code ${code}, signal ${signal})`)),
  );
  const spawnFailed = new Promise<string>((resolve) => child.once("error", (error) => resolve(error.message)));
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const outcome = await Promise.race([
      exited,
      spawnFailed,
      sshBanner(port).then((banner) => (banner ? "ready" : undefined)),
    ]);
    if (outcome === "ready") return child;
    if (outcome !== undefined || Date.now() > deadline) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      const why = outcome ?? `sshd did not answer on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms`;
      throw new Error(`${why}\n--- ${logFile} ---\n${readLogFile(logFile)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function handle(o: {
  child: ChildProcess;
  port: number;
  runDir: string;
  logFile: string;
  root: string;
  privateKey: string;
  hostKeyFingerprint: string;
  hostPublicKey: string;
}): Sshd {
  const pid = o.child.pid!;
  const exited = new Promise<void>((resolve) => {
    if (o.child.exitCode !== null || o.child.signalCode !== null) resolve();
    else o.child.once("exit", () => resolve());
  });
  // A test run that dies without close() must not leave a listening sshd behind.
  const onExit = () => signalAll([pid, ...descendantsOf(pid)], "SIGKILL");
  process.once("exit", onExit);
  let closing: Promise<void> | undefined;

  return {
    host: "127.0.0.1",
    port: o.port,
    username: USERNAME,
    privateKey: o.privateKey,
    hostKeyFingerprint: o.hostKeyFingerprint,
    hostPublicKey: o.hostPublicKey,
    root: o.root,
    remoteRoot: REMOTE_ROOT,
    pid,
    readLog: () => readLogFile(o.logFile),
    close() {
      closing ??= (async () => {
        process.removeListener("exit", onExit);
        // Session processes outlive the listener: end them first, by id, while the listener is still there to reap
        // them (orphans would become zombies where PID 1 does not reap), then the listener.
        // Signalling only the per-connection processes lets each privsep monitor end and reap its own child.
        const tree = [pid, ...descendantsOf(pid)];
        signalAll(childrenOf(pid), "SIGTERM");
        await waitUntilReaped(tree.slice(1), tree);
        signalAll([pid], "SIGTERM");
        const killer = setTimeout(() => signalAll([pid, ...descendantsOf(pid)], "SIGKILL"), 5_000);
        await exited;
        clearTimeout(killer);
        await rm(o.runDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

async function keygen(file: string, comment: string): Promise<void> {
  await run(SSH_KEYGEN, ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
}

/**
 * OpenSSH's fingerprint of a raw public key blob (what ssh2 hands a hostVerifier): the engine's own function, which the
 * harness test checks against ssh-keygen's output.
 */
export const sha256Fingerprint = fingerprint;

function firstTwoFields(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(" ");
}

/** All descendants of `pid`, found via /proc, parents before children. */
function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = parentOf(Number(entry));
    if (ppid === undefined) continue;
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  const visit = (p: number) => {
    for (const c of children.get(p) ?? []) {
      found.push(c);
      visit(c);
    }
  };
  visit(pid);
  return found;
}

function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/**
 * Waits until `pids` are gone: vanished from /proc, or zombies whose parent is outside `tree` (nobody of ours will
 * reap them). A zombie whose parent is in `tree` is about to be reaped, so it is still waited for.
 */
async function waitUntilReaped(pids: number[], tree: number[], timeoutMs = 5_000): Promise<void> {
  const inTree = new Set(tree);
  const pending = (p: number) => {
    if (!existsSync(`/proc/${p}`)) return false;
    if (isRunning(p)) return true;
    const parent = parentOf(p);
    return parent !== undefined && inTree.has(parent);
  };
  const deadline = Date.now() + timeoutMs;
  while (pids.some(pending)) {
    if (Date.now() > deadline) {
      signalAll(pids.filter(isRunning), "SIGKILL");
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** True when `pid` is a live (non-zombie) process; for tests that check close() left nothing behind. */
export function processIsRunning(pid: number): boolean {
  return isRunning(pid);
}

/** True when the path exists; for tests that check close() removed its files. */
export async function pathExists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
