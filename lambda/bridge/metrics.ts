import type { Direction, FailedFile, RunReport } from "./report";

/**
 * The metrics a run produces, derived from its report so the engine stays free of any metrics library; adapters emit
 * them (the Lambda handler as CloudWatch EMF through Powertools). Names are the contract the template's alarms use.
 */
export const METRIC_NAMES = [
  "FilesMoved",
  "BytesMoved",
  "Errors",
  "ConnectionTimeouts",
  "FilesRefused",
  "EventsFailed",
  "DurationMs",
] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

export interface StreamMetrics {
  stream: string;
  direction: Direction;
  values: Record<MetricName, number>;
}

/**
 * A connection timeout is a partner's server that did not answer in time: during the handshake (readyTimeoutMs) or
 * later, when an established connection stops answering requests (operationTimeoutMs). Both are what the alarm is
 * for (network, allow-list, outage). A stall that ssh2's keepalive notices first reaches the report as a lost
 * connection, as a dropped one does, so it is not counted here.
 */
const CONNECTION_TIMEOUT_CODES = new Set(["SFTP_CONNECT_TIMEOUT", "SFTP_OPERATION_TIMEOUT"]);

function isConnectionTimeout(f: FailedFile): boolean {
  return CONNECTION_TIMEOUT_CODES.has(f.code);
}

/**
 * Files the bridge will not move until someone acts: a remote name it refuses to turn into a key, or an earlier
 * delivery in the way under `onConflict: skip`. They are skipped, not failed (the rest of the stream moves), yet every
 * run reports them again, so they get a count an alarm can watch.
 */
const REFUSED_REASONS = new Set(["unsafe-name", "exists"]);

export function reportMetrics(report: RunReport): StreamMetrics[] {
  return report.streams.map((s) => {
    const timeouts = s.failed.filter(isConnectionTimeout).length;
    return {
      stream: s.stream,
      direction: s.direction,
      values: {
        FilesMoved: s.files,
        BytesMoved: s.bytes,
        // One connection timeout fails every file of the batch; count it once as an error of the connection.
        Errors: s.failed.length,
        ConnectionTimeouts: timeouts > 0 ? 1 : 0,
        FilesRefused: s.skipped.filter((f) => REFUSED_REASONS.has(f.reason)).length,
        // Per-file events a stream asked for that the bus did not take (transfers are unaffected).
        EventsFailed: s.eventsFailed ?? 0,
        DurationMs: s.durationMs,
      },
    };
  });
}
