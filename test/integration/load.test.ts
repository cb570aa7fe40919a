import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { S3EventRecord, SQSEvent, SQSBatchResponse } from "aws-lambda";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";
import { handlerEnvironment, lambdaContext, loadHandler } from "../support/handler-env";

/**
 * Load: 200 objects land in S3, and their 200 notifications reach the Lambda handler the way an SQS event source
 * delivers them, as 20 batches of 10 with two invocations running at once. Every file must arrive intact, and the
 * partner's server must see one SSH session per batch and never more than two at once. No timing assertions: this
 * proves behaviour under concurrency, the speed is measured by `npm run bench`.
 */
const OBJECTS = 200;
const BATCH = 10;
const AT_ONCE = 2;

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("load: 200 S3 notifications as 20 SQS batches, two at a time", () => {
  let env: BridgeEnv;
  let handler: typeof import("../../lambda/handler").handler;
  const records: S3EventRecord[] = [];
  let restoreEnv: (() => void) | undefined;

  const context = (n: number) => lambdaContext(`load-${n}`, 120_000);

  beforeAll(async () => {
    env = await startBridgeEnv("bridge-load");
    env.s3.onEvent((r) => records.push(r));
    ({ handler, restore: restoreEnv } = loadHandler(
      await handlerEnvironment(env, { deadlineMarginMs: 5000, service: "bridge-load-test" }),
    ));
  }, 30_000);

  afterAll(async () => {
    restoreEnv?.();
    await env?.close();
  });

  it("delivers every file, with one SFTP session per batch and at most two at once", async () => {
    // 200 objects with distinct bodies, some in sub-folders, as a partner's daily drop might look.
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < OBJECTS; i++) {
      const key = `psp/outbound/${i % 4 === 0 ? `batch-${i % 3}/` : ""}load-${String(i).padStart(3, "0")}.xml`;
      const body = Buffer.concat([
        Buffer.from(`<load n="${i}">`),
        randomBytes(512 + (i % 7) * 100),
        Buffer.from("</load>"),
      ]);
      bodies.set(key, body);
      await env.put(key, body);
    }
    // s3rver's notifications arrive just after each PUT answers; wait until all 200 are in.
    for (let i = 0; i < 500 && records.filter((r) => r.eventName.startsWith("ObjectCreated")).length < OBJECTS; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const created = records.filter((r) => r.eventName.startsWith("ObjectCreated"));
    expect(created).toHaveLength(OBJECTS);

    // One message per notification, ten messages per SQS event, as the event source mapping would batch them.
    const batches: SQSEvent[] = [];
    for (let b = 0; b < OBJECTS / BATCH; b++) {
      batches.push({
        Records: created.slice(b * BATCH, (b + 1) * BATCH).map((record, i) => ({
          messageId: `m-${b}-${i}`,
          eventSource: "aws:sqs",
          body: JSON.stringify({ Records: [record] }),
          attributes: { ApproximateReceiveCount: "1" },
        })),
      } as unknown as SQSEvent);
    }
    expect(batches).toHaveLength(20);

    // Powertools logs every run as JSON on stdout/stderr; keep them, and the test output quiet.
    const logged: string[] = [];
    for (const stream of [process.stdout, process.stderr]) {
      jest.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
        logged.push(chunk.toString());
        return true;
      });
    }
    env.sftp.resetStats();
    const results: SQSBatchResponse[] = [];
    try {
      // Two invocations at a time, each taking the next batch when it is done (the SQS poller's concurrency of 2).
      let next = 0;
      await Promise.all(
        Array.from({ length: AT_ONCE }, async () => {
          while (next < batches.length) {
            const n = next++;
            results[n] = (await handler(batches[n], context(n))) as SQSBatchResponse;
          }
        }),
      );
    } finally {
      jest.restoreAllMocks();
    }

    // One summary, so that a failure shows every fact at once.
    const missing: string[] = [];
    for (const [key, body] of bodies) {
      const remote = "/IN/" + key.slice("psp/outbound/".length);
      const got = await readFile(env.local(remote)).catch(() => undefined);
      if (!got || sha(got) !== sha(body)) missing.push(remote);
    }
    const { sessionsOpened, maxConcurrentSessions, authFailures } = env.sftp.stats;
    expect({
      invocations: results.length,
      failedMessages: results.flatMap((r) => r.batchItemFailures.map((f) => f.itemIdentifier)),
      // Every file arrived, byte for byte, at its place under /IN.
      missingOrDifferent: missing,
      movedLines: logged.join("").match(/\[psp\]: Moved 10 files from S3 to SFTP/g)?.length ?? 0,
      // One SSH connection per stream per batch, and the poller's two invocations never made it three.
      sessionsOpened,
      atMostTwoAtOnce: maxConcurrentSessions >= 1 && maxConcurrentSessions <= AT_ONCE,
      authFailures,
    }).toEqual({
      invocations: 20,
      failedMessages: [],
      missingOrDifferent: [],
      movedLines: 20,
      sessionsOpened: 20,
      atMostTwoAtOnce: true,
      authFailures: 0,
    });
  }, 60_000);
});
