import type { EventBridgeEvent, S3Event, S3EventRecord, SQSEvent, SQSRecord, ScheduledEvent } from "aws-lambda";
import { decodeS3EventKey, InvalidKeyError, parseS3Uri, type PushItem } from "./bridge";

/**
 * Event classification: what the Lambda was invoked with, turned into what the engine should do. Pure functions, no
 * I/O, so every shape AWS sends (and every malformed one) is unit-tested without a server.
 */

export interface ResendRequest {
  action: "resend";
  stream: string;
  direction: "push" | "pull";
  keys?: string[];
  prefix?: string;
  since?: string;
  until?: string;
  dryRun?: boolean;
}

export type Work =
  | { kind: "push"; items: PushItem[]; force?: boolean }
  | { kind: "sqs"; messages: SqsWork[] }
  | { kind: "pull"; streams: string[]; fromRuleName?: string }
  | { kind: "resend"; request: ResendRequest }
  | { kind: "ignore"; reason: string };

export interface SqsWork {
  messageId: string;
  items: PushItem[];
  /** Set when the body could not be understood: the message fails (and ends in the DLQ after maxReceiveCount). */
  error?: string;
}

export class EventError extends Error {
  override name = "EventError";
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The ObjectCreated records as push items. A record that is malformed or whose key does not decode fails the whole
 * event (or SQS message) with an EventError naming the record by its 1-based position in Records, so the one bad
 * record can be found in the body.
 */
function s3Items(records: S3EventRecord[], ref?: string, attempt?: number): PushItem[] {
  return records.flatMap((r, index) => {
    const where = `S3 record ${index + 1}`;
    if (!isObject(r)) throw new EventError(`${where}: is not a JSON object`);
    if (typeof r.eventName !== "string" || !r.eventName.startsWith("ObjectCreated")) return [];
    const bucket: unknown = r.s3?.bucket?.name;
    const rawKey: unknown = r.s3?.object?.key;
    if (typeof bucket !== "string" || typeof rawKey !== "string")
      throw new EventError(`${where}: s3.bucket.name or s3.object.key is missing or not a string`);
    let key: string;
    try {
      key = decodeS3EventKey(rawKey);
    } catch (err) {
      if (!(err instanceof InvalidKeyError)) throw err;
      throw new EventError(`${where}: ${err.message}`, { cause: err });
    }
    return [
      {
        bucket,
        key,
        eTag: r.s3.object.eTag,
        versionId: r.s3.object.versionId,
        ...(ref === undefined ? {} : { ref }),
        ...(attempt === undefined ? {} : { attempt }),
      },
    ];
  });
}

type ObjectCreated = EventBridgeEvent<
  "Object Created",
  { bucket: { name: string }; object: { key: string; etag?: string; "version-id"?: string } }
>;

function isObjectCreated(e: Json): e is Json & ObjectCreated {
  return e["detail-type"] === "Object Created" && e.source === "aws.s3" && isObject(e.detail);
}

function objectCreatedItem(e: ObjectCreated, ref?: string): PushItem {
  // EventBridge keys are plain (not URL-encoded), unlike bucket notifications.
  return {
    bucket: e.detail.bucket.name,
    key: e.detail.object.key,
    eTag: e.detail.object.etag,
    versionId: e.detail.object["version-id"],
    ...(ref === undefined ? {} : { ref }),
  };
}

function keyUri(value: string): { bucket: string; key: string } {
  const uri = parseS3Uri(value);
  if (!uri) throw new EventError(`keys: ${JSON.stringify(value)} is not an s3://bucket/key URI`);
  return uri;
}

/** The items in one SQS body: an S3 notification, an SNS envelope around one, or an EventBridge event. */
function sqsBody(record: SQSRecord): SqsWork {
  const attempt = Number(record.attributes?.ApproximateReceiveCount) || undefined;
  let body: unknown;
  try {
    body = JSON.parse(record.body);
    if (isObject(body) && body.Type === "Notification" && typeof body.Message === "string")
      body = JSON.parse(body.Message);
  } catch (err) {
    return { messageId: record.messageId, items: [], error: `body is not valid JSON: ${(err as Error).message}` };
  }
  try {
    if (isObject(body) && body.Event === "s3:TestEvent") return { messageId: record.messageId, items: [] };
    if (isObject(body) && Array.isArray(body.Records)) {
      return {
        messageId: record.messageId,
        items: s3Items(body.Records as S3EventRecord[], record.messageId, attempt),
      };
    }
    if (isObject(body) && isObjectCreated(body)) {
      return { messageId: record.messageId, items: [{ ...objectCreatedItem(body, record.messageId), attempt }] };
    }
  } catch (err) {
    // Only this message fails: an exception here would fail, and redeliver, the whole batch.
    const why = err instanceof EventError ? err.message : `body is malformed: ${(err as Error).message}`;
    return { messageId: record.messageId, items: [], error: why };
  }
  return {
    messageId: record.messageId,
    items: [],
    error: "body is not an S3 notification, SNS envelope or EventBridge event",
  };
}

/** Gilt's convention: a schedule rule named `a.b.c` pulls streams a, b and c. */
export function streamsFromRuleArn(arn: string): string[] {
  const name = arn.slice(arn.lastIndexOf("/") + 1);
  return name.split(".").filter(Boolean);
}

export function classify(event: unknown): Work {
  if (!isObject(event)) throw new EventError("the event is not a JSON object");

  if (Array.isArray(event.Records)) {
    const records = event.Records as Json[];
    if (records.every((r) => r.eventSource === "aws:sqs")) {
      return { kind: "sqs", messages: (records as unknown as SQSEvent["Records"]).map(sqsBody) };
    }
    if (records.every((r) => r.eventSource === "aws:s3")) {
      return { kind: "push", items: s3Items((event as unknown as S3Event).Records) };
    }
    throw new EventError("Records[] must all come from aws:s3 or all from aws:sqs");
  }

  if (event.Event === "s3:TestEvent") return { kind: "ignore", reason: "s3:TestEvent" };
  if (isObjectCreated(event)) return { kind: "push", items: [objectCreatedItem(event)] };

  if (event["detail-type"] === "Scheduled Event") {
    const resources = (event as unknown as ScheduledEvent).resources ?? [];
    const streams = resources.flatMap(streamsFromRuleArn);
    if (!streams.length) throw new EventError("scheduled event without a rule name to take stream names from");
    return { kind: "pull", streams, fromRuleName: resources[0] };
  }

  if (event.action === undefined && Array.isArray(event.streams))
    return { kind: "pull", streams: stringList(event.streams, "streams") };

  switch (event.action) {
    case "push": {
      const keys = stringList(event.keys, "keys");
      return { kind: "push", items: keys.map(keyUri), force: event.force === true };
    }
    case "pull":
      return { kind: "pull", streams: stringList(event.streams, "streams") };
    case "resend":
      return { kind: "resend", request: resendRequest(event) };
    default:
      throw new EventError(
        `unrecognised event: expected an S3/SQS/EventBridge event or {action: "push"|"pull"|"resend"}, got keys ${Object.keys(event).join(", ")}`,
      );
  }
}

function stringList(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || !value.length || !value.every((v) => typeof v === "string" && v.length > 0)) {
    throw new EventError(`${field}: must be a non-empty array of strings`);
  }
  return value as string[];
}

function optionalString(event: Json, field: string): string | undefined {
  const v = event[field];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new EventError(`${field}: must be a string`);
  return v;
}

function resendRequest(event: Json): ResendRequest {
  const stream = optionalString(event, "stream");
  if (!stream) throw new EventError("resend: stream is required");
  if (event.direction !== "push" && event.direction !== "pull")
    throw new EventError('resend: direction must be "push" or "pull"');
  return {
    action: "resend",
    stream,
    direction: event.direction,
    keys: event.keys === undefined ? undefined : stringList(event.keys, "keys"),
    prefix: optionalString(event, "prefix"),
    since: optionalString(event, "since"),
    until: optionalString(event, "until"),
    dryRun: event.dryRun === undefined ? true : event.dryRun === true,
  };
}
