import { cell, code, table } from "../../lib/summary";
import type { SmokeResult, SmokeTarget } from "./smoke";

/** The job summary: each step with its latency and verdict, then what was cleaned up. */
export function smokeSummary(target: SmokeTarget, result: SmokeResult): string {
  const verdict = result.ok ? "passed" : "**failed**";
  const rows = result.steps.map((s) => [
    s.direction === "push" ? "S3 -> SFTP" : "SFTP -> S3",
    cell(s.name),
    s.ok ? "ok" : "**failed**",
    seconds(s.latencyMs),
    cell(s.detail),
  ]);
  const cleanup = result.cleanup.map((c) => [
    code(c.what),
    c.ok ? cell(c.detail) : `**not removed**: ${cell(c.detail)}`,
  ]);
  return [
    `### Smoke test of stream ${code(target.stream)} through ${code(target.functionName)}: ${verdict}`,
    "",
    result.failure ? `> ${cell(result.failure)}\n` : "",
    table(["Direction", "Step", "Result", "Latency", "Detail"], rows, { raw: true }),
    "",
    `Run id ${code(result.runId)}. Latency is counted from the start of each round trip.`,
    "",
    cleanup.length ? table(["Cleaned up", "Result"], cleanup, { raw: true }) : "Nothing to clean up.",
    "",
  ].join("\n");
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
