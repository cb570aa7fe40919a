// The interop harness itself: a real OpenSSH sshd (internal-sftp, chroot, key auth, pinned host key) and rclone as
// an independent reader. If these pass, later interop tests can trust "rclone says the bytes are identical".
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { utils } from "ssh2";
import SftpClient from "ssh2-sftp-client";
import { type LocalS3, startLocalS3 } from "../../scripts/local/s3-server";
import {
  type RcloneRemote,
  rcloneCat,
  rcloneCheck,
  rcloneCopy,
  rcloneHashsum,
  s3Remote,
  sftpRemote,
} from "../../scripts/interop/rclone";
import { type Sshd, pathExists, processIsRunning, sha256Fingerprint, startSshd } from "../../scripts/interop/sshd";

jest.setTimeout(120_000);

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** ssh2-sftp-client with its console-printing default listeners replaced, and a host key check by fingerprint. */
async function connect(sshd: Sshd, pinned: string, presented: string[] = []): Promise<SftpClient> {
  const client = new SftpClient("harness", { error: () => undefined, end: () => undefined, close: () => undefined });
  await client.connect({
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    privateKey: sshd.privateKey,
    readyTimeout: 10_000,
    // Without hostHash ssh2 hands over the raw key blob, so the check compares OpenSSH-style fingerprints.
    hostVerifier: (key: Buffer) => {
      const fingerprint = sha256Fingerprint(key);
      presented.push(fingerprint);
      return fingerprint === pinned;
    },
  });
  return client;
}

/** Adds sshd's log to a failure, since the client side of an SSH error rarely says why. */
async function withLog<T>(sshd: Sshd, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof Error) error.message += `\n--- sshd log ---\n${sshd.readLog()}`;
    throw error;
  }
}

