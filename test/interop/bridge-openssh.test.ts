import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chown, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import {
  createBridge,
  createCredentialResolver,
  silentLogger,
  validateConfig,
  type BridgeConfigInput,
} from "../../lambda/bridge";
import { startLocalS3, type LocalS3 } from "../../scripts/local/s3-server";
import { rcloneCat, rcloneHashsum, s3Remote, sftpRemote, type RcloneRemote } from "../support/rclone";
import { startSshd, type Sshd } from "../support/sshd";

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/**
 * The same push and pull scenarios against OpenSSH's own SFTP server (internal-sftp, key auth, chrooted), with rclone
 * as an independent reader: what the bridge wrote must be byte-identical when another client looks at it.
 */
describe("interop: OpenSSH sshd + rclone", () => {
  let sshd: Sshd;
  let s3: LocalS3;
  let client: S3Client;
  let dir: string;
  let sftpR: RcloneRemote;
  let s3R: RcloneRemote;
  const bucket = "interop";

  const config = (edit?: (doc: BridgeConfigInput) => void) => {
    const doc: BridgeConfigInput = {
      streams: {
        bank: {
          s3: { bucket, prefix: "bank/" },
          sftp: {
            host: sshd.host,
            port: sshd.port,
            username: sshd.username,
            credentials: { file: path.join(dir, "key") },
            hostKeys: [sshd.hostKeyFingerprint],
          },
          push: { from: "outbound/", to: `${sshd.remoteRoot}/IN` },
          pull: { from: `${sshd.remoteRoot}/OUT`, to: "inbound/" },
        },
      },
    };
    edit?.(doc);
    return validateConfig(doc, "interop", { allowFileCredentials: true });
  };
  const bridge = (edit?: (doc: BridgeConfigInput) => void) =>
    createBridge({
      config: config(edit),
      s3: client,
      credentials: createCredentialResolver({ allowFiles: true }),
      logger: silentLogger,
    });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "interop-"));
    sshd = await startSshd();
    await writeFile(path.join(dir, "key"), sshd.privateKey, { mode: 0o600 });
    s3 = await startLocalS3({ directory: path.join(dir, "s3"), buckets: [bucket] });
    client = s3.client();
    sftpR = await sftpRemote(sshd);
    s3R = s3Remote(s3);
  }, 60_000);
  afterAll(async () => {
    client?.destroy();
    await sftpR?.dispose();
    await s3?.close();
    await sshd?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("pushes nested, unicode, empty and multi-MiB objects that rclone reads back byte-identical", async () => {
    const big = Buffer.alloc(12 * 1024 * 1024 + 123);
    for (let i = 0; i + 4 <= big.length; i += 997) big.writeUInt32LE(i, i);
    const files: Record<string, Buffer> = {
      "outbound/a.xml": Buffer.from("<a/>"),
      "outbound/2026/11/b c+d é.xml": Buffer.from("<unicode/>"),
      "outbound/empty.dat": Buffer.alloc(0),
      "outbound/big.bin": big,
    };
    for (const [k, body] of Object.entries(files)) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `bank/${k}`, Body: body }));
    }
    const report = await bridge().push(Object.keys(files).map((k) => ({ bucket, key: `bank/${k}` })));
    expect(report.ok).toBe(true);
    expect(report.streams[0]?.files).toBe(4);
    const sums = await rcloneHashsum({ remote: sftpR, path: `${sshd.remoteRoot}/IN` });
    for (const [k, body] of Object.entries(files)) {
      expect(sums.get(k.slice("outbound/".length))).toBe(sha(body));
    }
    expect((await rcloneCat(sftpR, `${sshd.remoteRoot}/IN/a.xml`)).toString()).toBe("<a/>");
  }, 60_000);

  it("replaces an existing remote file atomically (posix-rename) when the object is pushed again", async () => {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: "bank/outbound/a.xml", Body: "<a version='2'/>" }));
    const report = await bridge().push([{ bucket, key: "bank/outbound/a.xml" }]);
    expect(report.ok).toBe(true);
    expect(await readFile(path.join(sshd.root, "IN/a.xml"), "utf8")).toBe("<a version='2'/>");
  });

  it("pulls files into S3 (checked with rclone) and archives them in .done on the OpenSSH server", async () => {
    const out = path.join(sshd.root, "OUT");
    await mkdir(out, { recursive: true });
    const uid = (await import("node:fs")).statSync(sshd.root).uid;
    await chown(out, uid, uid).catch(() => undefined);
    const payload = Buffer.from("id,amount\n1,10.00\n2,20.00\n");
    await writeFile(path.join(out, "settlement 1.csv"), payload);
    const old = new Date(Date.now() - 60_000);
    await utimes(path.join(out, "settlement 1.csv"), old, old);
    const report = await bridge().pull(["bank"]);
    expect(report.ok).toBe(true);
    expect(report.streams[0]?.files).toBe(1);
    expect((await rcloneCat(s3R, `${bucket}/bank/inbound/settlement 1.csv`)).equals(payload)).toBe(true);
    expect(existsSync(path.join(out, "settlement 1.csv"))).toBe(false);
    expect(existsSync(path.join(out, ".done", "settlement 1.csv"))).toBe(true);
  });

  it("refuses OpenSSH's host key when another is pinned", async () => {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: "bank/outbound/x.xml", Body: "x" }));
    const report = await bridge((doc) => {
      doc.streams.bank!.sftp.hostKeys = ["SHA256:" + "B".repeat(43)];
    }).push([{ bucket, key: "bank/outbound/x.xml" }]);
    expect(report.streams[0]?.failed[0]?.code).toBe("HOST_KEY_REJECTED");
    expect(report.streams[0]?.failed[0]?.message).toContain(sshd.hostKeyFingerprint);
  });
});
