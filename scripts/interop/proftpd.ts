// A real ProFTPD with mod_sftp (Debian's proftpd-core + proftpd-mod-crypto) on loopback: the second partner server
// implementation for the interop tests and benchmarks, next to OpenSSH (./sshd.ts). Same handle shape as `Sshd`, so a
// scenario can take either. Its own config, keys, pid file, scoreboard and logs live in a per-run directory; the
// system-wide /etc/proftpd and the packaged service are never touched.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import type { Sshd } from "./sshd";

import {
  ensureSystemUser,
  keyFileFingerprint,
  readLogFile,
  freePort,
  sshBanner,
  childrenOf,
  signalAll,
} from "./daemon";

const run = promisify(execFile);

/** The same handle as OpenSSH's, so interop scenarios run unchanged against either server. */
export type Proftpd = Sshd;

export interface ProftpdOptions {
  /**
   * Advertise `posix-rename@openssh.com` (ProFTPD's default). With false the server is configured with
   * `SFTPExtensions -posixRename`, like a partner on an older or stricter build, so only plain SFTP rename is left.
   */
  posixRename?: boolean;
}

export const PROFTPD_REQUIREMENT = "interop tests need root and proftpd (mod_sftp); run .ci/run";

const PROFTPD = "/usr/sbin/proftpd";
// mod_sftp ships in proftpd-mod-crypto, not in proftpd-core (Debian 12).
const MOD_SFTP = "/usr/lib/proftpd/mod_sftp.so";
const SSH_KEYGEN = "/usr/bin/ssh-keygen";
const USERNAME = "bridgeproftp";
// Next to sshd's run directories; ProFTPD itself does not need a root-owned chroot path, but log, pid and scoreboard
// files must not sit in a group/world-writable directory (it refuses them), which rules out /tmp.
const BASE = "/srv/s3-sftp-bridge-test";
const REMOTE_ROOT = "/upload";
const START_TIMEOUT_MS = 15_000;

export async function startProftpd(options: ProftpdOptions = {}): Promise<Proftpd> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push("not running as root");
  if (!existsSync(PROFTPD)) missing.push(`${PROFTPD} is missing (apt-get install proftpd-core)`);
  if (!existsSync(MOD_SFTP)) missing.push(`${MOD_SFTP} is missing (apt-get install proftpd-mod-crypto)`);
  if (!existsSync(SSH_KEYGEN)) missing.push(`${SSH_KEYGEN} is missing (apt-get install openssh-client)`);
  if (missing.length > 0) throw new Error(`${PROFTPD_REQUIREMENT} (${missing.join(", ")})`);

  const { uid, gid } = await ensureSystemUser(USERNAME);
  await mkdir(BASE, { recursive: true, mode: 0o755 });
  await chown(BASE, 0, 0);
  await chmod(BASE, 0o755);
  const runDir = await mkdtemp(path.join(BASE, "proftpd-"));
  try {
    await chmod(runDir, 0o755);
    const etc = path.join(runDir, "etc");
    // DefaultRoot chroots the session here; the user sees it as "/" and starts in /upload, as with sshd.
    const jail = path.join(runDir, "jail");
    const root = path.join(jail, REMOTE_ROOT);
    await mkdir(etc, { mode: 0o755 });
    await mkdir(jail, { mode: 0o755 });
    await mkdir(root, { mode: 0o755 });
    await chown(root, uid, gid);

    // Host key: ECDSA P-256 in PEM ("BEGIN EC PRIVATE KEY"), the format every mod_sftp release reads (docs/field-notes.md;
    // 1.3.8 also reads OpenSSH-format keys). Only one key, so ssh2 and rclone cannot negotiate a different type than
    // the one pinned; ECDSA also gives the bridge's pinning a second key type next to sshd's ed25519.
    const hostKey = path.join(etc, "ssh_host_ecdsa_key");
    await run(SSH_KEYGEN, [
      "-q",
      "-t",
      "ecdsa",
      "-b",
      "256",
      "-m",
      "PEM",
      "-N",
      "",
      "-C",
      "proftpd-host",
      "-f",
      hostKey,
    ]);
    const clientKey = path.join(etc, "client_ed25519");
    await run(SSH_KEYGEN, ["-q", "-t", "ed25519", "-N", "", "-C", "s3-sftp-bridge-test-client", "-f", clientKey]);
    // mod_sftp reads user keys in RFC 4716 format ("---- BEGIN SSH2 PUBLIC KEY ----"), not authorized_keys lines.
    const authorizedKeys = path.join(etc, "authorized_keys.rfc4716");
    const { stdout: rfc4716 } = await run(SSH_KEYGEN, ["-e", "-m", "RFC4716", "-f", `${clientKey}.pub`]);
    await writeFile(authorizedKeys, rfc4716, { mode: 0o644 });
    const hostPublicKey = (await readFile(`${hostKey}.pub`, "utf8")).trim().split(/\s+/).slice(0, 2).join(" ");
    const hostKeyFingerprint = await keyFileFingerprint(`${hostKey}.pub`);
    const privateKey = await readFile(clientKey, "utf8");

    const configFile = path.join(etc, "proftpd.conf");
    // stdout/stderr of `proftpd -n` (startup, logins, fatal config errors) and mod_sftp's own protocol log.
    const logFile = path.join(runDir, "proftpd.log");
    const sftpLogFile = path.join(runDir, "sftp.log");
    const readLog = () =>
      `--- ${logFile} ---\n${readLogFile(logFile)}\n--- ${sftpLogFile} ---\n${readLogFile(sftpLogFile)}`;

    // A port found free can be taken before proftpd binds it; try again on another.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const port = await freePort();
      await writeFile(
        configFile,
        proftpdConfig({
          port,
          runDir,
          hostKey,
          authorizedKeys,
          jail,
          sftpLogFile,
          username: USERNAME,
          posixRename: options.posixRename ?? true,
        }),
        { mode: 0o644 },
      );
      // Reject a bad config with proftpd's own words before starting anything.
      await run(PROFTPD, ["-t", "-c", configFile]).catch((error: { stderr?: string; stdout?: string }) => {
        throw new Error(`proftpd -t rejected ${configFile}: ${error.stderr ?? ""}${error.stdout ?? ""}`);
      });
      try {
        const child = await launch(configFile, logFile, port, readLog);
        return handle({ child, port, runDir, root, privateKey, hostKeyFingerprint, hostPublicKey, readLog });
      } catch (error) {
        lastError = error;
        if (!/Address already in use|Failed binding/i.test(readLogFile(logFile))) break;
      }
    }
    throw lastError;
  } catch (error) {
    await rm(runDir, { recursive: true, force: true });
    throw error;
  }
}

