import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { RunReport } from "../../lambda/bridge";
import { fingerprintOf } from "../../scripts/local/sftp-server";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

describe("push S3 -> SFTP on s3rver and the embedded SFTP server", () => {
  let env: BridgeEnv;
  beforeAll(async () => {
    env = await startBridgeEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  it("delivers nested keys, odd names and empty files, keeping the relative path", async () => {
    const files: Record<string, string> = {
      "psp/outbound/a.xml": "<a/>",
      "psp/outbound/2026/11/deep/b.xml": "<b/>",
      "psp/outbound/with space+plus é.xml": "<unicode/>",
      "psp/outbound/empty.xml": "",
    };
    for (const [key, body] of Object.entries(files)) await env.put(key, body);
    const report = await env.bridge().push(Object.keys(files).map((key) => ({ bucket: env.bucket, key })));
    expect(report.ok).toBe(true);
    expect(report.streams[0]?.files).toBe(4);
    for (const [key, body] of Object.entries(files)) {
      const remote = "/IN/" + key.slice("psp/outbound/".length);
      expect(await readFile(env.local(remote), "utf8")).toBe(body);
    }
    // No temporary file is left next to the delivered ones.
    expect((await readdir(env.local("/IN"))).filter((n) => n.startsWith("."))).toEqual([]);
    expect(env.logs.some((l) => l.message === "[psp]: Moved 4 files from S3 to SFTP")).toBe(true);
  });

  it("skips keys that do not match the patterns, and reports them", async () => {
    await env.put("psp/outbound/notes.txt", "skip me");
    await env.put("psp/outbound/keep.xml", "<keep/>");
    const config = env.config((doc) => {
      doc.streams.psp!.push!.patterns = ["*.xml"];
    });
    const report = await env.bridge(config).push([
      { bucket: env.bucket, key: "psp/outbound/notes.txt" },
      { bucket: env.bucket, key: "psp/outbound/keep.xml" },
    ]);
    expect(report.streams[0]?.skipped).toEqual([
      expect.objectContaining({ source: `s3://${env.bucket}/psp/outbound/notes.txt`, reason: "pattern" }),
    ]);
    expect(report.streams[0]?.files).toBe(1);
    expect(existsSync(env.local("/IN/notes.txt"))).toBe(false);
  });

  it("refuses keys that would climb out of the remote root, without touching the server", async () => {
    const before = env.sftp.stats.sessionsOpened;
    const report = await env.bridge().push([
      { bucket: env.bucket, key: "psp/outbound/../../etc/passwd" },
      { bucket: env.bucket, key: "psp/outbound/a/\u0000b" },
    ]);
    expect(report.ok).toBe(false);
    const failed = report.streams.flatMap((s) => s.failed);
    expect(failed.map((f) => f.code)).toEqual(["INVALID_KEY", "INVALID_KEY"]);
    expect(failed[0]?.message).toMatch(/refusing key .*\.\./);
    expect(env.sftp.stats.sessionsOpened).toBe(before);
  });

  it("reports keys no stream claims as unrouted, not as failures", async () => {
    const report = await env.bridge().push([
      { bucket: env.bucket, key: "elsewhere/x.xml" },
      { bucket: env.bucket, key: "psp/inbound/pulled.xml" },
    ]);
    expect(report.ok).toBe(true);
    expect(report.unrouted.map((u) => u.reason)).toEqual(["no-stream", "no-stream"]);
  });

  it("refuses an unpinned host key, naming the fingerprint it saw, and leaves the object in S3", async () => {
    await env.put("psp/outbound/pinned.xml", "<p/>");
    const config = env.config((doc) => {
      doc.streams.psp!.sftp.hostKeys = ["SHA256:" + "A".repeat(43)];
    });
    const report = await env.bridge(config).push([{ bucket: env.bucket, key: "psp/outbound/pinned.xml" }]);
    const [failure] = report.streams[0]!.failed;
    expect(failure?.code).toBe("HOST_KEY_REJECTED");
    expect(failure?.message).toContain(env.sftp.hostKeyFingerprint);
    expect(failure?.message).toMatch(/add it to sftp.hostKeys/);
    expect(existsSync(env.local("/IN/pinned.xml"))).toBe(false);
    expect(await env.get("psp/outbound/pinned.xml")).toBeDefined();
  });

  it("connects when the server's key is the second of two pinned keys (a rotation pinned ahead)", async () => {
    const fixture = readFileSync(path.join(__dirname, "../fixtures/sftp-server/host_ed25519_key.pub"), "utf8");
    const otherKey = fingerprintOf(Buffer.from(fixture.split(" ")[1]!, "base64"));
    expect(otherKey).not.toBe(env.sftp.hostKeyFingerprint);
    await env.put("psp/outbound/second-key.xml", "<k/>");
    const item = { bucket: env.bucket, key: "psp/outbound/second-key.xml" };
    const pinned = (hostKeys: string[]) =>
      env.config((doc) => {
        doc.streams.psp!.sftp.hostKeys = hostKeys;
      });
    // The first key alone is refused, so the push below can only succeed by matching the second.
    const refused = await env.bridge(pinned([otherKey])).push([item]);
    expect(refused.streams[0]?.failed[0]?.code).toBe("HOST_KEY_REJECTED");
    const report = await env.bridge(pinned([otherKey, env.sftp.hostKeyFingerprint])).push([item]);
    expect(report.ok).toBe(true);
    expect(await readFile(env.local("/IN/second-key.xml"), "utf8")).toBe("<k/>");
  });

  it("fails clearly when the credentials reference points nowhere", async () => {
    await env.put("psp/outbound/nocreds.xml", "<n/>");
    const config = env.config((doc) => {
      doc.streams.psp!.sftp.credentials = { file: env.dir + "/no-such-key" };
    });
    const report = await env.bridge(config).push([{ bucket: env.bucket, key: "psp/outbound/nocreds.xml" }]);
    expect(report.streams[0]?.failed[0]).toMatchObject({ code: "CREDENTIALS_NOT_FOUND" });
    expect(report.streams[0]?.failed[0]?.message).toContain("no-such-key");
    expect(await env.get("psp/outbound/nocreds.xml")).toBeDefined();
  });

  it("reports an object deleted before the push as not found (a poison message), not a crash", async () => {
    const report = await env.bridge().push([{ bucket: env.bucket, key: "psp/outbound/never-existed.xml", ref: "m-1" }]);
    expect(report.streams[0]?.failed).toEqual([expect.objectContaining({ code: "S3_OBJECT_NOT_FOUND", ref: "m-1" })]);
  });

  it("writes a receipt with the SHA-256, skips a duplicate delivery, and re-sends when forced", async () => {
    const body = "<receipt>" + "x".repeat(1000) + "</receipt>";
    await env.put("psp/outbound/receipt.xml", body);
    const item = { bucket: env.bucket, key: "psp/outbound/receipt.xml" };
    const first = await env.bridge().push([item]);
    expect(first.streams[0]?.moved[0]?.sha256).toBe(sha(body));
    const receipts = await env.bridge().context.receipts.list("psp", { direction: "push", relative: "receipt.xml" });
    expect(receipts).toHaveLength(1);
    expect(receipts[0]).toMatchObject({
      stream: "psp",
      direction: "push",
      sha256: sha(body),
      bytes: body.length,
      destination: { path: "/IN/receipt.xml" },
    });

    const mtime = (await stat(env.local("/IN/receipt.xml"))).mtimeMs;
    const again = await env.bridge().push([item]);
    expect(again.streams[0]?.skipped).toEqual([expect.objectContaining({ reason: "duplicate" })]);
    expect((await stat(env.local("/IN/receipt.xml"))).mtimeMs).toBe(mtime);

    const forced = await env.bridge().push([item], { force: true });
    expect(forced.streams[0]?.files).toBe(1);
    const all = await env.bridge().context.receipts.list("psp", { direction: "push", relative: "receipt.xml" });
    expect(all.map((r) => r.trigger)).toEqual(["event", "force"]);
  });

  it("keeps the first delivery's receipt under a known key, so the duplicate check is one HEAD and no LIST", async () => {
    await env.put("psp/outbound/known/first.xml", "<first/>");
    const item = { bucket: env.bucket, key: "psp/outbound/known/first.xml" };
    expect((await env.bridge().push([item])).streams[0]?.files).toBe(1);
    // A spy that lets every request through to s3rver: which S3 operations a duplicate delivery costs.
    const send = jest.spyOn(env.s3Client, "send");
    try {
      expect((await env.bridge().push([item])).streams[0]?.skipped[0]?.reason).toBe("duplicate");
      expect(send.mock.calls.map(([command]) => command.constructor.name).sort()).toEqual([
        "GetObjectCommand",
        "HeadObjectCommand",
      ]);
    } finally {
      send.mockRestore();
    }
    const forced = await env.bridge().push([item], { force: true });
    expect(forced.streams[0]?.files).toBe(1);
    const listed = await env.s3Client.send(
      new ListObjectsV2Command({ Bucket: env.bucket, Prefix: "_bridge/receipts/psp/push/known/first.xml/" }),
    );
    const names = (listed.Contents ?? []).map((o) => o.Key!.split("/").pop()!);
    expect(names).toHaveLength(2);
    expect(names).toContain("first.json");
    expect(names.find((n) => n !== "first.json")).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}\.json$/);
  });

  it("deletes the S3 object with push.after: delete once the remote copy is verified and its receipt written", async () => {
    const key = "psp/outbound/after-delete/pay.xml";
    await env.put(key, "<pay/>");
    const config = env.config((doc) => {
      doc.streams.psp!.push!.after = "delete";
    });
    const report = await env.bridge(config).push([{ bucket: env.bucket, key }]);
    expect(report.ok).toBe(true);
    expect(report.streams[0]?.moved).toEqual([expect.objectContaining({ destination: "/IN/after-delete/pay.xml" })]);
    expect(await readFile(env.local("/IN/after-delete/pay.xml"), "utf8")).toBe("<pay/>");
    expect(await env.get(key)).toBeUndefined();
    const receipts = await env
      .bridge()
      .context.receipts.list("psp", { direction: "push", relative: "after-delete/pay.xml" });
    expect(receipts).toEqual([expect.objectContaining({ sha256: sha("<pay/>"), bytes: 6 })]);
  });

  describe("size verification before the rename", () => {
    const body = Buffer.alloc(300 * 1024, 7);
    const stored = 100 * 1024;

    /** A push through a server that acknowledges every write but keeps only the first `stored` bytes. */
    async function shortPush(key: string, atomic: boolean): Promise<RunReport> {
      await env.put(key, body);
      const config = env.config((doc) => {
        doc.streams.psp!.push!.atomic = atomic;
        // Delete-after makes "the source is untouched" a real claim: only a verified delivery may remove it.
        doc.streams.psp!.push!.after = "delete";
      });
      env.sftp.faults.discardWritesPastOffset = stored;
      try {
        return await env.bridge(config).push([{ bucket: env.bucket, key }]);
      } finally {
        delete env.sftp.faults.discardWritesPastOffset;
      }
    }

    it.each([
      ["atomic", true],
      ["in place", false],
    ])(
      "%s: a short remote copy fails with VERIFY_FAILED and leaves no file, final or temporary, and S3 untouched",
      async (mode, atomic) => {
        const dir = `verify-${mode.replace(" ", "-")}`;
        const key = `psp/outbound/${dir}/short.bin`;
        const report = await shortPush(key, atomic);
        expect(report.ok).toBe(false);
        const failed = report.streams[0]!.failed;
        expect(failed).toEqual([
          expect.objectContaining({ code: "VERIFY_FAILED", source: `s3://${env.bucket}/${key}` }),
        ]);
        expect(failed[0]?.message).toMatch(
          new RegExp(`^sftp verify /IN/${dir}/.*: remote size ${stored}, wrote ${body.length}`),
        );
        // Neither the final name nor a temporary one: the directory push created is empty.
        expect(await readdir(env.local(`/IN/${dir}`))).toEqual([]);
        expect(sha((await env.get(key))!)).toBe(sha(body));
        const receipts = await env
          .bridge()
          .context.receipts.list("psp", { direction: "push", relative: `${dir}/short.bin` });
        expect(receipts).toEqual([]);

        // Nothing about the failure sticks: with the server healthy again the same object is delivered, then deleted.
        const retry = await env
          .bridge(env.config((doc) => (doc.streams.psp!.push!.after = "delete")))
          .push([{ bucket: env.bucket, key }]);
        expect(retry.ok).toBe(true);
        expect(sha(await readFile(env.local(`/IN/${dir}/short.bin`)))).toBe(sha(body));
        expect(await env.get(key)).toBeUndefined();
      },
    );
  });

  it("uses one SSH session for a batch of many files", async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `psp/outbound/batch/${i}.xml`);
    await Promise.all(keys.map((k, i) => env.put(k, `<n>${i}</n>`)));
    env.sftp.resetStats();
    const report = await env.bridge().push(keys.map((key) => ({ bucket: env.bucket, key })));
    expect(report.streams[0]?.files).toBe(20);
    expect(env.sftp.stats.sessionsOpened).toBe(1);
  });

  it("streams a 200 MiB object through without corruption", async () => {
    const big = Buffer.alloc(200 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    const { Upload } = await import("@aws-sdk/lib-storage");
    await new Upload({
      client: env.s3Client,
      params: { Bucket: env.bucket, Key: "psp/outbound/big.bin", Body: big },
    }).done();
    const started = Date.now();
    const report = await env.bridge().push([{ bucket: env.bucket, key: "psp/outbound/big.bin" }]);
    const seconds = (Date.now() - started) / 1000;
    expect(report.ok).toBe(true);
    const local = await readFile(env.local("/IN/big.bin"));
    expect(local.length).toBe(big.length);
    expect(sha(local)).toBe(sha(big));
    // A figure for the issue note, not an assertion: speed is judged by `npm run bench`.
    console.log(`push 200 MiB: ${(200 / seconds).toFixed(1)} MiB/s`);
  }, 120_000);

  it("a file into an existing folder costs open, write, fstat with close, and rename: no STAT on the way", async () => {
    await env.put("psp/outbound/trips/one.xml", "<one/>");
    await env.bridge().push([{ bucket: env.bucket, key: "psp/outbound/trips/one.xml" }]);
    await env.put("psp/outbound/trips/two.xml", "<two/>");
    env.sftp.resetStats();
    const report = await env.bridge().push([{ bucket: env.bucket, key: "psp/outbound/trips/two.xml" }]);
    expect(report.streams[0]?.files).toBe(1);
    const { OPEN, WRITE, FSTAT, CLOSE, STAT, LSTAT, EXTENDED, MKDIR } = env.sftp.observed.requests;
    // The folder is not looked at before the write (it exists), and the size is asked on the open handle.
    expect({ STAT, LSTAT, MKDIR }).toEqual({ STAT: undefined, LSTAT: undefined, MKDIR: undefined });
    // EXTENDED: limits@openssh.com when the session starts, then posix-rename@openssh.com.
    expect({ WRITE, FSTAT, EXTENDED }).toEqual({ WRITE: 1, FSTAT: 1, EXTENDED: 2 });
    // One file handle, plus the folder listing of the stale-temp sweep.
    expect(OPEN).toBe(1);
    expect(CLOSE).toBe(2);
    // A new folder is made when the server says it is missing.
    await env.put("psp/outbound/trips/new/deeper/three.xml", "<three/>");
    const made = await env.bridge().push([{ bucket: env.bucket, key: "psp/outbound/trips/new/deeper/three.xml" }]);
    expect(made.ok).toBe(true);
    expect(await readFile(env.local("/IN/trips/new/deeper/three.xml"), "utf8")).toBe("<three/>");
  });
});
