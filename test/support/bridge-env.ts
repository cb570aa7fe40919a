import { mkdtemp, mkdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import {
  createBridge,
  createCredentialResolver,
  validateConfig,
  type Bridge,
  type BridgeConfig,
  type BridgeConfigInput,
  type EngineDeps,
  type LogFields,
  type Logger,
} from "../../lambda/bridge";
import { startLocalS3, type LocalS3 } from "../../scripts/local/s3-server";
import { generateUserKey, startSftpServer, type EmbeddedSftpServer } from "../../scripts/local/sftp-server";

/**
 * A whole bridge environment on loopback: s3rver (real S3 HTTP API), the embedded ssh2 SFTP server over a temp dir,
 * a user key on disk, and a config whose `psp` stream points at both. Tests drive the real engine against it.
 */
export interface BridgeEnv {
  dir: string;
  s3: LocalS3;
  s3Client: S3Client;
  sftp: EmbeddedSftpServer;
  bucket: string;
  keyPath: string;
  /** Where a remote path lands on the local disk. */
  local(remotePath: string): string;
  config(overrides?: (doc: BridgeConfigInput) => void): BridgeConfig;
  configDoc(overrides?: (doc: BridgeConfigInput) => void): BridgeConfigInput;
  bridge(config?: BridgeConfig, deps?: Partial<EngineDeps>): Bridge;
  logs: { level: string; message: string; fields?: LogFields }[];
  logger: Logger;
  put(key: string, body: string | Buffer): Promise<void>;
  get(key: string): Promise<Buffer | undefined>;
  /** A partner's file on the SFTP server, dated `ageSeconds` back (old enough for any minAgeSeconds by default). */
  drop(remote: string, body: string | Buffer, ageSeconds?: number): Promise<void>;
  /** The keys under a prefix of the bucket, sorted. */
  keysUnder(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function startBridgeEnv(bucket = "bridge-it"): Promise<BridgeEnv> {
  const dir = await mkdtemp(path.join(tmpdir(), "bridge-env-"));
  const sftpRoot = path.join(dir, "sftp");
  await mkdir(sftpRoot, { recursive: true });
  const s3 = await startLocalS3({ directory: path.join(dir, "s3"), buckets: [bucket] });
  const user = generateUserKey();
  const keyPath = path.join(dir, "partner_key");
  await writeFile(keyPath, user.privateKey, { mode: 0o600 });
  const sftp = await startSftpServer({ root: sftpRoot, users: [{ username: "partner", publicKey: user.publicKey }] });
  const s3Client = s3.client();
  const logs: BridgeEnv["logs"] = [];
  const logger: Logger = {
    debug: (message, fields) => logs.push({ level: "debug", message, fields }),
    info: (message, fields) => logs.push({ level: "info", message, fields }),
    warn: (message, fields) => logs.push({ level: "warn", message, fields }),
    error: (message, fields) => logs.push({ level: "error", message, fields }),
  };

  const configDoc = (overrides?: (doc: BridgeConfigInput) => void): BridgeConfigInput => {
    const doc: BridgeConfigInput = {
      streams: {
        psp: {
          s3: { bucket, prefix: "psp/" },
          sftp: {
            host: sftp.host,
            port: sftp.port,
            username: "partner",
            credentials: { file: keyPath },
            hostKeys: [sftp.hostKeyFingerprint],
          },
          push: { from: "outbound/", to: "/IN" },
          // Files written by a test are complete: take them at once (the defaults wait out a partner still writing).
          pull: { from: "/OUT", to: "inbound/", minAgeSeconds: 0, stableCheckMs: 0 },
        },
      },
    };
    overrides?.(doc);
    return doc;
  };

  const config = (overrides?: (doc: BridgeConfigInput) => void): BridgeConfig =>
    validateConfig(configDoc(overrides), "test", { allowFileCredentials: true });

  return {
    dir,
    s3,
    s3Client,
    sftp,
    bucket,
    keyPath,
    logs,
    logger,
    local: (remotePath) => path.join(sftpRoot, remotePath),
    configDoc,
    config,
    bridge(chosen, deps = {}) {
      return createBridge({
        config: chosen ?? config(),
        s3: s3Client,
        credentials: createCredentialResolver({ allowFiles: true, s3: s3Client }),
        logger,
        ...deps,
      });
    },
    async put(key, body) {
      await s3Client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    async drop(remote, body, ageSeconds = 120) {
      const file = path.join(sftpRoot, remote);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, body);
      const t = new Date(Date.now() - ageSeconds * 1000);
      await utimes(file, t, t);
    },
    async keysUnder(prefix) {
      const out = await s3Client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      return (out.Contents ?? []).map((o) => o.Key as string).sort();
    },
    async get(key) {
      try {
        const out = await s3Client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return Buffer.from(await out.Body!.transformToByteArray());
      } catch (err) {
        if ((err as { name?: string }).name === "NoSuchKey") return undefined;
        throw err;
      }
    },
    async close() {
      s3Client.destroy();
      await sftp.close();
      await s3.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
