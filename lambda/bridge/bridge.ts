import { engineContext, type EngineContext, type EngineDeps, type RunOptions } from "./context";
import { push, type PushItem, type PushOptions } from "./push";
import { pull, type PullOptions } from "./pull";
import { runReport, type RunReport } from "./report";
import { resend, type ResendSelection } from "./resend";
import type { Receipt, ReceiptFilter } from "./receipts";
import type { S3ObjectInfo } from "./s3";

/**
 * The engine's front door: adapters build one with their clients and call push or pull; every call returns a
 * RunReport and never throws for a per-file problem (only for a programming or config error that leaves nothing to
 * report).
 */
export interface Bridge {
  /** The engine's wiring, for tests that look inside; adapters use the methods below. */
  readonly context: EngineContext;
  push(items: PushItem[], options?: PushOptions): Promise<RunReport>;
  pull(streams: string[], options?: PullOptions): Promise<RunReport>;
  resend(selection: ResendSelection, options?: RunOptions): Promise<RunReport>;
  /** The names of the streams the config defines. */
  streamNames(): string[];
  /** Objects under a key prefix (to push what a prefix holds). */
  listObjects(bucket: string, prefix: string): AsyncGenerator<S3ObjectInfo>;
  /** Receipts of a stream, newest last ("did file X reach the partner, and when?"). */
  receipts(stream: string, filter?: ReceiptFilter): Promise<Receipt[]>;
}

export function createBridge(deps: EngineDeps): Bridge {
  const context = engineContext(deps);
  return {
    context,
    async push(items, options = {}) {
      const started = context.clock();
      const result = await push(context, items, options);
      return runReport(started, context.clock, result.streams, result.unrouted);
    },
    async pull(streams, options = {}) {
      const started = context.clock();
      return runReport(started, context.clock, await pull(context, streams, options));
    },
    async resend(selection, options = {}) {
      const started = context.clock();
      const result = await resend(context, selection, options);
      return runReport(started, context.clock, result.streams, result.unrouted);
    },
    streamNames: () => Object.keys(context.config.streams),
    listObjects: (bucket, prefix) => context.s3.list(bucket, prefix),
    receipts: (stream, filter) => context.receipts.list(stream, filter),
  };
}
