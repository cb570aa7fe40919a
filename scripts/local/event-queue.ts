// The bucket -> SQS -> Lambda wiring of templates/bridge.yaml, in process: S3 notifications become SQS messages,
// delivered in batches (as the event source mapping does) to the handler; messages the handler reports in
// `batchItemFailures` (or a whole batch when it throws) come back after a visibility timeout, until maxReceiveCount,
// after which they would land in the dead-letter queue.
import { createHash, randomUUID } from "node:crypto";
import type { SQSEvent, SQSRecord } from "aws-lambda";

export interface QueueOptions {
  /** Messages per invocation (the template's BatchSize default). */
  batchSize?: number;
  /** How long the first message waits for others to join its batch. */
  batchWindowMs?: number;
  /** Until a failed message is delivered again. In AWS six times the function timeout; short here to see retries. */
  visibilityTimeoutMs?: number;
  /** Deliveries before a message is given up (the template's MaxReceiveCount default). */
  maxReceiveCount?: number;
  queueArn?: string;
  /** Runs the handler; returns the ids of the messages that failed, or "all" when the invocation failed. */
  deliver(event: SQSEvent): Promise<string[] | "all">;
  /** A message failed maxReceiveCount times. */
  onDeadLetter?(record: SQSRecord): void;
}

interface Message {
  id: string;
  body: string;
  sentAt: number;
  firstReceivedAt?: number;
  receiveCount: number;
  visibleAt: number;
}

export class LocalQueue {
  private readonly messages: Message[] = [];
  private timer: NodeJS.Timeout | undefined;
  private delivering: Promise<void> | undefined;
  private closed = false;
  private readonly batchSize: number;
  private readonly windowMs: number;
  private readonly visibilityMs: number;
  private readonly maxReceiveCount: number;
  private readonly arn: string;

  constructor(private readonly options: QueueOptions) {
    this.batchSize = options.batchSize ?? 10;
    this.windowMs = options.batchWindowMs ?? 200;
    this.visibilityMs = options.visibilityTimeoutMs ?? 10_000;
    this.maxReceiveCount = options.maxReceiveCount ?? 5;
    this.arn = options.queueArn ?? "arn:aws:sqs:us-east-1:000000000000:bridge-events";
  }

  send(body: string): void {
    if (this.closed) return;
    const now = Date.now();
    this.messages.push({ id: randomUUID(), body, sentAt: now, receiveCount: 0, visibleAt: now + this.windowMs });
    this.schedule();
  }

  /** Stops delivering; waits for a batch already handed to the handler. Undelivered messages are dropped. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.delivering;
  }

  private schedule(): void {
    if (this.closed || this.delivering) return;
    clearTimeout(this.timer);
    const next = Math.min(...this.messages.map((m) => m.visibleAt));
    if (!Number.isFinite(next)) return;
    this.timer = setTimeout(() => this.poll(), Math.max(0, next - Date.now()));
  }

  private poll(): void {
    if (this.closed || this.delivering) return;
    const now = Date.now();
    const batch = this.messages.filter((m) => m.visibleAt <= now).slice(0, this.batchSize);
    if (!batch.length) return this.schedule();
    for (const m of batch) {
      m.receiveCount += 1;
      m.firstReceivedAt ??= now;
      // In flight: invisible until the handler answers.
      m.visibleAt = Number.POSITIVE_INFINITY;
    }
    this.delivering = this.deliver(batch).finally(() => {
      this.delivering = undefined;
      this.schedule();
    });
  }

  private async deliver(batch: Message[]): Promise<void> {
    let failed: Set<string>;
    try {
      const answer = await this.options.deliver({ Records: batch.map((m) => this.record(m)) });
      failed = new Set(answer === "all" ? batch.map((m) => m.id) : answer);
    } catch {
      failed = new Set(batch.map((m) => m.id));
    }
    for (const m of batch) {
      if (!failed.has(m.id)) {
        this.remove(m);
      } else if (m.receiveCount >= this.maxReceiveCount) {
        this.remove(m);
        this.options.onDeadLetter?.(this.record(m));
      } else {
        m.visibleAt = Date.now() + this.visibilityMs;
      }
    }
  }

  private remove(m: Message): void {
    const i = this.messages.indexOf(m);
    if (i >= 0) this.messages.splice(i, 1);
  }

  private record(m: Message): SQSRecord {
    return {
      messageId: m.id,
      receiptHandle: `${m.id}#${m.receiveCount}`,
      body: m.body,
      attributes: {
        ApproximateReceiveCount: String(m.receiveCount),
        SentTimestamp: String(m.sentAt),
        SenderId: "AROAS3NOTIFICATION:local",
        ApproximateFirstReceiveTimestamp: String(m.firstReceivedAt ?? m.sentAt),
      },
      messageAttributes: {},
      md5OfBody: createHash("md5").update(m.body).digest("hex"),
      eventSource: "aws:sqs",
      eventSourceARN: this.arn,
      awsRegion: this.arn.split(":")[3] ?? "us-east-1",
    };
  }
}
