// rclone (Debian package) as an independent second client: it reads back what the bridge wrote, proves it is
// byte-identical, and gives the benchmarks a reference. Remotes are defined per call through RCLONE_CONFIG_<NAME>_*
// variables, so no rclone.conf is read or written.
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

export interface RcloneRemote {
  /** The name to use on the command line, as `${name}:path`. */
  name: string;
  /** RCLONE_CONFIG_<NAME>_* variables that define it. */
  env: Record<string, string>;
  /** Deletes key and known_hosts files written for it. */
  dispose(): Promise<void>;
}

/** A remote path, or a local path given as a plain string. */
export type RcloneLocation = string | { remote: RcloneRemote; path: string };

export interface SftpServerInfo {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  /** "ssh-ed25519 AAAA...": pinned through a known_hosts file, so a different host key fails the connection. */
  hostPublicKey: string;
}

export interface S3ServerInfo {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

export interface RcloneResult {
  stdout: Buffer;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 120_000;

export async function sftpRemote(server: SftpServerInfo, name = "bridgesftp"): Promise<RcloneRemote> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "rclone-sftp-"));
  const keyFile = path.join(dir, "id");
  const knownHosts = path.join(dir, "known_hosts");
  await writeFile(keyFile, server.privateKey.endsWith("\n") ? server.privateKey : `${server.privateKey}\n`, {
    mode: 0o600,
  });
  // known_hosts names non-22 ports as [host]:port.
  const hostPattern = server.port === 22 ? server.host : `[${server.host}]:${server.port}`;
  await writeFile(knownHosts, `${hostPattern} ${server.hostPublicKey}\n`, { mode: 0o644 });
  return {
    name,
    env: configEnv(name, {
      type: "sftp",
      host: server.host,
      port: String(server.port),
      user: server.username,
      key_file: keyFile,
      known_hosts_file: knownHosts,
      // With ForceCommand internal-sftp every exec request becomes an SFTP session, so rclone's shell probing and
      // remote md5sum/sha1sum would hang or misread; hashes are computed from downloaded bytes instead (--download).
      shell_type: "none",
      md5sum_command: "none",
      sha1sum_command: "none",
    }),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

export function s3Remote(s3: S3ServerInfo, name = "bridges3"): RcloneRemote {
  return {
    name,
    env: configEnv(name, {
      type: "s3",
      provider: "Other",
      env_auth: "false",
      access_key_id: s3.credentials.accessKeyId,
      secret_access_key: s3.credentials.secretAccessKey,
      endpoint: s3.endpoint,
      region: s3.region,
      force_path_style: "true",
      // Buckets are made by the tests; rclone need not probe or create them.
      no_check_bucket: "true",
    }),
    dispose: async () => undefined,
  };
}

/** Runs rclone with the given remotes defined; rejects with rclone's stderr on a non-zero exit. */
export function rclone(
  args: string[],
  remotes: RcloneRemote[],
  options: { timeoutMs?: number } = {},
): Promise<RcloneResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    // AWS_CA_BUNDLE (set on these machines) makes rclone's S3 backend abort; stray RCLONE_* would change behaviour.
    if (key === "AWS_CA_BUNDLE" || key.startsWith("RCLONE_")) continue;
    env[key] = value;
  }
  for (const remote of remotes) Object.assign(env, remote.env);
  const fullArgs = ["--config", "/dev/null", "--retries", "1", "--low-level-retries", "2", ...args];
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  return new Promise((resolve, reject) => {
    const child = spawn("rclone", fullArgs, { env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run rclone (apt-get install rclone): ${error.message}`, { cause: error }));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      if (code === 0) resolve({ stdout, stderr });
      else {
        const how = signal
          ? `was killed (${signal}${signal === "SIGKILL" ? `, timeout ${timeoutMs} ms` : ""})`
          : `exited ${code}`;
        reject(Object.assign(new Error(`rclone ${args.join(" ")} ${how}\n${stderr.trim()}`), { code, stdout, stderr }));
      }
    });
  });
}

/** The bytes of one remote file. */
export async function rcloneCat(remote: RcloneRemote, remotePath: string): Promise<Buffer> {
  const { stdout } = await rclone(["cat", target({ remote, path: remotePath })], [remote]);
  return stdout;
}

/**
 * Hashes computed by rclone from downloaded bytes, keyed by path relative to `location` (for a single file: its
 * name). Hex digests; algorithm as rclone names it (sha256, md5, sha1...).
 */
export async function rcloneHashsum(location: RcloneLocation, algorithm = "sha256"): Promise<Map<string, string>> {
  const { stdout } = await rclone(["hashsum", algorithm, "--download", target(location)], remotesOf(location));
  const hashes = new Map<string, string>();
  for (const line of stdout.toString("utf8").split("\n")) {
    const match = /^([0-9a-f]+) {2}(.*)$/.exec(line);
    if (match) hashes.set(match[2]!, match[1]!);
  }
  return hashes;
}

/**
 * Compares two trees by content (rclone check --download: both sides are read and compared byte for byte). Rejects,
 * listing rclone's findings, if a file differs or exists on one side only (only missing on `dst` with oneWay).
 */
export async function rcloneCheck(
  src: RcloneLocation,
  dst: RcloneLocation,
  options: { oneWay?: boolean } = {},
): Promise<void> {
  const args = ["check", "--download", target(src), target(dst)];
  if (options.oneWay) args.push("--one-way");
  await rclone(args, [...remotesOf(src), ...remotesOf(dst)]);
}

/** rclone copy (directory to directory); extra flags, e.g. ["--transfers", "8"], go last. */
export async function rcloneCopy(src: RcloneLocation, dst: RcloneLocation, flags: string[] = []): Promise<void> {
  await rclone(["copy", target(src), target(dst), ...flags], [...remotesOf(src), ...remotesOf(dst)], {
    timeoutMs: 30 * 60_000,
  });
}

function target(location: RcloneLocation): string {
  return typeof location === "string" ? location : `${location.remote.name}:${location.path}`;
}

function remotesOf(location: RcloneLocation): RcloneRemote[] {
  return typeof location === "string" ? [] : [location.remote];
}

function configEnv(name: string, settings: Record<string, string>): Record<string, string> {
  if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) throw new Error(`rclone remote name must be a plain identifier: ${name}`);
  const prefix = `RCLONE_CONFIG_${name.toUpperCase()}_`;
  return Object.fromEntries(Object.entries(settings).map(([key, value]) => [prefix + key.toUpperCase(), value]));
}
