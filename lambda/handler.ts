import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { Context, SQSBatchResponse } from "aws-lambda";
import { createBridge, reportMetrics, type Logger as EngineLogger, type MetricName, type RunReport } from "./bridge";
import { createBridgeRuntime, type BridgeRuntime } from "./bridge-runtime";
import { readEnv, runtimeOptions } from "./env";
import { classify, type Work } from "./events";

/**
 * The Lambda adapter: classify the event, run the engine, log and measure the report, and answer in the shape the
 * event source expects (`batchItemFailures` for SQS, the report otherwise). Decisions about outcomes live here only.
 */

const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "s3-sftp-bridge" });
const metrics = new Metrics({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "s3-sftp-bridge" });
let runtime: BridgeRuntime | undefined;

// Powertools takes extra fields as optional rest arguments; the engine's Logger passes one object or none.
const engineLogger: EngineLogger = {
  debug: (message, fields) => (fields ? logger.debug(message, fields) : logger.debug(message)),
  info: (message, fields) => (fields ? logger.info(message, fields) : logger.info(message)),
  warn: (message, fields) => (fields ? logger.warn(message, fields) : logger.warn(message)),
  error: (message, fields) => (fields ? logger.error(message, fields) : logger.error(message)),
};

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];
const UNITS: Record<MetricName, Unit> = {
  FilesMoved: MetricUnit.Count,
  BytesMoved: MetricUnit.Bytes,
  Errors: MetricUnit.Count,
  ConnectionTimeouts: MetricUnit.Count,
  FilesRefused: MetricUnit.Count,
  EventsFailed: MetricUnit.Count,
  DurationMs: MetricUnit.Milliseconds,
};

function publish(report: RunReport): void {
  for (const m of reportMetrics(report)) {
    metrics.addDimensions({ stream: m.stream, direction: m.direction });
    for (const [name, value] of Object.entries(m.values)) metrics.addMetric(name, UNITS[name as MetricName], value);
    metrics.publishStoredMetrics();
  }
}

export type HandlerResult = RunReport | SQSBatchResponse | { ignored: string };

export async function handler(event: unknown, context: Context): Promise<HandlerResult> {
  logger.addContext(context);
  const env = readEnv();
  runtime ??= createBridgeRuntime(runtimeOptions(env));
  const work: Work = classify(event);
  if (work.kind === "ignore") {
    logger.info("event ignored", { reason: work.reason });
    return { ignored: work.reason };
  }
  const bridge = createBridge({
    config: await runtime.config(),
    s3: runtime.s3,
    credentials: runtime.credentials,
    logger: engineLogger,
    requestId: context.awsRequestId,
    events: runtime.events,
  });
  const endsAt = Date.now() + context.getRemainingTimeInMillis();
  const deadline = endsAt - env.deadlineMarginMs;

  let report: RunReport;
  let response: HandlerResult | undefined;
  switch (work.kind) {
    case "push":
      report = await bridge.push(work.items, {
        deadline,
        endsAt,
        force: work.force,
        trigger: work.force ? "force" : "event",
      });
      break;
    case "sqs": {
      report = await bridge.push(
        work.messages.flatMap((m) => m.items),
        { deadline, endsAt, trigger: "event" },
      );
      const failed = new Set(report.streams.flatMap((s) => s.failed.map((f) => f.ref)));
      for (const m of work.messages.filter((m) => m.error))
        logger.error("unreadable SQS message", { messageId: m.messageId, error: m.error });
      // Only the messages that failed come back; the rest of the batch is done.
      response = {
        batchItemFailures: work.messages
          .filter((m) => m.error || failed.has(m.messageId))
          .map((m) => ({ itemIdentifier: m.messageId })),
      };
      break;
    }
    case "pull": {
      // A gilt-style rule name may carry words that are not streams (a stack prefix); keep the ones that are.
      const known = bridge.streamNames();
      const streams = work.fromRuleName ? work.streams.filter((s) => known.includes(s)) : work.streams;
      report = await bridge.pull(streams.length ? streams : work.streams, { deadline, trigger: "schedule" });
      break;
    }
    case "resend":
      report = await bridge.resend(work.request, { deadline });
      break;
  }
  logger.info("run report", { report });
  publish(report);
  if (!report.ok) logger.error("some files failed", { failed: report.streams.flatMap((s) => s.failed) });
  return response ?? report;
}
