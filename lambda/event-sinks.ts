import { appendFile } from "node:fs/promises";
import { PutEventsCommand, type EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { EVENT_SOURCE, type FileEvent, type FileEventSink } from "./bridge";

/**
 * Where the function's per-file events go: an EventBridge bus in AWS, a JSON lines file in the local stack. The
 * engine batches them (at most 10, PutEvents' limit) and never lets a failure here fail a transfer.
 */
export function eventBridgeSink(client: EventBridgeClient, busName: string): FileEventSink {
  return {
    async publish(events: FileEvent[]) {
      const out = await client.send(
        new PutEventsCommand({
          Entries: events.map((e) => ({
            EventBusName: busName,
            Source: EVENT_SOURCE,
            DetailType: e.detailType,
            Detail: JSON.stringify(e.detail),
          })),
        }),
      );
      return { failed: out.FailedEntryCount ?? 0 };
    },
  };
}

/** One line per event, shaped as EventBridge would deliver it to a rule's target. */
export function jsonLinesSink(path: string, clock: () => number = Date.now): FileEventSink {
  return {
    async publish(events: FileEvent[]) {
      const time = new Date(clock()).toISOString();
      const lines = events.map((e) =>
        JSON.stringify({ source: EVENT_SOURCE, "detail-type": e.detailType, time, detail: e.detail }),
      );
      await appendFile(path, lines.join("\n") + "\n");
      return { failed: 0 };
    },
  };
}
