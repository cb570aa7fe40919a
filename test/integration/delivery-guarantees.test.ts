import { randomBytes } from "node:crypto";
import { mkdir, readFile, readdir, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import type { S3EventRecord, SQSBatchResponse, SQSEvent } from "aws-lambda";
import type { Receipt } from "../../lambda/bridge";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";
import { handlerEnvironment, lambdaContext, loadHandler } from "../support/handler-env";

/**
 * Exactly one delivery per object version when events are duplicated, as S3 and SQS do: the same notification handed
 * to several invocations at once, or several times in one batch. Runs the Lambda handler in process against s3rver
 * (which honours conditional writes, as S3 does) and the embedded SFTP server, which counts every file put into place.
 */
describe("exactly one delivery per object version", () => {
  let env: BridgeEnv;
  let handler: typeof import("../../lambda/handler").handler;
  const records: S3EventRecord[] = [];
  let restoreEnv: (() => void) | undefined;

  const context = () => lambdaContext(`req-${randomBytes(4).toString("hex")}`, 60_000);

  const sqs = (messages: { id: string; record: S3EventRecord }[]): SQSEvent =>
    ({
      Records: messages.map(({ id, record }) => ({
        messageId: id,
        eventSource: "aws:sqs",
        body: JSON.stringify({ Records: [record] }),
        attributes: { ApproximateReceiveCount: "1" },
      })),
    }) as unknown as SQSEvent;

  async function putAndEvent(key: string, body: string): Promise<S3EventRecord> {
    await env.put(key, body);
    for (let i = 0; i < 200; i++) {
      const found = records.find((r) => decodeURIComponent(r.s3.object.key) === key);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no S3 event for ${key}`);
  }

  /** The handler's report is logged; the test reads the gilt line counts from the structured output instead. */
  const output: string[] = [];

  beforeAll(async () => {
    env = await startBridgeEnv();
    env.s3.onEvent((r) => records.push(r));
    // A slow partner: each SFTP request waits, so concurrent invocations really overlap on one file.
    env.sftp.faults.delayMs = 20;
    ({ handler, restore: restoreEnv } = loadHandler(
      await handlerEnvironment(env, { deadlineMarginMs: 5000, service: "bridge-test" }),
    ));
  });
  beforeEach(() => {
    output.length = 0;
    for (const stream of [process.stdout, process.stderr]) {
      jest.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
        output.push(chunk.toString());
        return true;
      });
    }
  });
  afterEach(() => jest.restoreAllMocks());
  afterAll(async () => {
    restoreEnv?.();
    await env?.close();
  });

  const receiptFor = (name: string) =>
    ({
      stream: "psp",
      direction: "push",
      source: { bucket: env.bucket, key: `psp/outbound/claims/${name}.xml`, size: 1 },
      finishedAt: new Date().toISOString(),
    }) as Receipt;
  const deliveriesOf = (remote: string) => env.sftp.observed.renamedTo.filter((p) => p === remote).length;
  const receiptsOf = (relative: string): Promise<Receipt[]> =>
    env.bridge().context.receipts.list("psp", { direction: "push", relative });
  /** Skips and moves by reason, from the structured log lines the handler writes. */
  const logged = (message: string) =>
    output
      .flatMap((chunk) => chunk.split("\n"))
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { message?: string; source?: string })
      .filter((entry) => entry.message === message);

  it("three invocations with the same SQS-wrapped event at the same moment: one delivery, one receipt", async () => {
    const record = await putAndEvent("psp/outbound/claims/same-moment.xml", "<pay amount='100'/>");
    const results = (await Promise.all(
      ["m1", "m2", "m3"].map((id) => handler(sqs([{ id, record }]), context())),
    )) as SQSBatchResponse[];

    expect(results.map((r) => r.batchItemFailures)).toEqual([[], [], []]);
    expect(deliveriesOf("/IN/claims/same-moment.xml")).toBe(1);
    expect(await readFile(env.local("/IN/claims/same-moment.xml"), "utf8")).toBe("<pay amount='100'/>");
    expect(await receiptsOf("claims/same-moment.xml")).toHaveLength(1);
    expect(logged("pushed")).toHaveLength(1);
    expect(output.join("").match(/Moved 1 files from S3 to SFTP/g)).toHaveLength(1);
    expect(output.join("").match(/Moved 0 files from S3 to SFTP/g)).toHaveLength(2);
  });

  it("the same event three times in one batch: one delivery, the copies reported as duplicates, none retried", async () => {
    const record = await putAndEvent("psp/outbound/claims/one-batch.xml", "<pay amount='200'/>");
    for (const concurrency of [4, 1]) {
      env.sftp.resetStats();
      const key = `psp/outbound/claims/one-batch-${concurrency}.xml`;
      const own = await putAndEvent(key, `<pay c='${concurrency}'/>`);
      const result = (await handler(
        sqs([
          { id: "a", record: own },
          { id: "b", record: own },
          { id: "c", record: own },
        ]),
        context(),
      )) as SQSBatchResponse;
      expect(result.batchItemFailures).toEqual([]);
      expect(deliveriesOf(`/IN/claims/one-batch-${concurrency}.xml`)).toBe(1);
      expect(await receiptsOf(`claims/one-batch-${concurrency}.xml`)).toHaveLength(1);
    }
    // And a later redelivery of an already delivered event is a duplicate too.
    await handler(sqs([{ id: "x", record }]), context());
    await handler(sqs([{ id: "y", record }]), context());
    expect(deliveriesOf("/IN/claims/one-batch.xml")).toBe(1);
  });

  it("of ten runs racing for the claim of one version, exactly one gets it; the rest wait and see it delivered", async () => {
    const key = "psp/outbound/claims/race.xml";
    await env.put(key, "<race/>");
    const head = await env.bridge().context.s3.head(env.bucket, key);
    const target = { stream: "psp", relative: "claims/race.xml", bucket: env.bucket, key, eTag: head!.eTag! };
    const runs = Array.from({ length: 10 }, (_, i) => env.bridge(undefined, { requestId: `racer-${i}` }));
    const timing = { expiresAt: Date.now() + 60_000, waitUntil: Date.now() + 10_000 };
    const attempts = runs.map(async (run) => {
      const got = await run.context.claims.acquire(target, timing);
      if (got.kind === "claimed") {
        // The winner delivers a little later; the others must be waiting for it meanwhile, not delivering.
        await new Promise((r) => setTimeout(r, 300));
        await got.claim.complete(receiptFor("race"));
      }
      return got.kind;
    });
    const kinds = await Promise.all(attempts);
    expect(kinds.filter((k) => k === "claimed")).toHaveLength(1);
    expect(kinds.filter((k) => k === "delivered")).toHaveLength(9);
  });

  it("a claim held by a run that died blocks the version only until its lease ends, then the next attempt delivers", async () => {
    const key = "psp/outbound/claims/orphaned.xml";
    await env.put(key, "<orphan/>");
    const config = env.config((doc) => {
      doc.receipts = { claimLeaseSeconds: 2, claimWaitSeconds: 10 };
    });
    // A run that took the claim and was killed before it could deliver or release it.
    const dead = env.bridge(config, { requestId: "dead-run" });
    const object = await dead.context.s3.head(env.bucket, key);
    const taken = await dead.context.claims.acquire(
      {
        stream: "psp",
        relative: "claims/orphaned.xml",
        bucket: env.bucket,
        key,
        eTag: object!.eTag!.replace(/"/g, ""),
      },
      { expiresAt: Date.now() + 2_000, waitUntil: Date.now() },
    );
    expect(taken.kind).toBe("claimed");

    // Meanwhile a second run may not deliver: with no time to wait it fails, retryably, naming the holder.
    const impatient = env.config((doc) => {
      doc.receipts = { claimLeaseSeconds: 2, claimWaitSeconds: 0 };
    });
    const blocked = await env.bridge(impatient).push([{ bucket: env.bucket, key, eTag: object!.eTag }]);
    expect(blocked.streams[0]?.failed[0]).toMatchObject({ code: "CLAIM_HELD" });
    expect(blocked.streams[0]?.failed[0]?.message).toContain("dead-run");
    expect(deliveriesOf("/IN/claims/orphaned.xml")).toBe(0);

    // A patient one waits for the lease to lapse, takes the claim over and delivers.
    const started = Date.now();
    const report = await env.bridge(config).push([{ bucket: env.bucket, key, eTag: object!.eTag }]);
    expect(report.streams[0]?.files).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(deliveriesOf("/IN/claims/orphaned.xml")).toBe(1);
    expect(await receiptsOf("claims/orphaned.xml")).toHaveLength(1);
  });

  it("a run whose lease lapsed cannot release or complete the claim another run took over", async () => {
    const key = "psp/outbound/claims/lapsed.xml";
    await env.put(key, "<lapsed/>");
    const head = await env.bridge().context.s3.head(env.bucket, key);
    const target = { stream: "psp", relative: "claims/lapsed.xml", bucket: env.bucket, key, eTag: head!.eTag! };
    const slow = env.bridge(undefined, { requestId: "slow-run" }).context.claims;
    const next = env.bridge(undefined, { requestId: "next-run" }).context.claims;
    const first = await slow.acquire(target, { expiresAt: Date.now() + 300, waitUntil: Date.now() });
    await new Promise((r) => setTimeout(r, 400));
    const second = await next.acquire(target, { expiresAt: Date.now() + 60_000, waitUntil: Date.now() });
    expect(second).toMatchObject({ kind: "claimed", tookOver: "slow-run" });
    if (first.kind !== "claimed" || second.kind !== "claimed") throw new Error("both should have claimed");

    await first.claim.release();
    expect(await next.state(target)).toMatchObject({ kind: "claimed", owner: "next-run" });
    const late = await first.claim.complete(receiptFor("lapsed"));
    expect(late.lost).toBe(true);
    expect(await next.state(target)).toMatchObject({ kind: "claimed", owner: "next-run" });
    expect((await second.claim.complete(receiptFor("lapsed"))).lost).toBe(false);
    expect(await next.state(target)).toEqual({ kind: "delivered" });
  });

  it("a failed transfer releases its claim at once, so the retry delivers without waiting for the lease", async () => {
    const key = "psp/outbound/claims/retry.xml";
    await env.put(key, "<retry/>");
    const config = env.config((doc) => {
      doc.receipts = { claimLeaseSeconds: 600, claimWaitSeconds: 0 };
    });
    env.sftp.faults.refusePosixRename = true;
    env.sftp.faults.refuseRename = true;
    try {
      const failed = await env.bridge(config).push([{ bucket: env.bucket, key }]);
      expect(failed.streams[0]?.failed[0]?.code).toBe("SFTP_RENAME_FAILED");
    } finally {
      env.sftp.faults.refusePosixRename = false;
      env.sftp.faults.refuseRename = false;
    }
    const retried = await env.bridge(config).push([{ bucket: env.bucket, key }]);
    expect(retried.streams[0]?.files).toBe(1);
    expect(deliveriesOf("/IN/claims/retry.xml")).toBe(1);
  });

  it("removes the bridge's own stale temporary files from a destination folder, and reports each", async () => {
    const dir = env.local("/IN/sweep");
    await mkdir(dir, { recursive: true });
    const old = new Date(Date.now() - 2 * 3600_000);
    const stale = ".payroll.xml.deadbeef.part";
    // A push under way in another run (fresh), and a partner's own hidden file that happens to end in .part.
    const live = ".other.xml.cafe0123.part";
    const partners = ".upload.part";
    for (const name of [stale, live, partners]) await writeFile(path.join(dir, name), "x".repeat(10));
    await utimes(path.join(dir, stale), old, old);
    await utimes(path.join(dir, partners), old, old);

    await env.put("psp/outbound/sweep/new.xml", "<new/>");
    const report = await env.bridge().push([{ bucket: env.bucket, key: "psp/outbound/sweep/new.xml" }]);
    expect(report.ok).toBe(true);
    expect(report.streams[0]?.cleaned).toEqual([
      { path: "/IN/sweep/" + stale, bytes: 10, ageSeconds: expect.any(Number) as number, reason: "stale-temp" },
    ]);
    expect(report.streams[0]!.cleaned![0]!.ageSeconds).toBeGreaterThanOrEqual(7000);
    expect((await readdir(dir)).sort()).toEqual([live, partners, "new.xml"].sort());
    expect(env.logs.some((l) => l.message === "removed a stale temporary file of an interrupted push")).toBe(true);

    // Turned off: nothing is removed.
    await utimes(path.join(dir, live), old, old);
    await env.put("psp/outbound/sweep/next.xml", "<next/>");
    const off = env.config((doc) => {
      doc.streams.psp!.push!.staleTempSeconds = 0;
    });
    const kept = await env.bridge(off).push([{ bucket: env.bucket, key: "psp/outbound/sweep/next.xml" }]);
    expect(kept.streams[0]?.cleaned).toBeUndefined();
    expect(await readdir(dir)).toContain(live);
  });
});
