import type { Logger } from "./logger";
import type { Receipt } from "./receipts";
import type { Direction } from "./report";

/**
 * An event per file moved, for pipelines downstream (a "watchdog" that starts processing when a partner's file lands).
 * The engine only says what happened; where it goes is the adapter's business (EventBridge PutEvents in Lambda, a JSON
 * lines file in the local stack), through a FileEventSink.
 *
 * Events are a convenience, never a condition of delivery: a failed publish is logged and counted, and the transfer
 * it describes stays done. Streams opt in with `events: true`.
 */
export const EVENT_SOURCE = "s3-sftp-bridge";

export type FileEventType = "File Delivered" | "File Pulled" | "File Failed";

export interface FailedTransfer {
  stream: string;
  direction: Direction;
  source: string;
  code: string;
  message: string;
  requestId?: string;
  at: string;
}

export type FileEvent =
  | { detailType: "File Delivered" | "File Pulled"; detail: Receipt }
  | { detailType: "File Failed"; detail: FailedTransfer };

export interface FileEventSink {
  /** Publishes up to MAX_EVENTS_PER_CALL events; resolves how many of them were not accepted. Rejects for a total failure. */
  publish(events: FileEvent[]): Promise<{ failed: number }>;
}

/** EventBridge PutEvents takes at most 10 entries per call. */
export const MAX_EVENTS_PER_CALL = 10;

/**
 * Events of one stream's run, sent in batches of MAX_EVENTS_PER_CALL as they fill, the rest at drain(). A sink that is
 * absent or a stream that did not opt in makes every call a no-op.
 */
export class EventOutbox {
  private pending: FileEvent[] = [];
  private readonly sending = new Set<Promise<void>>();
  private failedCount = 0;

  constructor(
    private readonly sink: FileEventSink | undefined,
    private readonly logger: Logger,
    private readonly stream: string,
  ) {}

  /** Events that could not be published (logged one line per batch). */
  get failed(): number {
    return this.failedCount;
  }

  add(event: FileEvent): void {
    if (!this.sink) return;
    this.pending.push(event);
    if (this.pending.length >= MAX_EVENTS_PER_CALL) this.flush();
  }

  async drain(): Promise<void> {
    this.flush();
    while (this.sending.size > 0) await Promise.race(this.sending);
  }

  private flush(): void {
    const sink = this.sink;
    if (!sink) return;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_EVENTS_PER_CALL);
      const sending: Promise<void> = sink
        .publish(batch)
        .then(
          ({ failed }) => failed,
          (err: unknown) => {
            this.logger.warn("file events not published", {
              stream: this.stream,
              events: batch.length,
              error: (err as Error)?.message ?? String(err),
            });
            return batch.length;
          },
        )
        .then((failed) => {
          if (failed === 0) return;
          this.failedCount += failed;
          this.logger.warn("file events refused by the event bus", { stream: this.stream, failed });
        })
        .finally(() => this.sending.delete(sending));
      this.sending.add(sending);
    }
  }
}

export function failedEvent(
  stream: string,
  direction: Direction,
  source: string,
  failure: { code: string; message: string },
  at: number,
  requestId?: string,
): FileEvent {
  return {
    detailType: "File Failed",
    detail: {
      stream,
      direction,
      source,
      code: failure.code,
      message: failure.message,
      at: new Date(at).toISOString(),
      ...(requestId === undefined ? {} : { requestId }),
    },
  };
}