function proftpdConfig(o: {
  port: number;
  runDir: string;
  hostKey: string;
  authorizedKeys: string;
  jail: string;
  sftpLogFile: string;
  username: string;
  posixRename: boolean;
}): string {
  return `# Written per run by scripts/interop/proftpd.ts. Only mod_sftp is loaded from the package's modules; the
# server's one listener speaks SSH (SFTPEngine on in the main server), so there is no FTP port at all.
ModulePath /usr/lib/proftpd
LoadModule mod_sftp.c

ServerName "s3-sftp-bridge interop"
ServerType standalone
Port ${o.port}
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
User nobody
Group nogroup
MaxInstances 64

# Everything the daemon writes lives in the run directory, never in /run or /var/log.
PidFile ${o.runDir}/proftpd.pid
ScoreboardFile ${o.runDir}/proftpd.scoreboard
DelayEngine off
DelayTable none
ControlsEngine off
WtmpLog off
UseLastlog off
TransferLog none
UseReverseDNS off

# A real system user from /etc/passwd (mod_auth_unix), not PAM: only public key authentication is offered.
AuthPAM off
AuthOrder mod_auth_unix.c
# The user's shell is /usr/sbin/nologin, which is not in /etc/shells.
RequireValidShell off
<Limit LOGIN>
  AllowUser ${o.username}
  DenyAll
</Limit>

DefaultRoot ${o.jail}
DefaultChdir ${REMOTE_ROOT}
Umask 022
# As in Debian's stock proftpd.conf: without it an upload onto an existing name is refused.
AllowOverwrite on
# Needed for SFTP appends / resumed writes at an offset (docs/field-notes.md).
AllowStoreRestart on

SFTPEngine on
SFTPLog ${o.sftpLogFile}
SFTPHostKey ${o.hostKey}
SFTPAuthMethods publickey
SFTPAuthorizedUserKeys file:${o.authorizedKeys}
SFTPCompression off
${o.posixRename ? "" : "SFTPExtensions -posixRename\n"}`;
}

async function launch(configFile: string, logFile: string, port: number, readLog: () => string): Promise<ChildProcess> {
  const logFd = openSync(logFile, "a", 0o600);
  let child: ChildProcess;
  try {
    // -n: stay in the foreground as our child (so it can be signalled and reaped); messages go to stderr -> log.
    child = spawn(PROFTPD, ["-n", "-c", configFile], { stdio: ["ignore", logFd, logFd] });
  } finally {
    closeSync(logFd);
  }
  const exited = new Promise<string>((resolve) =>
    child.once("exit", (code, signal) => resolve(`proftpd exited during start (code ${code}, signal ${signal})`)),
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
      const why = outcome ?? `proftpd did not answer on 127.0.0.1:${port} within ${START_TIMEOUT_MS} ms`;
      throw new Error(`${why}\n${readLog()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function handle(o: {
  child: ChildProcess;
  port: number;
  runDir: string;
  root: string;
  privateKey: string;
  hostKeyFingerprint: string;
  hostPublicKey: string;
  readLog: () => string;
}): Proftpd {
  const pid = o.child.pid!;
  const exited = new Promise<void>((resolve) => {
    if (o.child.exitCode !== null || o.child.signalCode !== null) resolve();
    else o.child.once("exit", () => resolve());
  });
  // A test run that dies without close() must not leave a listening proftpd behind.
  const onExit = () => signalAll([pid, ...childrenOf(pid)], "SIGKILL");
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
    readLog: o.readLog,
    close() {
      closing ??= (async () => {
        process.removeListener("exit", onExit);
        // The standalone daemon forks one process per connection and does not end them when it is told to stop.
        // End those first, by id, while the daemon is still there to reap them (orphans would become zombies where
        // PID 1 does not reap), then the daemon.
        const sessions = childrenOf(pid);
        signalAll(sessions, "SIGTERM");
        await waitUntilGone(sessions);
        signalAll([pid], "SIGTERM");
        const killer = setTimeout(() => signalAll([pid, ...childrenOf(pid)], "SIGKILL"), 5_000);
        await exited;
        clearTimeout(killer);
        await rm(o.runDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

/** Waits until the session processes are reaped by the daemon (gone from /proc); SIGKILLs stragglers at the end. */
async function waitUntilGone(pids: number[], timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some((p) => existsSync(`/proc/${p}`))) {
    if (Date.now() > deadline) {
      signalAll(pids, "SIGKILL");
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
