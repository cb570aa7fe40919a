// The bridge's interop scenarios, written once and run against every real SFTP server implementation we test with
// (bridge-openssh.test.ts, bridge-proftpd.test.ts). rclone is the independent reader: what the bridge wrote must be
// byte-identical when another client looks at it. Not a test file itself (no .test.ts), so jest only runs it through
// the per-server files.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { chown, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { Client, utils, type SFTPWrapper } from "ssh2";
import {
  createBridge,
  createCredentialResolver,
  silentLogger,
  validateConfig,
  type BridgeConfigInput,
} from "../../lambda/bridge";
import { startLocalS3, type LocalS3 } from "../../scripts/local/s3-server";
import { rcloneCat, rcloneHashsum, s3Remote, sftpRemote, type RcloneRemote } from "../../scripts/interop/rclone";
import { sha256Fingerprint, type Sshd } from "../../scripts/interop/sshd";

/** What a scenario needs from a server: the handle `startSshd()` returns, which `startProftpd()` returns too. */
export type InteropServer = Sshd;

/**
 * Where a server implementation legitimately differs from OpenSSH. Each is asserted against the live server (so a
 * package upgrade that changes it fails loudly here) and decides which engine path the scenarios expect.
 */
export interface ServerQuirks {
  /** Whether the SFTP version reply lists posix-rename@openssh.com (the engine's atomic replace). */
  advertisesPosixRename: boolean;
  /** Whether it lists limits@openssh.com; without it ssh2 keeps READ/WRITE requests to about 32 KiB. */
  advertisesLimits: boolean;
  /** The SFTP status and message of a plain SSH_FXP_RENAME onto an existing file (both servers refuse it). */
  renameOntoExisting: { status: number; message: RegExp };
  /** The SFTP status of SSH_FXP_MKDIR on an existing directory. */
  mkdirExisting: { status: number; message: RegExp };
  /**
   * A line the server logs when the re-push took the engine's fallback (plain rename refused, old copy removed):
   * proof that the path without posix-rename really ran, not just that the end result looks right.
   */
  fallbackLogEvidence?: RegExp;
}

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const bucket = "interop";
const LOG_TAIL_LINES = 150;

