// The benchmark's loopback world: s3rver as S3 with the test data, a partner SFTP server (OpenSSH sshd or ProFTPD
// mod_sftp, chrooted, key auth) holding the same data, the way to reach it (directly, or through a latency proxy that
// puts it far away while S3 stays near), and the small chores between runs (resetting sources, emptying
// destinations).
import { randomFillSync } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import {
  chown,
  copyFile,
  link,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  DeleteObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type _Object,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { startLocalS3, type LocalS3 } from "../local/s3-server";
import { startProftpd } from "../interop/proftpd";
import { startSshd, type Sshd } from "../interop/sshd";
import { s3Remote, sftpRemote, type RcloneRemote } from "../interop/rclone";
import { spawnLatencyProxy, type SpawnedLatencyProxy } from "./latency-proxy";

export const BUCKET = "bench";
export const RECEIPTS_BUCKET = "bench-receipts";
export const LARGE_NAME = "large.bin";

export interface BenchSizes {
  largeBytes: number;
  smallCount: number;
  smallBytes: number;
}

export type ServerKind = "openssh" | "proftpd";
export const SERVER_KINDS: ServerKind[] = ["openssh", "proftpd"];

/** The cipher OpenSSH's `sftp` negotiates by default: chacha20-poly1305 first, then aes128-ctr (mod_sftp 1.3.8 has
 * no chacha20). */
export function defaultCipherOf(kind: ServerKind): string {
  return kind === "openssh" ? "chacha20" : "aes128-ctr";
}

export interface BenchEnv {
  sizes: BenchSizes;
  s3: LocalS3;
  client: S3Client;
  /** Local scratch directory (keys, known_hosts, local copies of the data, job files). */
  dir: string;
  /** Local sources for OpenSSH `sftp put` and the plain SDK upload. */
  localLarge: string;
  localSmallDir: string;
  smallNames: string[];
  rcloneS3: RcloneRemote;
  /** Starts a partner server holding the pristine data (stopped by close() if not before). */
  startPartner(kind: ServerKind): Promise<Partner>;
  /** The way the clients reach a partner: directly (rttMs 0) or through a latency proxy in its own process. */
  openLink(partner: Partner, rttMs: number, proxy?: ProxyLaunch): Promise<Link>;
  /** Deletes every object under a prefix; returns what was there before. */
  emptyPrefix(bucket: string, prefix: string): Promise<_Object[]>;
  listPrefix(bucket: string, prefix: string): Promise<_Object[]>;
  close(): Promise<void>;
}

export interface Partner {
  kind: ServerKind;
  server: Sshd;
  /** The client's private key for this server. */
  keyFile: string;
  /** The cipher OpenSSH's `sftp` negotiates with this server by default (ProFTPD offers no chacha20). */
  defaultCipher: string;
  /** A directory under the SFTP user's root, as the local path and as the SFTP path. */
  sftpDir(name: string): { local: string; remote: string };
  /** Empties (and recreates, owned by the SFTP user) a directory under the SFTP root. */
  resetSftpDir(name: string): Promise<{ local: string; remote: string }>;
  /** Puts fresh hard links to the pristine data into an SFTP source directory (what a pull consumes). */
  stageSftpSource(name: string, what: "large" | "small"): Promise<void>;
  close(): Promise<void>;
}

export interface ProxyLaunch {
  /** The bundled latency-proxy-child. */
  script: string;
  /** SCHED_FIFO priority for the proxy process (chrt -f); undefined runs it at normal priority. */
  realtimePriority?: number;
}

export interface Link {
  partner: Partner;
  rttMs: number;
  /** Where the clients connect: the server itself, or the proxy in front of it. */
  host: string;
  port: number;
  /** known_hosts naming the server's key at host:port (so pinning holds through the proxy). */
  knownHosts: string;
  rcloneSftp: RcloneRemote;
  proxy?: SpawnedLatencyProxy;
  close(): Promise<void>;
}

const CHUNK = 4 * 1024 * 1024;

async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let left = bytes; left > 0; left -= CHUNK) {
    const piece = randomFillSync(buf).subarray(0, Math.min(CHUNK, left));
    if (!out.write(Buffer.from(piece))) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

async function mapLimit<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

export async function startBenchEnv(sizes: BenchSizes, log: (line: string) => void): Promise<BenchEnv> {
  const dir = await mkdtemp(path.join(tmpdir(), "bridge-bench-"));
  const cleanups: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })];
  const close = async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
  };
  try {
    log("starting s3rver on loopback");
    const s3 = await startLocalS3({ directory: path.join(dir, "s3rver"), buckets: [BUCKET, RECEIPTS_BUCKET] });
    cleanups.push(() => s3.close());
    const client = s3.client();
    cleanups.push(async () => client.destroy());
    const rcloneS3 = s3Remote(s3, "benchs3");

    log(`making test data: 1 x ${mib(sizes.largeBytes)} MiB and ${sizes.smallCount} x ${sizes.smallBytes / 1024} KiB`);
    const localLarge = path.join(dir, LARGE_NAME);
    await writeRandomFile(localLarge, sizes.largeBytes);
    const localSmallDir = path.join(dir, "small");
    await mkdir(localSmallDir);
    const smallNames = Array.from({ length: sizes.smallCount }, (_, i) => `f${String(i).padStart(5, "0")}.bin`);
    const smallBuf = Buffer.allocUnsafe(sizes.smallBytes);
    for (const name of smallNames) {
      await writeFile(path.join(localSmallDir, name), Buffer.from(randomFillSync(smallBuf)));
    }

    log("loading the S3 sources into s3rver");
    await new Upload({
      client,
      params: { Bucket: BUCKET, Key: `large/out/${LARGE_NAME}`, Body: createReadStream(localLarge) },
    }).done();
    await mapLimit(smallNames, 8, async (name) => {
      const body = await readFile(path.join(localSmallDir, name));
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `small/out/${name}`, Body: body }));
    });

    const startPartner = async (kind: ServerKind): Promise<Partner> => {
      log(`starting ${kind === "openssh" ? "OpenSSH sshd" : "ProFTPD mod_sftp"} on loopback`);
      const server = kind === "openssh" ? await startSshd() : await startProftpd();
      let closed = false;
      const stop = async () => {
        if (closed) return;
        closed = true;
        await server.close();
      };
      cleanups.push(stop);
      try {
        const keyFile = path.join(dir, `client_key_${kind}`);
        await writeFile(keyFile, server.privateKey.endsWith("\n") ? server.privateKey : `${server.privateKey}\n`, {
          mode: 0o600,
        });
        const { uid, gid } = await stat(server.root);
        // Pristine copies live next to the SFTP root (same file system), so staging a pull source is a hard link.
        const pristine = path.join(path.dirname(server.root), "bench-pristine");
        await mkdir(path.join(pristine, "small"), { recursive: true });
        // A hard link where both are on one file system, a copy otherwise.
        await link(localLarge, path.join(pristine, LARGE_NAME)).catch(() =>
          copyFile(localLarge, path.join(pristine, LARGE_NAME)),
        );
        for (const name of smallNames) {
          await link(path.join(localSmallDir, name), path.join(pristine, "small", name)).catch(() =>
            copyFile(path.join(localSmallDir, name), path.join(pristine, "small", name)),
          );
        }
        // The bridge leaves files younger than pull.minAgeSeconds for a later run (a partner may still be writing
        // them); the data made a moment ago is complete, so it is dated an hour back.
        const anHourAgo = new Date(Date.now() - 3_600_000);
        await utimes(path.join(pristine, LARGE_NAME), anHourAgo, anHourAgo);
        for (const name of smallNames) await utimes(path.join(pristine, "small", name), anHourAgo, anHourAgo);
        const sftpDir = (name: string) => ({
          local: path.join(server.root, name),
          remote: `${server.remoteRoot}/${name}`,
        });
        const resetSftpDir = async (name: string) => {
          const d = sftpDir(name);
          await rm(d.local, { recursive: true, force: true });
          await mkdir(d.local, { mode: 0o755 });
          await chown(d.local, uid, gid);
          return d;
        };
        return {
          kind,
          server,
          keyFile,
          defaultCipher: defaultCipherOf(kind),
          sftpDir,
          resetSftpDir,
          async stageSftpSource(name, what) {
            const d = await resetSftpDir(name);
            const names = what === "large" ? [LARGE_NAME] : smallNames;
            const from = what === "large" ? pristine : path.join(pristine, "small");
            for (const n of names) await link(path.join(from, n), path.join(d.local, n));
          },
          close: stop,
        };
      } catch (err) {
        await stop();
        throw err;
      }
    };

    const openLink = async (partner: Partner, rttMs: number, launch?: ProxyLaunch): Promise<Link> => {
      const { server } = partner;
      let proxy: SpawnedLatencyProxy | undefined;
      if (rttMs > 0) {
        if (!launch) throw new Error(`a link at +${rttMs} ms needs the latency proxy`);
        const options = { targetHost: server.host, targetPort: server.port, rttMs };
        try {
          proxy = await spawnLatencyProxy(options, launch);
        } catch (err) {
          if (launch.realtimePriority === undefined) throw err;
          log(`latency proxy under chrt failed (${err instanceof Error ? err.message : String(err)}); normal priority`);
          proxy = await spawnLatencyProxy(options, { ...launch, realtimePriority: undefined });
        }
      }
      const host = proxy?.host ?? server.host;
      const port = proxy?.port ?? server.port;
      // Clients check the host key against the address they dial: through the proxy that is the proxy's port.
      const knownHosts = path.join(dir, `known_hosts_${partner.kind}_${rttMs}`);
      await writeFile(knownHosts, `[${host}]:${port} ${server.hostPublicKey}\n`, { mode: 0o644 });
      const rcloneSftp = await sftpRemote({ ...server, host, port }, "benchsftp");
      return {
        partner,
        rttMs,
        host,
        port,
        knownHosts,
        rcloneSftp,
        proxy,
        async close() {
          await rcloneSftp.dispose();
          await rm(knownHosts, { force: true });
          if (proxy) await proxy.close();
        },
      };
    };

    const listPrefix = async (bucket: string, prefix: string) => {
      const found: _Object[] = [];
      let token: string | undefined;
      do {
        const out = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        found.push(...(out.Contents ?? []));
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
      return found;
    };

    return {
      sizes,
      s3,
      client,
      dir,
      localLarge,
      localSmallDir,
      smallNames,
      rcloneS3,
      startPartner,
      openLink,
      listPrefix,
      async emptyPrefix(bucket, prefix) {
        const found = await listPrefix(bucket, prefix);
        for (let i = 0; i < found.length; i += 1000) {
          const batch = found.slice(i, i + 1000);
          await client.send(
            new DeleteObjectsCommand({
              Bucket: bucket,
              Delete: { Objects: batch.map((o) => ({ Key: o.Key as string })), Quiet: true },
            }),
          );
        }
        return found;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Names and sizes of the regular files in a local directory (recursively), for checking a destination. */
export async function filesIn(dir: string): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) {
        count += 1;
        bytes += (await stat(p)).size;
      }
    }
  };
  await walk(dir);
  return { count, bytes };
}

export const mib = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
