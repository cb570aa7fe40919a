// The local S3 (s3rver in a child process) must behave like S3 where the bridge depends on it: byte-exact bodies,
// multipart uploads, paged listings, and notification records shaped and encoded as AWS sends them.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import {
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  S3ServiceException,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { S3EventRecord } from "aws-lambda";
import { type LocalS3, startLocalS3 } from "../../scripts/local/s3-server";

jest.setTimeout(60_000);

const BUCKET = "bridge-local";
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
const md5 = (data: Buffer) => createHash("md5").update(data).digest("hex");
/** How a consumer of a real S3 notification recovers the key. */
const decodeEventKey = (key: string) => decodeURIComponent(key.replace(/\+/g, " "));

/** A body the SDK cannot buffer or inspect up front: a stream in uneven chunks. */
function streamOf(data: Buffer, chunk = 64 * 1024 + 7): Readable {
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < data.length; offset += chunk) yield data.subarray(offset, offset + chunk);
    })(),
  );
}

async function getBytes(s3: S3Client, key: string): Promise<Buffer> {
  const response = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The error of a request that must be refused; a request that succeeds fails the test. */
async function refusal(request: Promise<unknown>): Promise<S3ServiceException> {
  try {
    await request;
  } catch (error) {
    if (error instanceof S3ServiceException) return error;
    throw error;
  }
  throw new Error("the request succeeded; it should have been refused");
}

/** Rejections that are not S3's answer (a socket error, say) must not pass as refusals. */
function s3Error(reason: unknown): S3ServiceException {
  if (reason instanceof S3ServiceException) return reason;
  throw reason;
}

/** Running, not merely a zombie waiting for whichever process adopted it to reap it. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("local S3 (s3rver child process)", () => {
  let directory: string;
  let local: LocalS3;
  let s3: S3Client;
  const records: S3EventRecord[] = [];

  beforeAll(async () => {
    directory = await mkdtemp(path.join(os.tmpdir(), "local-s3-"));
    local = await startLocalS3({ directory, buckets: [BUCKET] });
    local.onEvent((record) => records.push(record));
    s3 = local.client();
  });

  afterAll(async () => {
    s3?.destroy();
    await local?.close();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it("listens on loopback at the port it reports", () => {
    expect(local.endpoint).toBe(`http://127.0.0.1:${local.port}`);
    expect(local.port).toBeGreaterThan(0);
    expect(local.region).toBe("us-east-1");
  });

  it("stores a streamed PutObject body byte for byte", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 123);
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: "streamed/body.bin",
        Body: streamOf(data),
        ContentLength: data.length,
      }),
    );
    const back = await getBytes(s3, "streamed/body.bin");
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));
  });

  it("completes a ~12 MiB lib-storage multipart Upload and reports it as CompleteMultipartUpload", async () => {
    const data = randomBytes(12 * 1024 * 1024 + 4321);
    const key = "multipart/large.bin";
    const upload = new Upload({
      client: s3,
      params: { Bucket: BUCKET, Key: key, Body: streamOf(data) },
      partSize: 5 * 1024 * 1024,
      queueSize: 2,
    });
    const parts: number[] = [];
    upload.on("httpUploadProgress", (progress) => progress.part !== undefined && parts.push(progress.part));
    await upload.done();
    // Three parts prove the multipart path ran, not a single PutObject.
    expect(new Set(parts).size).toBe(3);

    const back = await getBytes(s3, key);
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));

    const record = await waitFor("the multipart record", () => records.find((r) => r.s3.object.key === key));
    expect(record.eventName).toBe("ObjectCreated:CompleteMultipartUpload");
    expect(record.s3.object.size).toBe(data.length);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(record.s3.object.eTag).toBe(head.ETag!.replace(/"/g, ""));
  });

  it("pages ListObjectsV2 with continuation tokens", async () => {
    const keys = Array.from({ length: 7 }, (_, i) => `paged/item-${i}.txt`);
    for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));

    const seen: string[] = [];
    let pages = 0;
    let token: string | undefined;
    do {
      // Pages after the first need --openssl-legacy-provider in s3rver's process (DES tokens): HTTP 500 without it.
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: BUCKET, Prefix: "paged/", MaxKeys: 3, ContinuationToken: token }),
      );
      pages += 1;
      seen.push(...(page.Contents ?? []).map((object) => object.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && pages < 10);

    expect(pages).toBe(3);
    expect(seen).toEqual([...keys].sort());
  });

  it("sends AWS-shaped records with keys encoded as AWS does", async () => {
    const key = "in box/a b+c&d ü €(1).xml";
    const body = Buffer.from("<x/>");
    const before = records.length;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));

    const record = await waitFor("the put record", () =>
      records.slice(before).find((r) => r.eventName === "ObjectCreated:Put"),
    );
    // Form encoding per UTF-8 byte, space as "+", "/" literal, as in real S3 notifications.
    expect(record.s3.object.key).toBe("in+box/a+b%2Bc%26d+%C3%BC+%E2%82%AC%281%29.xml");
    expect(decodeEventKey(record.s3.object.key)).toBe(key);
    expect(record).toMatchObject({
      eventVersion: "2.1",
      eventSource: "aws:s3",
      awsRegion: "us-east-1",
      eventName: "ObjectCreated:Put",
      s3: {
        s3SchemaVersion: "1.0",
        bucket: { name: BUCKET, arn: `arn:aws:s3:::${BUCKET}` },
        object: { size: body.length, eTag: md5(body) },
      },
    });
    expect(new Date(record.eventTime).toISOString()).toBe(record.eventTime);
    expect(record.s3.object.sequencer).toMatch(/^[0-9A-F]{18}$/);
    expect(record.requestParameters.sourceIPAddress).toBe("127.0.0.1");
  });

  it("sends ObjectRemoved:Delete for DeleteObject and for each key of DeleteObjects", async () => {
    const keys = ["gone/one & only.txt", "gone/two+two.txt", "gone/three.txt"];
    for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "x" }));
    const before = records.length;

    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: keys[0] }));
    await s3.send(
      new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys.slice(1).map((Key) => ({ Key })) } }),
    );

    const removed = await waitFor("three removal records", () => {
      const found = records.slice(before).filter((r) => r.eventName === "ObjectRemoved:Delete");
      return found.length >= 3 ? found : undefined;
    });
    expect(removed.map((r) => decodeEventKey(r.s3.object.key)).sort()).toEqual([...keys].sort());
    expect(removed[0]!.s3.object.key).toBe("gone/one+%26+only.txt");
    for (const r of removed) {
      expect(r.s3.bucket.arn).toBe(`arn:aws:s3:::${BUCKET}`);
      // AWS removal records carry no size or eTag.
      expect(r.s3.object).not.toHaveProperty("size");
      expect(r.s3.object).not.toHaveProperty("eTag");
    }
  });

  it("gives records strictly increasing sequencers", async () => {
    const before = records.length;
    await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `burst/${i}`, Body: "b" })),
      ),
    );
    const burst = await waitFor("five burst records", () => {
      const found = records.slice(before).filter((r) => r.s3.object.key.startsWith("burst/"));
      return found.length >= 5 ? found : undefined;
    });
    const sequencers = burst.map((r) => r.s3.object.sequencer);
    expect(new Set(sequencers).size).toBe(5);
    expect([...sequencers].sort()).toEqual(sequencers);
  });

  it("stops delivering to a listener once it is removed", async () => {
    const mine: S3EventRecord[] = [];
    const off = local.onEvent((record) => mine.push(record));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "listener/first", Body: "1" }));
    await waitFor("the first record", () => mine.find((r) => r.s3.object.key === "listener/first"));
    off();
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "listener/second", Body: "2" }));
    await waitFor("the shared listener's record", () => records.find((r) => r.s3.object.key === "listener/second"));
    expect(mine.map((r) => r.s3.object.key)).toEqual(["listener/first"]);
  });

  describe("conditional writes", () => {
    const MIB = 1024 * 1024;
    const etagOf = async (key: string) => (await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).ETag!;
    const put = (key: string, body: string | Buffer, conditions: { IfNoneMatch?: string; IfMatch?: string } = {}) =>
      s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from(body), ...conditions }));
    const text = async (key: string) => (await getBytes(s3, key)).toString("utf8");

    /**
     * Every record for `key` so far. A later write's record is awaited first: records leave in request order, so one
     * that a refused write had emitted would be in by then.
     */
    async function recordsFor(key: string): Promise<S3EventRecord[]> {
      const sentinel = `conditional/sentinel-${randomBytes(4).toString("hex")}`;
      await put(sentinel, "s");
      await waitFor("the sentinel's record", () => records.find((r) => decodeEventKey(r.s3.object.key) === sentinel));
      return records.filter((r) => decodeEventKey(r.s3.object.key) === key);
    }

    it("DeleteObject with If-Match deletes only the object at that ETag", async () => {
      const key = "conditional/delete me.lock";
      await put(key, "mine");
      const mine = await etagOf(key);
      await put(key, "theirs");
      await expect(s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key, IfMatch: mine }))).rejects.toMatchObject(
        { name: "PreconditionFailed", $metadata: { httpStatusCode: 412 } },
      );
      expect(await text(key)).toBe("theirs");
      await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key, IfMatch: await etagOf(key) }));
      await expect(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).rejects.toMatchObject({
        $metadata: { httpStatusCode: 404 },
      });
    });

    /** A body whose first KiB goes out at once and the rest on release(): its request stays in flight until then. */
    function heldBody(data: Buffer): { body: Readable; release: () => void } {
      const body = new Readable({ read() {} });
      body.push(data.subarray(0, 1024));
      return {
        body,
        release: () => {
          body.push(data.subarray(1024));
          body.push(null);
        },
      };
    }

    /** A multipart upload of two parts (5 MiB and a short tail), left for the test to complete. */
    async function uploadParts(key: string, data: Buffer): Promise<{ uploadId: string; parts: CompletedPart[] }> {
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
      const chunks = [data.subarray(0, 5 * MIB), data.subarray(5 * MIB)];
      const parts: CompletedPart[] = [];
      for (const [index, chunk] of chunks.entries()) {
        const PartNumber = index + 1;
        const { ETag } = await s3.send(
          new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber, Body: chunk }),
        );
        parts.push({ PartNumber, ETag });
      }
      return { uploadId: UploadId!, parts };
    }

    const complete = (
      key: string,
      upload: { uploadId: string; parts: CompletedPart[] },
      conditions: { IfNoneMatch?: string; IfMatch?: string },
    ) =>
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: key,
          UploadId: upload.uploadId,
          MultipartUpload: { Parts: upload.parts },
          ...conditions,
        }),
      );

    it("If-None-Match: * creates a new key and refuses an existing one with 412 PreconditionFailed", async () => {
      // Spaces and "+" prove the condition looks at the key s3rver decodes from the path, not the encoded text.
      const key = "conditional/claim a+b.lock";
      await put(key, "first", { IfNoneMatch: "*" });
      expect(await text(key)).toBe("first");
      const before = await etagOf(key);

      const error = await refusal(put(key, "second", { IfNoneMatch: "*" }));
      expect(error.name).toBe("PreconditionFailed");
      expect(error.$metadata.httpStatusCode).toBe(412);
      expect((error as S3ServiceException & { Condition?: string }).Condition).toBe("If-None-Match");
      expect(await text(key)).toBe("first");
      expect(await etagOf(key)).toBe(before);
      // Only the successful write is notified.
      expect((await recordsFor(key)).map((r) => r.s3.object.eTag)).toEqual([before.replace(/"/g, "")]);
    });

    it("answers a refused write with S3's XML error body", async () => {
      const key = "conditional/raw body+xml.txt";
      await put(key, "there");
      const url = `${local.endpoint}/${BUCKET}/${key.split("/").map(encodeURIComponent).join("/")}`;
      const response = await fetch(url, { method: "PUT", headers: { "If-None-Match": "*" }, body: "again" });
      expect(response.status).toBe(412);
      expect(response.headers.get("content-type")).toMatch(/^application\/xml/);
      const xml = await response.text();
      expect(xml).toContain("<Error><Code>PreconditionFailed</Code>");
      expect(xml).toContain("<Message>At least one of the pre-conditions you specified did not hold</Message>");
      expect(xml).toContain("<Condition>If-None-Match</Condition>");
      expect(await text(key)).toBe("there");
    });

    it("If-Match overwrites at the current ETag, quoted or not, and refuses a stale one with 412", async () => {
      const key = "conditional/lease a+b.json";
      await put(key, "v1");
      const v1 = await etagOf(key);
      expect(v1).toMatch(/^"[0-9a-f]{32}"$/);

      const written = await put(key, "v2", { IfMatch: v1 });
      expect(await text(key)).toBe("v2");
      const v2 = await etagOf(key);
      expect(written.ETag).toBe(v2);

      await put(key, "v3", { IfMatch: v2.replace(/"/g, "") });
      expect(await text(key)).toBe("v3");

      const stale = await refusal(put(key, "v4", { IfMatch: v1 }));
      expect(stale.name).toBe("PreconditionFailed");
      expect(stale.$metadata.httpStatusCode).toBe(412);
      expect((stale as S3ServiceException & { Condition?: string }).Condition).toBe("If-Match");
      expect(await text(key)).toBe("v3");
    });

    it("If-Match on a missing key answers 404 NoSuchKey and creates nothing", async () => {
      const key = "conditional/never written.txt";
      const error = await refusal(put(key, "x", { IfMatch: `"${md5(Buffer.from("x"))}"` }));
      expect(error.name).toBe("NoSuchKey");
      expect(error.$metadata.httpStatusCode).toBe(404);
      const head = await refusal(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })));
      expect(head.$metadata.httpStatusCode).toBe(404);
    });

    it("refuses If-None-Match with an ETag on a write, as S3 takes only *", async () => {
      const key = "conditional/none match etag.txt";
      await put(key, "kept");
      const error = await refusal(put(key, "other", { IfNoneMatch: `"${md5(Buffer.from("nothing"))}"` }));
      expect(error.name).toBe("NotImplemented");
      expect(error.$metadata.httpStatusCode).toBe(501);
      expect(await text(key)).toBe("kept");
    });

    it("lets exactly one of 10 concurrent If-None-Match writes of a key win", async () => {
      const key = "conditional/race one+only.lock";
      const bodies = Array.from({ length: 10 }, (_, i) => `writer ${i}`);
      const outcomes = await Promise.allSettled(bodies.map((body) => put(key, body, { IfNoneMatch: "*" })));

      const winners = outcomes.flatMap((outcome, i) => (outcome.status === "fulfilled" ? [i] : []));
      expect(winners).toHaveLength(1);
      const losers = outcomes.flatMap((outcome) => (outcome.status === "rejected" ? [s3Error(outcome.reason)] : []));
      expect(losers.map((error) => [error.name, error.$metadata.httpStatusCode])).toEqual(
        Array.from({ length: 9 }, () => ["PreconditionFailed", 412]),
      );
      const winner = winners[0]!;
      expect(await text(key)).toBe(bodies[winner]);
      expect(await etagOf(key)).toBe((outcomes[winner] as PromiseFulfilledResult<{ ETag?: string }>).value.ETag);
      expect(await recordsFor(key)).toHaveLength(1);
    });

    it("lets exactly one of 5 concurrent If-Match writes at the same ETag win", async () => {
      const key = "conditional/race cas.json";
      await put(key, "base");
      const base = await etagOf(key);
      const bodies = Array.from({ length: 5 }, () => randomBytes(256 * 1024));
      const held = bodies.map(heldBody);
      // The SDK warns on the console whenever a request with a stream body fails; here four failures are expected.
      const quiet = local.client();
      quiet.config.logger = { debug() {}, info() {}, warn() {}, error() {} };
      const requests = Promise.allSettled(
        bodies.map((data, i) =>
          quiet.send(
            new PutObjectCommand({
              Bucket: BUCKET,
              Key: key,
              Body: held[i]!.body,
              ContentLength: data.length,
              IfMatch: base,
            }),
          ),
        ),
      );
      // All five are in before any can finish: unless the first holds the key, every check sees the base ETag.
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (const { release } of held) release();
      const outcomes = await requests;
      quiet.destroy();

      const winners = outcomes.flatMap((outcome, i) => (outcome.status === "fulfilled" ? [i] : []));
      expect(winners).toHaveLength(1);
      const losers = outcomes.flatMap((outcome) => (outcome.status === "rejected" ? [s3Error(outcome.reason)] : []));
      expect(losers.map((error) => error.$metadata.httpStatusCode)).toEqual([412, 412, 412, 412]);
      expect(sha256(await getBytes(s3, key))).toBe(sha256(bodies[winners[0]!]!));
    });

    it("judges CompleteMultipartUpload's If-None-Match and If-Match at completion", async () => {
      const key = "conditional/multi part+claim.bin";
      const first = randomBytes(5 * MIB + 1000);
      const created = await complete(key, await uploadParts(key, first), { IfNoneMatch: "*" });
      expect(sha256(await getBytes(s3, key))).toBe(sha256(first));
      expect(await etagOf(key)).toBe(created.ETag);

      // The upload starts while the key exists; what counts is the object when it completes.
      const second = randomBytes(5 * MIB + 2000);
      const late = await uploadParts(key, second);
      const refused = await refusal(complete(key, late, { IfNoneMatch: "*" }));
      expect(refused.name).toBe("PreconditionFailed");
      expect(refused.$metadata.httpStatusCode).toBe(412);
      expect(sha256(await getBytes(s3, key))).toBe(sha256(first));

      const stale = await refusal(complete(key, late, { IfMatch: `"${md5(second)}"` }));
      expect(stale.$metadata.httpStatusCode).toBe(412);
      expect(sha256(await getBytes(s3, key))).toBe(sha256(first));

      // The refusals left the upload intact: completing at the current ETag replaces the object.
      await complete(key, late, { IfMatch: created.ETag! });
      expect(sha256(await getBytes(s3, key))).toBe(sha256(second));
      const completions = (await recordsFor(key)).filter(
        (r) => r.eventName === "ObjectCreated:CompleteMultipartUpload",
      );
      expect(completions.map((r) => r.s3.object.size)).toEqual([first.length, second.length]);
    });

    it("refuses CompleteMultipartUpload with If-None-Match when another writer created the key meanwhile", async () => {
      const key = "conditional/multi part lost.bin";
      const upload = await uploadParts(key, randomBytes(5 * MIB + 10));
      await put(key, "someone else");
      const error = await refusal(complete(key, upload, { IfNoneMatch: "*" }));
      expect(error.name).toBe("PreconditionFailed");
      expect(error.$metadata.httpStatusCode).toBe(412);
      expect(await text(key)).toBe("someone else");
    });

    it("still overwrites without conditions", async () => {
      const key = "conditional/plain overwrite.txt";
      await put(key, "one", { IfNoneMatch: "*" });
      await put(key, "two");
      expect(await text(key)).toBe("two");
      const outcomes = await Promise.allSettled(["a", "b", "c"].map((body) => put(key, body)));
      expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "fulfilled", "fulfilled"]);
      expect(["a", "b", "c"]).toContain(await text(key));
    });

    it("serialises writes of one key while other keys go ahead", async () => {
      const key = "conditional/slow writer.bin";
      const data = randomBytes(256 * 1024);
      const { body, release } = heldBody(data);
      const slow = s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentLength: data.length }));
      let slowDone = false;
      void slow.then(() => (slowDone = true));
      await new Promise((resolve) => setTimeout(resolve, 200));

      // Another key is not held up by the write in flight.
      await put("conditional/unrelated.txt", "free");
      expect(await text("conditional/unrelated.txt")).toBe("free");

      // A second write of the same key waits for the first to finish, so it lands last.
      let secondDone = false;
      const second = put(key, "second").then(() => (secondDone = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(secondDone).toBe(false);
      expect(slowDone).toBe(false);

      release();
      await Promise.all([slow, second]);
      expect(await text(key)).toBe("second");
    });
  });

  it("creates buckets through the API", async () => {
    await local.createBucket("made-later");
    await s3.send(new PutObjectCommand({ Bucket: "made-later", Key: "k", Body: "v" }));
    const response = await s3.send(new GetObjectCommand({ Bucket: "made-later", Key: "k" }));
    expect(await response.Body!.transformToString()).toBe("v");
  });
});

