import { classify, EventError, streamsFromRuleArn } from "../../lambda/events";

const s3Record = (key: string, eventName = "ObjectCreated:Put") => ({
  eventVersion: "2.1",
  eventSource: "aws:s3",
  eventName,
  s3: { bucket: { name: "payments" }, object: { key, eTag: "abc", size: 3 } },
});

const sqsRecord = (messageId: string, body: unknown, receiveCount = "1") => ({
  messageId,
  eventSource: "aws:sqs",
  body: typeof body === "string" ? body : JSON.stringify(body),
  attributes: { ApproximateReceiveCount: receiveCount },
});

describe("classify", () => {
  it("decodes S3 notification keys: + is a space, percent-encoding is undone", () => {
    const work = classify({ Records: [s3Record("psp/outbound/a+b%2Bc%C3%A9%26.xml")] });
    expect(work).toEqual({
      kind: "push",
      items: [{ bucket: "payments", key: "psp/outbound/a b+cé&.xml", eTag: "abc", versionId: undefined }],
    });
  });

  it("ignores ObjectRemoved records", () => {
    const work = classify({ Records: [s3Record("a", "ObjectRemoved:Delete"), s3Record("b")] });
    expect(work.kind === "push" && work.items.map((i) => i.key)).toEqual(["b"]);
  });

  it("unwraps SQS bodies holding S3 notifications, SNS envelopes and EventBridge events, with refs and attempts", () => {
    const work = classify({
      Records: [
        sqsRecord("m1", { Records: [s3Record("x/1.xml"), s3Record("x/2.xml")] }, "3"),
        sqsRecord("m2", { Type: "Notification", Message: JSON.stringify({ Records: [s3Record("x/3.xml")] }) }),
        sqsRecord("m3", {
          source: "aws.s3",
          "detail-type": "Object Created",
          detail: { bucket: { name: "payments" }, object: { key: "x/4 plain+key.xml", etag: "e" } },
        }),
        sqsRecord("m4", { Event: "s3:TestEvent" }),
        sqsRecord("m5", "not json"),
      ],
    });
    if (work.kind !== "sqs") throw new Error(`expected sqs, got ${work.kind}`);
    const [m1, m2, m3, m4, m5] = work.messages;
    expect(m1?.items.map((i) => [i.key, i.ref, i.attempt])).toEqual([
      ["x/1.xml", "m1", 3],
      ["x/2.xml", "m1", 3],
    ]);
    expect(m2?.items[0]?.key).toBe("x/3.xml");
    expect(m3?.items[0]).toMatchObject({ key: "x/4 plain+key.xml", ref: "m3" });
    expect(m4).toEqual({ messageId: "m4", items: [] });
    expect(m5?.error).toMatch(/not valid JSON/);
  });

  it("a malformed percent-encoding fails only its own SQS message", () => {
    const work = classify({
      Records: [
        sqsRecord("bad", { Records: [s3Record("x/%E0%A4%A.xml")] }),
        sqsRecord("ok", { Records: [s3Record("x/y")] }),
      ],
    });
    if (work.kind !== "sqs") throw new Error("expected sqs");
    expect(work.messages[0]?.error).toBeDefined();
    expect(work.messages[1]?.items).toHaveLength(1);
  });

  it.each(["in/bad%E0%A4%A.xml", "in/100%.csv", "in/%zz.xml"])(
    "an SQS message whose S3 key %s is badly %%-encoded says so, not that its body is not JSON",
    (key) => {
      const work = classify({ Records: [sqsRecord("m1", { Records: [s3Record(key)] })] });
      if (work.kind !== "sqs") throw new Error("expected sqs");
      expect(work.messages[0]?.items).toEqual([]);
      expect(work.messages[0]?.error).toBe(
        `S3 record 1: refusing key ${JSON.stringify(key)}: malformed URL encoding in an S3 event key (URI malformed)`,
      );
    },
  );

  it("a bad key in a later record fails the whole message and names that record, inside an SNS envelope too", () => {
    const records = [s3Record("in/ok.csv"), s3Record("in/gone.csv", "ObjectRemoved:Delete"), s3Record("in/100%.csv")];
    const work = classify({
      Records: [
        sqsRecord("direct", { Records: records }),
        sqsRecord("sns", { Type: "Notification", Message: JSON.stringify({ Records: records }) }),
      ],
    });
    if (work.kind !== "sqs") throw new Error("expected sqs");
    for (const message of work.messages) {
      expect(message.items).toEqual([]);
      expect(message.error).toMatch(/^S3 record 3: refusing key "in\/100%\.csv": malformed URL encoding/);
    }
  });

  it("a record without a bucket or key fails only its own message, naming the record", () => {
    const work = classify({
      Records: [
        sqsRecord("no-s3", { Records: [s3Record("in/a.csv"), { eventName: "ObjectCreated:Put" }] }),
        sqsRecord("null", { Records: [null] }),
        sqsRecord("ok", { Records: [s3Record("in/b.csv")] }),
      ],
    });
    if (work.kind !== "sqs") throw new Error("expected sqs");
    expect(work.messages.map((m) => m.error)).toEqual([
      "S3 record 2: s3.bucket.name or s3.object.key is missing or not a string",
      "S3 record 1: is not a JSON object",
      undefined,
    ]);
    expect(work.messages[2]?.items.map((i) => i.key)).toEqual(["in/b.csv"]);
  });

  it("a body that does not parse is still reported as not valid JSON", () => {
    const work = classify({
      Records: [
        sqsRecord("cut", '{"Records": [{"s3": {"object": {"key": "in/100%.csv"'),
        sqsRecord("sns", { Type: "Notification", Message: "{not json" }),
      ],
    });
    if (work.kind !== "sqs") throw new Error("expected sqs");
    for (const message of work.messages) expect(message.error).toMatch(/^body is not valid JSON: /);
  });

  it("a top-level S3 event with a badly encoded key is refused, naming the record and the key", () => {
    const event = { Records: [s3Record("in/ok.csv"), s3Record("in/100%.csv")] };
    expect(() => classify(event)).toThrow(EventError);
    expect(() => classify(event)).toThrow(
      'S3 record 2: refusing key "in/100%.csv": malformed URL encoding in an S3 event key (URI malformed)',
    );
  });

  it("takes pull streams from a schedule's input or, gilt-style, from the rule name", () => {
    expect(classify({ streams: ["a", "b"] })).toEqual({ kind: "pull", streams: ["a", "b"] });
    const scheduled = classify({
      "detail-type": "Scheduled Event",
      source: "aws.events",
      resources: ["arn:aws:events:eu-west-1:123456789012:rule/psp.bank"],
    });
    expect(scheduled).toMatchObject({ kind: "pull", streams: ["psp", "bank"] });
    expect(streamsFromRuleArn("arn:aws:events:eu-west-1:1:rule/one")).toEqual(["one"]);
  });

  it("routes direct invokes and validates them", () => {
    expect(classify({ action: "push", keys: ["s3://b/k/x.xml"], force: true })).toEqual({
      kind: "push",
      items: [{ bucket: "b", key: "k/x.xml" }],
      force: true,
    });
    expect(classify({ action: "pull", streams: ["psp"] })).toEqual({ kind: "pull", streams: ["psp"] });
    expect(classify({ action: "resend", stream: "psp", direction: "push", prefix: "2026/" })).toMatchObject({
      kind: "resend",
      request: { stream: "psp", direction: "push", prefix: "2026/", dryRun: true },
    });
    expect(() => classify({ action: "push", keys: ["b/k"] })).toThrow(/not an s3:\/\/bucket\/key URI/);
    expect(() => classify({ action: "pull", streams: [] })).toThrow(/streams: must be a non-empty array/);
    expect(() => classify({ action: "resend", stream: "psp", direction: "sideways" })).toThrow(/direction/);
    expect(() => classify({ hello: 1 })).toThrow(EventError);
    expect(() => classify("text")).toThrow(/not a JSON object/);
  });

  it("ignores the bucket's s3:TestEvent", () => {
    expect(classify({ Event: "s3:TestEvent", Bucket: "b" })).toEqual({ kind: "ignore", reason: "s3:TestEvent" });
  });
});
