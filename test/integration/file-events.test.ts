import { mkdir, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import type { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { reportMetrics, type Receipt } from "../../lambda/bridge";
import { eventBridgeSink } from "../../lambda/event-sinks";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";
import { startLocalAws, type LocalAws } from "../support/local-aws";

/**
 * An event per file moved, on an EventBridge bus (a local endpoint speaking the PutEvents wire protocol, with its
 * limits), for streams that ask for it. Events never decide a transfer's outcome.
 */
describe("per-file events on an event bus", () => {
  let env: BridgeEnv;
  let aws: LocalAws;
  let client: EventBridgeClient;
  beforeAll(async () => {
    env = await startBridgeEnv("bridge-events");
    aws = await startLocalAws();
    client = aws.eventBridge();
  });
  afterAll(async () => {
    client?.destroy();
    await aws?.close();
    await env?.close();
  });
  beforeEach(() => {
    aws.events.length = 0;
    aws.calls.length = 0;
    aws.eventFaults.refuseEntries = 0;
    aws.eventFaults.failCalls = 0;
  });

  const bridge = (events: boolean) =>
    env.bridge(
      env.config((doc) => {
        doc.streams.psp!.events = events;
      }),
      { events: eventBridgeSink(client, "bridge-bus"), requestId: "req-events" },
    );

  it("publishes one File Delivered event per push, ten to a PutEvents call, with the receipt as detail", async () => {
    const keys = Array.from({ length: 25 }, (_, i) => `psp/outbound/events/f${String(i).padStart(2, "0")}.xml`);
    for (const key of keys) await env.put(key, `<f n="${key}"/>`);
    const report = await bridge(true).push(keys.map((key) => ({ bucket: env.bucket, key })));
    expect(report.streams[0]?.files).toBe(25);

    expect(aws.events).toHaveLength(25);
    const calls = aws.callsTo("AWSEvents.PutEvents");
    expect(calls.map((c) => (c.body.Entries as unknown[]).length).sort()).toEqual([10, 10, 5].sort());
    const event = aws.events.find((e) => (e.detail as Receipt).source.key === keys[3]);
    expect(event).toMatchObject({ bus: "bridge-bus", source: "s3-sftp-bridge", detailType: "File Delivered" });
    expect(event?.detail).toMatchObject({
      stream: "psp",
      direction: "push",
      destination: { path: "/IN/events/f03.xml" },
      requestId: "req-events",
    });
    expect((event?.detail as Receipt).sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("publishes nothing for a stream that did not ask", async () => {
    await env.put("psp/outbound/events/quiet.xml", "<quiet/>");
    const report = await bridge(false).push([{ bucket: env.bucket, key: "psp/outbound/events/quiet.xml" }]);
    expect(report.streams[0]?.files).toBe(1);
    expect(aws.calls).toEqual([]);
  });

  it("publishes File Pulled and File Failed events", async () => {
    const file = env.local("/OUT/events-pulled.csv");
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, "p,1\n");
    const old = new Date(Date.now() - 60_000);
    await utimes(file, old, old);
    await bridge(true).pull(["psp"]);
    expect(aws.events.find((e) => e.detailType === "File Pulled")?.detail).toMatchObject({
      stream: "psp",
      direction: "pull",
      source: { path: "/OUT/events-pulled.csv" },
      destination: { key: "psp/inbound/events-pulled.csv" },
    });

    await bridge(true).push([{ bucket: env.bucket, key: "psp/outbound/events/missing.xml" }]);
    expect(aws.events.find((e) => e.detailType === "File Failed")?.detail).toMatchObject({
      stream: "psp",
      direction: "push",
      source: `s3://${env.bucket}/psp/outbound/events/missing.xml`,
      code: "S3_OBJECT_NOT_FOUND",
      requestId: "req-events",
    });
  });

  it("a bus that refuses entries or fails a call never fails a transfer: logged and counted in EventsFailed", async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `psp/outbound/events/busy-${i}.xml`);
    for (const key of keys) await env.put(key, "<busy/>");
    aws.eventFaults.refuseEntries = 1;
    aws.eventFaults.failCalls = 1;
    const before = env.logs.length;
    const report = await bridge(true).push(keys.map((key) => ({ bucket: env.bucket, key })));
    expect(report.ok).toBe(true);
    expect(report.streams[0]?.files).toBe(12);
    // The first call (10 events) failed outright; of the last two, the bus refused one.
    expect(aws.events).toHaveLength(1);
    expect(report.streams[0]?.eventsFailed).toBe(11);
    expect(reportMetrics(report)[0]?.values.EventsFailed).toBe(11);
    const warnings = env.logs
      .slice(before)
      .filter((l) => l.level === "warn")
      .map((l) => l.message);
    expect(warnings).toEqual(
      expect.arrayContaining(["file events not published", "file events refused by the event bus"]),
    );
  });
});