describe("local S3 lifecycle", () => {
  let directory: string;

  beforeAll(async () => {
    directory = await mkdtemp(path.join(os.tmpdir(), "local-s3-life-"));
  });
  afterAll(async () => {
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it("close() ends the child process and frees the port", async () => {
    const local = await startLocalS3({ directory });
    expect(isAlive(local.pid)).toBe(true);
    expect(await canConnect(local.port)).toBe(true);
    await local.close();
    expect(isAlive(local.pid)).toBe(false);
    expect(await canConnect(local.port)).toBe(false);
    // A second close is harmless.
    await local.close();
  });

  it("the child exits when its parent dies without closing it", async () => {
    // A throwaway parent starts the child over IPC, reports the child's pid, and is then killed with SIGKILL,
    // so nothing on the parent side gets to clean up.
    const childScript = path.resolve(__dirname, "../../scripts/local/s3rver-child.js");
    const parentSource = `
      const { spawn } = require("node:child_process");
      const child = spawn(process.execPath, ["--openssl-legacy-provider", ${JSON.stringify(childScript)},
        JSON.stringify({ directory: ${JSON.stringify(directory)} })], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
      child.on("message", (m) => { if (m.type === "ready") console.log(child.pid); });
    `;
    const parent = spawn(process.execPath, ["-e", parentSource], { stdio: ["ignore", "pipe", "inherit"] });
    const childPid = await new Promise<number>((resolve, reject) => {
      parent.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
      parent.once("exit", (code) => reject(new Error(`throwaway parent exited early (${code})`)));
    });
    expect(isAlive(childPid)).toBe(true);
    parent.kill("SIGKILL");
    await waitFor("the orphaned child to exit", () => (isAlive(childPid) ? undefined : true), 10_000);
  });
});