export function describeBridgeInterop(
  serverName: string,
  start: () => Promise<InteropServer>,
  quirks: ServerQuirks,
): void {
  describe(`interop: ${serverName} + rclone`, () => {
    let server: InteropServer;
    let s3: LocalS3;
    let client: S3Client;
    let dir: string;
    let sftpR: RcloneRemote;
    let s3R: RcloneRemote;

    const config = (edit?: (doc: BridgeConfigInput) => void) => {
      const doc: BridgeConfigInput = {
        streams: {
          bank: {
            s3: { bucket, prefix: "bank/" },
            sftp: {
              host: server.host,
              port: server.port,
              username: server.username,
              credentials: { file: path.join(dir, "key") },
              hostKeys: [server.hostKeyFingerprint],
            },
            push: { from: "outbound/", to: `${server.remoteRoot}/IN` },
            // The test's files are complete when written: take them at once (the defaults wait out a slow writer).
            pull: { from: `${server.remoteRoot}/OUT`, to: "inbound/", minAgeSeconds: 0, stableCheckMs: 0 },
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
    const put = (key: string, body: Buffer | string) =>
      client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));

    /** A scenario whose failure carries the end of the server's log: the client side of an SFTP error rarely says why. */
    const scenario = (name: string, body: () => Promise<void>, timeoutMs?: number) =>
      it(
        name,
        async () => {
          try {
            await body();
          } catch (error) {
            if (error instanceof Error) {
              const tail = server.readLog().split("\n").slice(-LOG_TAIL_LINES).join("\n");
              error.message += `\n--- ${serverName} log (last ${LOG_TAIL_LINES} lines) ---\n${tail}`;
            }
            throw error;
          }
        },
        timeoutMs,
      );

    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "interop-"));
      server = await start();
      await writeFile(path.join(dir, "key"), server.privateKey, { mode: 0o600 });
      s3 = await startLocalS3({ directory: path.join(dir, "s3"), buckets: [bucket] });
      client = s3.client();
      sftpR = await sftpRemote(server);
      s3R = s3Remote(s3);
    }, 60_000);
    afterAll(async () => {
      client?.destroy();
      await sftpR?.dispose();
      await s3?.close();
      await server?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    scenario("speaks the SFTP dialect these scenarios expect (extensions, rename and mkdir statuses)", async () => {
      await withRawSftp(server, async (sftp) => {
        const extensions = (sftp as unknown as { _extensions: Record<string, string> })._extensions;
        expect("posix-rename@openssh.com" in extensions).toBe(quirks.advertisesPosixRename);
        expect("limits@openssh.com" in extensions).toBe(quirks.advertisesLimits);

        const base = `${server.remoteRoot}/dialect`;
        await call<void>((cb) => sftp.mkdir(base, cb));
        const mkdirAgain = await call<void>((cb) => sftp.mkdir(base, cb)).catch((e: unknown) => e);
        expect(statusOf(mkdirAgain)).toEqual(quirks.mkdirExisting.status);
        expect((mkdirAgain as Error).message).toMatch(quirks.mkdirExisting.message);

        for (const [name, body] of [
          ["old", "old"],
          ["new", "new"],
        ]) {
          const handle = await call<Buffer>((cb) => sftp.open(`${base}/${name}`, "w", cb));
          await call<void>((cb) => sftp.write(handle, Buffer.from(body!), 0, body!.length, 0, cb));
          await call<void>((cb) => sftp.close(handle, cb));
        }
        // Plain SFTP rename never replaces (v3 has no overwrite flag): the reason the engine prefers posix-rename
        // and otherwise removes the old copy first.
        const renamed = await call<void>((cb) => sftp.rename(`${base}/new`, `${base}/old`, cb)).catch(
          (e: unknown) => e,
        );
        expect(statusOf(renamed)).toEqual(quirks.renameOntoExisting.status);
        expect((renamed as Error).message).toMatch(quirks.renameOntoExisting.message);
        expect(await readFile(path.join(server.root, "dialect/old"), "utf8")).toBe("old");
      });
    });

    scenario(
      "pushes nested, unicode, empty and multi-MiB objects that rclone reads back byte-identical",
      async () => {
        const big = Buffer.alloc(12 * 1024 * 1024 + 123);
        for (let i = 0; i + 4 <= big.length; i += 997) big.writeUInt32LE(i, i);
        const files: Record<string, Buffer> = {
          "outbound/a.xml": Buffer.from("<a/>"),
          "outbound/2026/11/b c+d é.xml": Buffer.from("<unicode/>"),
          "outbound/empty.dat": Buffer.alloc(0),
          "outbound/big.bin": big,
        };
        for (const [k, body] of Object.entries(files)) await put(`bank/${k}`, body);
        const report = await bridge().push(Object.keys(files).map((k) => ({ bucket, key: `bank/${k}` })));
        expect(report.streams[0]?.failed).toEqual([]);
        expect(report.ok).toBe(true);
        expect(report.streams[0]?.files).toBe(4);
        const sums = await rcloneHashsum({ remote: sftpR, path: `${server.remoteRoot}/IN` });
        for (const [k, body] of Object.entries(files)) {
          expect(sums.get(k.slice("outbound/".length))).toBe(sha(body));
        }
        expect((await rcloneCat(sftpR, `${server.remoteRoot}/IN/a.xml`)).toString()).toBe("<a/>");
        expect(tempLeftovers(path.join(server.root, "IN"))).toEqual([]);
      },
      60_000,
    );

    // With posix-rename the new copy replaces the old one in a single step; without it (see quirks) a plain rename
    // onto the existing name is refused, and the engine removes the old copy and renames again. Either way the
    // partner ends up with exactly the new bytes under the final name and no temporary file.
    scenario(
      quirks.advertisesPosixRename
        ? "replaces an existing remote file atomically (posix-rename) when the object is pushed again"
        : "replaces an existing remote file (remove, then plain rename: no posix-rename) when pushed again",
      async () => {
        await put("bank/outbound/a.xml", "<a version='2'/>");
        const report = await bridge().push([{ bucket, key: "bank/outbound/a.xml" }]);
        expect(report.streams[0]?.failed).toEqual([]);
        expect(report.ok).toBe(true);
        expect(await readFile(path.join(server.root, "IN/a.xml"), "utf8")).toBe("<a version='2'/>");
        expect((await rcloneCat(sftpR, `${server.remoteRoot}/IN/a.xml`)).toString()).toBe("<a version='2'/>");
        expect(tempLeftovers(path.join(server.root, "IN"))).toEqual([]);
        if (quirks.fallbackLogEvidence) expect(server.readLog()).toMatch(quirks.fallbackLogEvidence);
      },
    );

    scenario("pulls files into S3 (checked with rclone) and archives them in .done without replacing", async () => {
      const out = path.join(server.root, "OUT");
      await mkdir(out, { recursive: true });
      const { uid, gid } = statSync(server.root);
      await chown(out, uid, gid);
      const old = new Date(Date.now() - 60_000);
      const deliver = async (name: string, body: Buffer) => {
        await writeFile(path.join(out, name), body);
        await chown(path.join(out, name), uid, gid);
        await utimes(path.join(out, name), old, old);
      };

      // A multi-MiB file that is not a multiple of any request size: read with many READs in flight (255 KiB each
      // from OpenSSH, which advertises limits@openssh.com; about 32 KiB from servers that do not) and put back in order.
      const big = Buffer.alloc(9 * 1024 * 1024 + 4567);
      for (let i = 0; i + 4 <= big.length; i += 1013) big.writeUInt32LE(i ^ 0x5a5a5a5a, i);
      const first = Buffer.from("id,amount\n1,10.00\n2,20.00\n");
      await deliver("settlement 1.csv", first);
      await deliver("statement.bin", big);
      // Names the bridge refuses to turn into keys: reported and left there, never a reason to stop the stream.
      await deliver("back\\slash.csv", Buffer.from("odd"));
      await deliver("new\nline.csv", Buffer.from("odd"));
      const report = await bridge().pull(["bank"]);
      expect(report.streams[0]?.failed).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.streams[0]?.files).toBe(2);
      expect(
        report.streams[0]?.skipped
          .filter((f) => f.reason === "unsafe-name")
          .map((f) => f.source)
          .sort(),
      ).toEqual([`${server.remoteRoot}/OUT/back\\slash.csv`, `${server.remoteRoot}/OUT/new\\x0aline.csv`].sort());
      expect(existsSync(path.join(out, "back\\slash.csv"))).toBe(true);
      expect(existsSync(path.join(out, "new\nline.csv"))).toBe(true);
      expect((await rcloneCat(s3R, `${bucket}/bank/inbound/settlement 1.csv`)).equals(first)).toBe(true);
      const sums = await rcloneHashsum({ remote: s3R, path: `${bucket}/bank/inbound` });
      expect(sums.get("statement.bin")).toBe(sha(big));
      expect(existsSync(path.join(out, "settlement 1.csv"))).toBe(false);
      expect(existsSync(path.join(out, "statement.bin"))).toBe(false);
      expect(await readFile(path.join(out, ".done", "settlement 1.csv"))).toEqual(first);
      expect(sha(await readFile(path.join(out, ".done", "statement.bin")))).toBe(sha(big));

      // The partner delivers the same name again: the archive keeps both (a plain rename that never replaces), and so
      // does S3 (the first copy keeps its key, the second gets a time-stamped one).
      const second = Buffer.from("id,amount\n3,30.00\n");
      await deliver("settlement 1.csv", second);
      const again = await bridge().pull(["bank"]);
      expect(again.streams[0]?.failed).toEqual([]);
      expect(again.streams[0]?.files).toBe(1);
      expect((await rcloneCat(s3R, `${bucket}/bank/inbound/settlement 1.csv`)).equals(first)).toBe(true);
      const secondKey = again.streams[0]!.moved[0]!.destination.replace(`s3://${bucket}/`, "");
      expect(secondKey).toMatch(/^bank\/inbound\/settlement 1\.\d{8}T\d{6}Z(-\d+)?\.csv$/);
      expect((await rcloneCat(s3R, `${bucket}/${secondKey}`)).equals(second)).toBe(true);
      const archived = readdirSync(path.join(out, ".done")).filter((n) => n.startsWith("settlement 1"));
      expect(archived).toHaveLength(2);
      expect(await readFile(path.join(out, ".done", "settlement 1.csv"))).toEqual(first);
      const stamped = archived.find((n) => n !== "settlement 1.csv")!;
      expect(stamped).toMatch(/^settlement 1\..+\.csv$/);
      expect(await readFile(path.join(out, ".done", stamped))).toEqual(second);
    });

    scenario("fails clearly, leaving nothing behind, when the partner's directory is not writable", async () => {
      // The session's "/" is root-owned on both servers (chroot), so the user cannot create a directory there.
      await put("bank/outbound/denied.xml", "<denied/>");
      const report = await bridge((doc) => {
        doc.streams.bank!.push!.to = "/denied";
      }).push([{ bucket, key: "bank/outbound/denied.xml" }]);
      expect(report.ok).toBe(false);
      expect(report.streams[0]?.failed).toHaveLength(1);
      expect(report.streams[0]?.failed[0]?.code).toBe("SFTP_OPERATION_FAILED");
      expect(report.streams[0]?.failed[0]?.message).toMatch(/sftp mkdir \/denied: permission denied/);
      expect(existsSync(path.join(path.dirname(server.root), "denied"))).toBe(false);
    });

    scenario("refuses a client key the partner does not know, as an authentication failure", async () => {
      await put("bank/outbound/stranger.xml", "<stranger/>");
      const stranger = utils.generateKeyPairSync("ed25519");
      await writeFile(path.join(dir, "stranger-key"), stranger.private, { mode: 0o600 });
      const attempt = () =>
        bridge((doc) => {
          doc.streams.bank!.sftp.credentials = { file: path.join(dir, "stranger-key") };
        }).push([{ bucket, key: "bank/outbound/stranger.xml" }]);
      let report = await attempt();
      // Seen once in a long CI run: the connection failed before the server logged it at all (SFTP_CONNECT_FAILED,
      // nothing in sshd's log). That is not the behaviour under test, so it is reported and tried once more; a
      // second connect failure, or any other code, still fails the scenario.
      const first = report.streams[0]?.failed[0];
      if (first?.code === "SFTP_CONNECT_FAILED") {
        console.warn(`stranger-key scenario: first connect failed before authentication: ${first.message}`);
        report = await attempt();
      }
      expect(report.ok).toBe(false);
      // The whole entry, so that a failure shows the message the engine gave.
      expect(report.streams[0]?.failed[0]).toMatchObject({
        code: "SFTP_AUTH_FAILED",
        message: expect.stringContaining(`authentication failed for user "${server.username}"`),
      });
      expect(existsSync(path.join(server.root, "IN/stranger.xml"))).toBe(false);
    });

    scenario(`refuses ${serverName}'s host key when another is pinned`, async () => {
      await put("bank/outbound/x.xml", "x");
      const report = await bridge((doc) => {
        doc.streams.bank!.sftp.hostKeys = ["SHA256:" + "B".repeat(43)];
      }).push([{ bucket, key: "bank/outbound/x.xml" }]);
      expect(report.streams[0]?.failed[0]?.code).toBe("HOST_KEY_REJECTED");
      expect(report.streams[0]?.failed[0]?.message).toContain(server.hostKeyFingerprint);
      expect(existsSync(path.join(server.root, "IN/x.xml"))).toBe(false);
    });
  });
}

/** Names in `dir` that look like the engine's temporary upload names (".name.<hex>.part"). */
function tempLeftovers(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.endsWith(".part"));
}

/** The SFTP status number ssh2 puts on a failed request. */
function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "number" ? code : undefined;
}

function call<T>(run: (cb: (err: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value))));
}

/** A bare ssh2 SFTP channel to the server, with its host key checked, for asserting what the server itself does. */
async function withRawSftp(server: InteropServer, work: (sftp: SFTPWrapper) => Promise<void>): Promise<void> {
  const ssh = new Client();
  try {
    await new Promise<void>((resolve, reject) => {
      ssh.once("ready", () => resolve());
      ssh.once("error", reject);
      ssh.connect({
        host: server.host,
        port: server.port,
        username: server.username,
        privateKey: server.privateKey,
        readyTimeout: 10_000,
        hostVerifier: (key: Buffer) => sha256Fingerprint(key) === server.hostKeyFingerprint,
      });
    });
    const sftp = await call<SFTPWrapper>((cb) => ssh.sftp(cb));
    await work(sftp);
  } finally {
    ssh.end();
  }
}
