import type { PlannedFile, RunReport } from "../../../lambda/bridge/report";
import type { ResendSelection } from "../../../lambda/bridge/resend";
import { cell, code, table } from "../../lib/summary";

/** The direct-invoke event the bridge's handler takes for a resend: the engine's selection, always with dryRun. */
export type ResendEvent = { action: "resend" } & ResendSelection & { dryRun: boolean };

export interface ResendOutcome {
  planned: number;
  resent: number;
  skipped: number;
  failed: number;
  /** Set when the step must fail. */
  error?: string;
  warning?: string;
}

const verb = (e: ResendEvent) => (e.direction === "push" ? "resend to the partner" : "move back for the next pull");

/** One log line per file, as an operator reads them: what, where to, how big, and when it was delivered before. */
export function resendLines(report: RunReport, event: ResendEvent): string[] {
  const lines: string[] = [];
  for (const s of report.streams) {
    for (const p of s.planned ?? [])
      lines.push(`would ${verb(event)}: ${p.source} -> ${p.destination} (${size(p.bytes)}); ${deliveries(p)}`);
    for (const m of s.moved)
      lines.push(
        `${event.direction === "push" ? "resent" : "moved back"}: ${m.source} -> ${m.destination} (${size(m.bytes)})`,
      );
    for (const k of s.skipped) lines.push(`skipped: ${k.source}: ${k.reason}${k.detail ? ` (${k.detail})` : ""}`);
    for (const f of s.failed) lines.push(`FAILED: ${f.source}: ${f.code}: ${f.message}`);
  }
  const o = resendOutcome(report, event);
  lines.push(
    event.dryRun
      ? `dry run: ${o.planned} file(s) would be resent, ${o.skipped} skipped; run again with dry-run: false to do it`
      : `${o.resent} file(s) ${event.direction === "push" ? "resent" : "moved back for the next pull"}, ${o.skipped} skipped, ${o.failed} failed`,
  );
  return lines;
}

export function resendOutcome(report: RunReport, event: ResendEvent): ResendOutcome {
  const sum = (f: (s: RunReport["streams"][number]) => number) => report.streams.reduce((n, s) => n + f(s), 0);
  const o: ResendOutcome = {
    planned: sum((s) => s.planned?.length ?? 0),
    resent: sum((s) => s.moved.length),
    skipped: sum((s) => s.skipped.length),
    failed: sum((s) => s.failed.length),
  };
  const selection = describeSelection(event);
  if (o.failed > 0) {
    const first = report.streams.flatMap((s) => s.failed)[0]!;
    o.error = `${o.failed} file(s) failed, first ${first.source}: ${first.code}: ${first.message}`;
  } else if (event.dryRun && o.planned === 0) {
    o.warning = `nothing matches ${selection} in stream ${event.stream}`;
  } else if (!event.dryRun && o.resent === 0) {
    // An operator asked for a resend and nothing moved: a typo in a key must not look like success.
    o.error = `nothing was resent: nothing matches ${selection} in stream ${event.stream}${o.skipped ? ` (${o.skipped} skipped, see the log)` : ""}`;
  }
  return o;
}

export function resendSummary(report: RunReport, event: ResendEvent): string {
  const o = resendOutcome(report, event);
  const title = `### ${event.dryRun ? "Dry run: r" : "R"}esend ${event.direction === "push" ? "S3 -> SFTP" : "SFTP -> S3"} for ${code(event.stream)}`;
  const rows: unknown[][] = [];
  for (const s of report.streams) {
    for (const p of s.planned ?? [])
      rows.push([code(p.source), code(p.destination), size(p.bytes), "would resend", cell(deliveries(p))]);
    for (const m of s.moved)
      rows.push([
        code(m.source),
        code(m.destination),
        size(m.bytes),
        event.direction === "push" ? "resent" : "moved back",
        "-",
      ]);
    for (const k of s.skipped) rows.push([code(k.source), "-", "-", `skipped: ${k.reason}`, cell(k.detail ?? "")]);
    for (const f of s.failed) rows.push([code(f.source), "-", "-", "**failed**", cell(`${f.code}: ${f.message}`)]);
  }
  return [
    title,
    "",
    `Selection: ${cell(describeSelection(event))}.`,
    "",
    rows.length
      ? table(["Source", "Destination", "Size", "Outcome", "Earlier deliveries / detail"], rows, { raw: true })
      : "Nothing matched.",
    "",
    event.dryRun
      ? `${o.planned} file(s) would be resent. Nothing was changed: run again with \`dry-run: false\`.`
      : `${o.resent} resent, ${o.skipped} skipped, ${o.failed} failed.`,
    "",
  ].join("\n");
}

function describeSelection(e: ResendEvent): string {
  const parts: string[] = [];
  if (e.keys?.length) parts.push(`keys ${e.keys.join(", ")}`);
  if (e.prefix !== undefined) parts.push(`prefix ${JSON.stringify(e.prefix)}`);
  if (e.since) parts.push(`since ${e.since}`);
  if (e.until) parts.push(`until ${e.until}`);
  return parts.join(", ");
}

function deliveries(p: PlannedFile): string {
  if (!p.deliveries.length) return "no earlier delivery on record";
  return `delivered before: ${p.deliveries.map((d) => `${d.finishedAt}${d.trigger ? ` (${d.trigger})` : ""}`).join(", ")}`;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
