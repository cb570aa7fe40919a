import { engineContext, type EngineContext, type EngineDeps, type RunOptions } from "./context";
import { push, type PushItem, type PushOptions } from "./push";
import { pull, type PullOptions } from "./pull";
import { runReport, type RunReport } from "./report";
import { resend, type ResendSelection } from "./resend";

/**
 * The engine's front door: adapters build one with their clients and call push or pull; every call returns a
 * RunReport and never throws for a per-file problem (only for a programming or config error that leaves nothing to
 * report).
 */
export interface Bridge {
  readonly context: EngineContext;
  push(items: PushItem[], options?: PushOptions): Promise<RunReport>;
  pull(streams: string[], options?: PullOptions): Promise<RunReport>;
  resend(selection: ResendSelection, options?: RunOptions): Promise<RunReport>;
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
  };
}
