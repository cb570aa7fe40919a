import { errorMessage } from "../../lib/errors";
import { code, details, table } from "../../lib/summary";
import { DeployError, type ChangeRow, type EventRow, type Mode, type StackResult } from "./types";

export interface ReportInput {
  stackName: string;
  mode: Mode;
  result?: StackResult;
  error?: unknown;
  runUrl?: string;
}

const HEADLINE: Record<StackResult["outcome"], string> = {
  created: "✅ created",
  updated: "✅ updated",
  "no-changes": "✅ no changes",
  planned: "📋 planned",
  deleted: "🗑️ deleted",
  absent: "✅ nothing to delete (no such stack)",
};

/** The markdown both the job summary and the pull-request comment show: outcome, change set, failures, outputs. */
export function reportMarkdown(input: ReportInput): string {
  const { result, error } = input;
  const deployError = error instanceof DeployError ? error : undefined;
  const changeSet = result?.changeSet ?? deployError?.changeSet;
  const headline = error
    ? deployError?.code === "TIMEOUT"
      ? "⏱️ timed out"
      : "❌ failed"
    : result
      ? HEADLINE[result.outcome]
      : "❔ unknown";

  const parts: string[] = [`### ${code(input.stackName)}: ${headline}`];
  const facts: string[][] = [["Mode", input.mode]];
  const status = result?.status ?? deployError?.status;
  if (status) facts.push(["Stack status", code(status)]);
  const empty = result?.outcome === "no-changes";
  if (changeSet)
    facts.push(["Change set", `${code(changeSet.name)} (${changeSet.type}${empty ? ", empty: deleted" : ""})`]);
  if (result) facts.push(["Duration", formatDuration(result.durationMs)]);
  parts.push(table(["", ""], facts, { raw: true }));

  for (const note of result?.notes ?? []) parts.push(`> [!NOTE]\n> ${note}`);
  if (error) parts.push(`**Error**\n\n\`\`\`text\n${errorMessage(error).replace(/```/g, "ʼʼʼ")}\n\`\`\``);

  if (changeSet && !empty) parts.push(changesMarkdown(changeSet.changes, input.mode));
  if (deployError?.failures.length) parts.push(failuresMarkdown(deployError.failures));
  const outputs = Object.entries(result?.outputs ?? {});
  if (outputs.length) {
    parts.push(
      details(
        `Stack outputs (${outputs.length})`,
        table(
          ["Output", "Value"],
          outputs.map(([k, v]) => [k, v]),
        ),
      ),
    );
  }
  if (input.runUrl) parts.push(`<sub>[workflow run](${input.runUrl})</sub>`);
  return parts.join("\n\n") + "\n";
}

function changesMarkdown(changes: ChangeRow[], mode: Mode): string {
  const verb = mode === "plan" ? "would change" : "changed";
  if (changes.length === 0) return `**Changes**: none to resources (outputs or metadata only).`;
  const rows = changes.map((c) => [
    actionLabel(c),
    c.logicalId,
    c.resourceType,
    c.physicalId,
    c.scope.length ? c.scope.join(", ") : undefined,
  ]);
  return `**Changes** (${changes.length} resource(s) ${verb})\n\n${table(["Action", "Logical ID", "Type", "Physical ID", "Scope"], rows)}`;
}

function actionLabel(c: ChangeRow): string {
  if (c.action === "Add") return "➕ Add";
  if (c.action === "Remove") return "➖ Remove";
  if (c.action === "Modify" && c.replacement === "True") return "⚠️ Replace";
  if (c.action === "Modify" && c.replacement === "Conditional") return "🔄 Modify (may replace)";
  if (c.action === "Modify") return "🔄 Modify";
  return c.action;
}

function failuresMarkdown(failures: EventRow[]): string {
  const rows = failures.map((f) => [f.logicalId, f.resourceType, f.status, f.reason ?? "no reason given"]);
  return `**Failed resources**\n\n${table(["Logical ID", "Type", "Status", "Reason"], rows)}`;
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${s % 60}s`;
}