describe("OpenSSH sshd + rclone harness", () => {
  let sshd: Sshd;
  let sftp: RcloneRemote;

  beforeAll(async () => {
    sshd = await startSshd();
    sftp = await sftpRemote(sshd);
  });

  afterAll(async () => {
    await sftp?.dispose();
    await sshd?.close();
  });

  it("pins the host key by the fingerprint ssh-keygen prints", () => {
    expect(sshd.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const [type, blob] = sshd.hostPublicKey.split(" ");
    expect(type).toBe("ssh-ed25519");
    expect(sha256Fingerprint(Buffer.from(blob!, "base64"))).toBe(sshd.hostKeyFingerprint);
  });

  it("writes over SFTP as the chrooted user and reads back byte-identical with rclone", async () => {
    const data = randomBytes(2 * 1024 * 1024 + 17);
    const relative = "harness/deep dir/file & name+1.bin";
    const remotePath = `${sshd.remoteRoot}/${relative}`;
    const presented: string[] = [];

    await withLog(sshd, async () => {
      const client = await connect(sshd, sshd.hostKeyFingerprint, presented);
      try {
        // The chroot start directory is what the server reports as ".".
        expect(await client.cwd()).toBe(sshd.remoteRoot);
        await client.mkdir(path.posix.dirname(remotePath), true);
        await client.put(data, remotePath);
      } finally {
        await client.end();
      }
    });
    expect(presented).toEqual([sshd.hostKeyFingerprint]);

    // Written through sshd by the SFTP user, not by this (root) process.
    const local = path.join(sshd.root, relative);
    expect((await stat(local)).uid).not.toBe(0);
    expect(sha256(await readFile(local))).toBe(sha256(data));

    const viaRclone = await withLog(sshd, () => rcloneCat(sftp, remotePath));
    expect(viaRclone.length).toBe(data.length);
    expect(sha256(viaRclone)).toBe(sha256(data));

    const hashes = await rcloneHashsum({ remote: sftp, path: `${sshd.remoteRoot}/harness` });
    expect(Object.fromEntries(hashes)).toEqual({ "deep dir/file & name+1.bin": sha256(data) });
  });

  it("refuses the server when the pinned fingerprint is wrong", async () => {
    const otherKey = utils.generateKeyPairSync("ed25519").public.split(" ")[1]!;
    const wrong = sha256Fingerprint(Buffer.from(otherKey, "base64"));
    expect(wrong).not.toBe(sshd.hostKeyFingerprint);
    const presented: string[] = [];
    await expect(connect(sshd, wrong, presented)).rejects.toThrow(/verification failed|Host denied/i);
    // The refusal came from the check on the real key, not from some earlier failure.
    expect(presented).toEqual([sshd.hostKeyFingerprint]);
  });

  it("rclone refuses the server when its known_hosts pins another key", async () => {
    const otherKey = utils.generateKeyPairSync("ed25519").public.split(" ").slice(0, 2).join(" ");
    const impostor = await sftpRemote({ ...sshd, hostPublicKey: otherKey }, "impostor");
    try {
      await expect(rcloneCat(impostor, `${sshd.remoteRoot}/anything`)).rejects.toThrow(/key mismatch|knownhosts/i);
    } finally {
      await impostor.dispose();
    }
  });

  describe("with the local S3", () => {
    let s3dir: string;
    let localS3: LocalS3;
    let s3: RcloneRemote;
    const bucket = "harness";
    const files: Record<string, Buffer> = {
      "a.xml": Buffer.from("<a/>\n"),
      "sub dir/b & c.bin": randomBytes(300_000),
      "sub dir/ü+d.txt": Buffer.from("unicode and plus\n"),
    };

    beforeAll(async () => {
      s3dir = await mkdtemp(path.join(os.tmpdir(), "harness-s3-"));
      localS3 = await startLocalS3({ directory: s3dir, buckets: [bucket] });
      s3 = s3Remote(localS3);
      const client = localS3.client();
      try {
        for (const [key, body] of Object.entries(files)) {
          await client.send(new PutObjectCommand({ Bucket: bucket, Key: `tree/${key}`, Body: body }));
        }
      } finally {
        client.destroy();
      }
    });

    afterAll(async () => {
      await localS3?.close();
      if (s3dir) await rm(s3dir, { recursive: true, force: true });
    });

    it("rcloneCopy moves a tree S3 -> SFTP and rcloneCheck proves it identical, then catches a changed byte", async () => {
      const remoteTree = `${sshd.remoteRoot}/from-s3`;
      await withLog(sshd, () => rcloneCopy({ remote: s3, path: `${bucket}/tree` }, { remote: sftp, path: remoteTree }));
      for (const [name, body] of Object.entries(files)) {
        expect(sha256(await readFile(path.join(sshd.root, "from-s3", name)))).toBe(sha256(body));
      }
      await rcloneCheck({ remote: s3, path: `${bucket}/tree` }, { remote: sftp, path: remoteTree });

      // Same size, one byte different: a size-only comparison would pass, the content check must not.
      const victim = path.join(sshd.root, "from-s3", "sub dir/b & c.bin");
      const changed = Buffer.from(files["sub dir/b & c.bin"]!);
      changed[1234] = changed[1234]! ^ 0xff;
      await writeFile(victim, changed);
      await expect(
        rcloneCheck({ remote: s3, path: `${bucket}/tree` }, { remote: sftp, path: remoteTree }),
      ).rejects.toThrow(/differ/i);
    });

    it("rcloneCopy moves a tree SFTP -> S3", async () => {
      const client = await connect(sshd, sshd.hostKeyFingerprint);
      try {
        await client.mkdir(`${sshd.remoteRoot}/to-s3/x y`, true);
        await client.put(files["sub dir/b & c.bin"]!, `${sshd.remoteRoot}/to-s3/x y/b & c.bin`);
      } finally {
        await client.end();
      }
      await rcloneCopy({ remote: sftp, path: `${sshd.remoteRoot}/to-s3` }, { remote: s3, path: `${bucket}/back` });
      const s3client = localS3.client();
      try {
        const object = await s3client.send(new GetObjectCommand({ Bucket: bucket, Key: "back/x y/b & c.bin" }));
        const body = Buffer.from(await object.Body!.transformToByteArray());
        expect(sha256(body)).toBe(sha256(files["sub dir/b & c.bin"]!));
      } finally {
        s3client.destroy();
      }
    });
  });
});

describe("sshd lifecycle", () => {
  it("close() ends the listener and open sessions, frees the port and removes its files", async () => {
    const sshd = await startSshd();
    const client = await connect(sshd, sshd.hostKeyFingerprint);
    const clientClosed = new Promise<void>((resolve) => client.on("close", () => resolve()));
    const runDir = path.dirname(path.dirname(sshd.root));
    expect(processIsRunning(sshd.pid)).toBe(true);

    await sshd.close();

    expect(processIsRunning(sshd.pid)).toBe(false);
    // The open session's process was ended too, so the server side hung up on the client.
    await clientClosed;
    expect(await pathExists(runDir)).toBe(false);
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port: sshd.port });
      socket.once("connect", () => (socket.destroy(), resolve(false)));
      socket.once("error", () => resolve(true));
    });
    expect(refused).toBe(true);
    await client.end().catch(() => undefined);
  });
});
