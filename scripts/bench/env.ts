// The benchmark's loopback world: OpenSSH sshd (internal-sftp, chrooted, key auth) as the partner, s3rver as S3, the
// test data in both, and the small chores between runs (resetting sources, emptying destinations).
import { randomFillSync } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { chown, copyFile, link, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
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
import { startSshd, type Sshd } from "../../test/support/sshd";
import { s3Remote, sftpRemote, type RcloneRemote } from "../../test/support/rclone";

export const BUCKET = "bench";
export const RECEIPTS_BUCKET = "bench-receipts";
export const LARGE_NAME = "large.bin";

export interface BenchSizes {
  largeBytes: number;
  smallCount: number;
  smallBytes: number;
}

export interface BenchEnv {
  sizes: BenchSizes;
  sshd: Sshd;
  s3: LocalS3;
  client: S3Client;
  /** Local scratch directory (keys, known_hosts, local copies of the data, job files). */
  dir: string;
  keyFile: string;
  knownHosts: string;
  /** Local sources for OpenSSH `sftp put` and the plain SDK upload. */
  localLarge: string;
  localSmallDir: string;
  smallNames: string[];
  rcloneSftp: RcloneRemote;
  rcloneS3: RcloneRemote;
  /** A directory under the SFTP user's root, as the local path and as the SFTP path. */
  sftpDir(name: string): { local: string; remote: string };
  /** Empties (and recreates, owned by the SFTP user) a directory under the SFTP root. */
  resetSftpDir(name: string): Promise<{ local: string; remote: string }>;
  /** Puts fresh hard links to the pristine data into an SFTP source directory (what a pull consumes). */
  stageSftpSource(name: string, what: "large" | "small"): Promise<void>;
  /** Deletes every object under a prefix; returns what was there before. */
  emptyPrefix(bucket: string, prefix: string): Promise<_Object[]>;
  listPrefix(bucket: string, prefix: string): Promise<_Object[]>;
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
    log("starting OpenSSH sshd and s3rver on loopback");
    const sshd = await startSshd();
    cleanups.push(() => sshd.close());
    const s3 = await startLocalS3({ directory: path.join(dir, "s3rver"), buckets: [BUCKET, RECEIPTS_BUCKET] });
    cleanups.push(() => s3.close());
    const client = s3.client();
    cleanups.push(async () => client.destroy());

    const keyFile = path.join(dir, "client_key");
    await writeFile(keyFile, sshd.privateKey.endsWith("\n") ? sshd.privateKey : `${sshd.privateKey}\n`, {
      mode: 0o600,
    });
    const knownHosts = path.join(dir, "known_hosts");
    await writeFile(knownHosts, `[${sshd.host}]:${sshd.port} ${sshd.hostPublicKey}\n`, { mode: 0o644 });
    const rcloneSftp = await sftpRemote(sshd, "benchsftp");
    cleanups.push(() => rcloneSftp.dispose());
    const rcloneS3 = s3Remote(s3, "benchs3");

    const { uid, gid } = await stat(sshd.root);
    // Pristine copies live next to the SFTP root (same file system), so staging a pull source is a hard link.
    const pristine = path.join(path.dirname(sshd.root), "bench-pristine");
    await mkdir(path.join(pristine, "small"), { recursive: true });

    log(`making test data: 1 x ${mib(sizes.largeBytes)} MiB and ${sizes.smallCount} x ${sizes.smallBytes / 1024} KiB`);
    const localLarge = path.join(dir, LARGE_NAME);
    await writeRandomFile(localLarge, sizes.largeBytes);
    // A hard link where both are on one file system, a copy otherwise.
    await link(localLarge, path.join(pristine, LARGE_NAME)).catch(() =>
      copyFile(localLarge, path.join(pristine, LARGE_NAME)),
    );
    const localSmallDir = path.join(dir, "small");
    await mkdir(localSmallDir);
    const smallNames = Array.from({ length: sizes.smallCount }, (_, i) => `f${String(i).padStart(5, "0")}.bin`);
    const smallBuf = Buffer.allocUnsafe(sizes.smallBytes);
    for (const name of smallNames) {
      const body = Buffer.from(randomFillSync(smallBuf));
      await writeFile(path.join(localSmallDir, name), body);
      await writeFile(path.join(pristine, "small", name), body);
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

    const sftpDir = (name: string) => ({ local: path.join(sshd.root, name), remote: `${sshd.remoteRoot}/${name}` });
    const resetSftpDir = async (name: string) => {
      const d = sftpDir(name);
      await rm(d.local, { recursive: true, force: true });
      await mkdir(d.local, { mode: 0o755 });
      await chown(d.local, uid, gid);
      return d;
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
      sshd,
      s3,
      client,
      dir,
      keyFile,
      knownHosts,
      localLarge,
      localSmallDir,
      smallNames,
      rcloneSftp,
      rcloneS3,
      sftpDir,
      resetSftpDir,
      async stageSftpSource(name, what) {
        const d = await resetSftpDir(name);
        const names = what === "large" ? [LARGE_NAME] : smallNames;
        const from = what === "large" ? pristine : path.join(pristine, "small");
        for (const n of names) await link(path.join(from, n), path.join(d.local, n));
      },
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
