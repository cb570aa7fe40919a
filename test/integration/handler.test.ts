import { existsSync } from "node:fs";
import { mkdir, readFile, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import type { S3EventRecord, SQSEvent } from "aws-lambda";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";
import { handlerEnvironment, lambdaContext, loadHandler } from "../support/handler-env";

/**
 * The Lambda handler in process, configured only through its environment contract, against s3rver and the embedded
 * SFTP server. S3 notifications come from s3rver itself (keys encoded as AWS encodes them), wrapped as SQS delivers.
 */
describe("Lambda handler end to end", () => {
  let env: BridgeEnv;
  let handler: typeof import("../../lambda/handler").handler;
  let records: S3EventRecord[] = [];
  let stdout: string[] = [];
  let restoreEnv: (() => void) | undefined;

  const context = () => lambdaContext(`req-${Math.random().toString(16).slice(2)}`, 120_000);

  const sqs = (bodies: { id: string; records: S3EventRecord[] }[]): SQSEvent =>
    ({
      Records: bodies.map(({ id, records }) => ({
        messageId: id,
        eventSource: "aws:sqs",
        body: JSON.stringify({ Records: records }),
        attributes: { ApproximateReceiveCount: "1" },
      })),
    }) as unknown as SQSEvent;

  async function eventFor(key: string): Promise<S3EventRecord> {
    for (let i = 0; i < 100; i++) {
      const found = records.find((r) => r.s3.object.key === encodeKey(key) && r.eventName.startsWith("ObjectCreated"));
      if (found) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no S3 event for ${key}; saw ${records.map((r) => r.s3.object.key).join(", ")}`);
  }
  const encodeKey = (key: string) => encodeURIComponent(key).replace(/%20/g, "+").replace(/%2F/g, "/");

  beforeAll(async () => {
    env = await startBridgeEnv();
    env.s3.onEvent((r) => records.push(r));
    ({ handler, restore: restoreEnv } = loadHandler(
      await handlerEnvironment(env, { deadlineMarginMs: 5000, service: "bridge-test" }),
    ));
  });

  beforeEach(() => {
    records = [];
    stdout = [];
    // Powertools writes INFO to stdout and WARN/ERROR to stderr; CloudWatch gets both, so the test reads both.
    for (const stream of [process.stdout, process.stderr]) {
      jest.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
        stdout.push(chunk.toString());
        return true;
      });
    }
  });
  afterEach(() => jest.restoreAllMocks());
  afterAll(async () => {
    restoreEnv?.();
    await env?.close();
  });

  it("pushes objects from an SQS batch of real s3rver notifications, keys with spaces, + and unicode", async () => {
    const keys = ["psp/outbound/plain.xml", "psp/outbound/sub dir/a+b é.xml"];
    for (const key of keys) await env.put(key, `<${key.length}/>`);
    const event = sqs([
      { id: "m1", records: [await eventFor(keys[0]!)] },
      { id: "m2", records: [await eventFor(keys[1]!)] },
    ]);
    const result = await handler(event, context());
    expect(result).toEqual({ batchItemFailures: [] });
    expect(await readFile(env.local("/IN/sub dir/a+b é.xml"), "utf8")).toBe(`<${keys[1]!.length}/>`);
    const out = stdout.join("");
    expect(out).toContain("[psp]: Moved 2 files from S3 to SFTP");
    // EMF: CloudWatch reads metrics from this JSON shape in the log stream.
    const emf = out
      .split("\n")
      .filter((l) => l.includes('"_aws"'))
      .map(
        (l) =>
          JSON.parse(l) as {
            _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][] }[] };
            FilesMoved: number;
            stream: string;
            direction: string;
          },
      );
    expect(emf).toHaveLength(1);
    expect(emf[0]).toMatchObject({ FilesMoved: 2, stream: "psp", direction: "push" });
    expect(emf[0]?._aws.CloudWatchMetrics[0]?.Namespace).toBe("S3SftpBridge");
    expect(emf[0]?._aws.CloudWatchMetrics[0]?.Dimensions[0]).toEqual(expect.arrayContaining(["stream", "direction"]));
  });

  it("returns exactly the failed messages of a partly failing batch", async () => {
    await env.put("psp/outbound/ok1.xml", "1");
    await env.put("psp/outbound/gone.xml", "2");
    await env.put("psp/outbound/ok2.xml", "3");
    const event = sqs([
      { id: "ok-1", records: [await eventFor("psp/outbound/ok1.xml")] },
      { id: "gone", records: [await eventFor("psp/outbound/gone.xml")] },
      { id: "ok-2", records: [await eventFor("psp/outbound/ok2.xml")] },
    ]);
    await env.s3Client.send(new DeleteObjectCommand({ Bucket: env.bucket, Key: "psp/outbound/gone.xml" }));
    const result = await handler(event, context());
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: "gone" }] });
    expect(existsSync(env.local("/IN/ok1.xml")) && existsSync(env.local("/IN/ok2.xml"))).toBe(true);
    expect(stdout.join("")).toMatch(/"level":"ERROR".*S3_OBJECT_NOT_FOUND/);
  });

  it("fails an unreadable message, and ignores s3:TestEvent bodies", async () => {
    const event = {
      Records: [
        { messageId: "junk", eventSource: "aws:sqs", body: "{not json", attributes: {} },
        { messageId: "test", eventSource: "aws:sqs", body: JSON.stringify({ Event: "s3:TestEvent" }), attributes: {} },
      ],
    };
    expect(await handler(event, context())).toEqual({ batchItemFailures: [{ itemIdentifier: "junk" }] });
  });

  it("fails an SQS message whose S3 key is badly %-encoded with the real reason, and still pushes the others", async () => {
    await env.put("psp/outbound/fine.xml", "<f/>");
    const bad = { ...(await eventFor("psp/outbound/fine.xml")) };
    bad.s3 = { ...bad.s3, object: { ...bad.s3.object, key: "psp/outbound/100%.csv" } };
    const event = sqs([
      { id: "bad-key", records: [bad] },
      { id: "fine", records: [await eventFor("psp/outbound/fine.xml")] },
    ]);
    expect(await handler(event, context())).toEqual({ batchItemFailures: [{ itemIdentifier: "bad-key" }] });
    expect(existsSync(env.local("/IN/fine.xml"))).toBe(true);
    const logged = stdout.join("");
    expect(logged).toContain(
      'S3 record 1: refusing key \\"psp/outbound/100%.csv\\": malformed URL encoding in an S3 event key',
    );
    expect(logged).not.toContain("not valid JSON");
  });

  it("refuses a top-level S3 event whose key is badly %-encoded, naming the record and the key", async () => {
    await env.put("psp/outbound/top.xml", "<t/>");
    const record = await eventFor("psp/outbound/top.xml");
    const bad = {
      ...record,
      s3: { ...record.s3, object: { ...record.s3.object, key: "psp/outbound/bad%E0%A4%A.xml" } },
    };
    await expect(handler({ Records: [bad] }, context())).rejects.toThrow(
      'S3 record 1: refusing key "psp/outbound/bad%E0%A4%A.xml": malformed URL encoding in an S3 event key',
    );
  });

  it("pushes the object of a top-level EventBridge Object Created event, its key plain as EventBridge sends it", async () => {
    const key = "psp/outbound/eventbridge/a+b c.xml";
    await env.put(key, "<eb/>");
    // The ETag from s3rver's own notification: the handler's duplicate check compares it with the object it reads.
    const { eTag, size } = (await eventFor(key)).s3.object;
    const event = {
      version: "0",
      id: "17793124-05d4-b198-2fde-7ededc63b103",
      "detail-type": "Object Created",
      source: "aws.s3",
      account: "123456789012",
      time: new Date().toISOString(),
      region: "us-east-1",
      resources: [`arn:aws:s3:::${env.bucket}`],
      detail: {
        version: "0",
        bucket: { name: env.bucket },
        object: { key, size, etag: eTag, sequencer: "00617F08299329D189" },
        "request-id": "N4N7GDK58NMKJ12R",
        requester: "123456789012",
        "source-ip-address": "1.2.3.4",
        reason: "PutObject",
      },
    };
    const report = (await handler(event, context())) as import("../../lambda/bridge").RunReport;
    expect(report.ok).toBe(true);
    expect(report.streams).toEqual([expect.objectContaining({ stream: "psp", direction: "push", files: 1, bytes: 5 })]);
    expect(await readFile(env.local("/IN/eventbridge/a+b c.xml"), "utf8")).toBe("<eb/>");
    expect(stdout.join("")).toContain("[psp]: Moved 1 files from S3 to SFTP");

    // EventBridge delivers at least once: the same event again is a duplicate, not a second delivery.
    const again = (await handler(event, context())) as import("../../lambda/bridge").RunReport;
    expect(again.streams[0]?.skipped).toEqual([expect.objectContaining({ reason: "duplicate" })]);
  });

  it("pulls on a scheduled event with the streams in its input", async () => {
    const file = env.local("/OUT/scheduled.csv");
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, "x,y\n");
    const old = new Date(Date.now() - 60_000);
    await utimes(file, old, old);
    const report = (await handler({ streams: ["psp"] }, context())) as import("../../lambda/bridge").RunReport;
    expect(report.ok).toBe(true);
    expect(report.streams[0]).toMatchObject({ stream: "psp", direction: "pull", files: 1 });
    expect((await env.get("psp/inbound/scheduled.csv"))?.toString()).toBe("x,y\n");
    expect(stdout.join("")).toContain("[psp]: Moved 1 files from SFTP to S3");
  });

  it("pulls gilt-style from a schedule rule named after the streams", async () => {
    const report = (await handler(
      {
        "detail-type": "Scheduled Event",
        source: "aws.events",
        resources: ["arn:aws:events:us-east-1:1:rule/bridge-prod.psp"],
      },
      context(),
    )) as import("../../lambda/bridge").RunReport;
    expect(report.streams.map((s) => s.stream)).toEqual(["psp"]);
  });

  it("rejects an unknown stream and an unknown event with messages that say what is wrong", async () => {
    await expect(handler({ action: "pull", streams: ["ghost"] }, context())).rejects.toThrow(/unknown stream "ghost"/);
    await expect(handler({ what: "ever" }, context())).rejects.toThrow(/unrecognised event/);
  });
});
