/**
 * Markdown for job summaries and pull-request comments. Plain strings, so the same text goes to `core.summary`, to a PR
 * comment and into a test assertion.
 */

/** A table cell: pipes and newlines would break the table, HTML-ish text would be rendered. */
export function cell(value: unknown): string {
  const text = value === undefined || value === null || value === "" ? "-" : String(value);
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/\|/g, "\\|")
    .replace(/\r?\n/g, "<br>");
}

/** Inline code; backticks inside would end it early, so the fence grows to fit. */
export function code(value: string): string {
  const longest = Math.max(0, ...(value.match(/`+/g) ?? []).map((m) => m.length));
  const fence = "`".repeat(longest + 1);
  return `${fence}${longest ? ` ${value} ` : value}${fence}`;
}

/** Cells are escaped with `cell()` unless already wrapped by `code()`-style callers via `raw`. */
export function table(headers: string[], rows: unknown[][], options: { raw?: boolean } = {}): string {
  const fmt = (v: unknown) => (options.raw ? String(v ?? "-") : cell(v));
  const lines = [`| ${headers.map(cell).join(" | ")} |`, `|${headers.map(() => " --- ").join("|")}|`];
  for (const row of rows) lines.push(`| ${row.map(fmt).join(" | ")} |`);
  return lines.join("\n");
}

export function details(summary: string, body: string): string {
  return `<details>\n<summary>${summary}</summary>\n\n${body}\n\n</details>`;
}

/** Link to the current workflow run, when the runner's variables say which one. */
export function runUrl(env: NodeJS.ProcessEnv): string | undefined {
  const { GITHUB_SERVER_URL: server, GITHUB_REPOSITORY: repo, GITHUB_RUN_ID: id, GITHUB_RUN_ATTEMPT: attempt } = env;
  if (!server || !repo || !id) return undefined;
  return `${server}/${repo}/actions/runs/${id}${attempt ? `/attempts/${attempt}` : ""}`;
}
