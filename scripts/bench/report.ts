// Turning samples into the table, the target checks and the generated part of docs/benchmarks.md.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { GROUPS, type Case, type Group } from "./cases";
import type { Sample } from "./measure";

export interface CaseResult {
  case: Case;
  samples: Sample[];
}

export interface Row {
  id: string;
  group: Group;
  tool: Case["tool"];
  label: string;
  runs: number;
  /** Median, min and max throughput in MB/s (10^6 bytes). */
  mbps: number;
  mbpsMin: number;
  mbpsMax: number;
  filesPerS: number;
  /** Largest peak RSS over the runs, MiB. */
  rssMiB: number;
  /** Median CPU seconds per GiB moved, and per file. */
  cpuPerGiB: number;
  cpuMsPerFile: number;
  bootCpuS?: number;
}

export interface Target {
  what: string;
  goal: string;
  measured: string;
  met: boolean | undefined;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function rows(results: CaseResult[]): Row[] {
  return results
    .filter((r) => r.samples.length > 0)
    .map(({ case: c, samples }) => {
      const mbps = samples.map((s) => c.bytes / 1e6 / s.seconds);
      const secs = median(samples.map((s) => s.seconds));
      const cpu = median(samples.map((s) => s.cpuS));
      const boot = samples.map((s) => s.bootCpuS).filter((b): b is number => b !== undefined);
      return {
        id: c.id,
        group: c.group,
        tool: c.tool,
        label: c.label,
        runs: samples.length,
        mbps: median(mbps),
        mbpsMin: Math.min(...mbps),
        mbpsMax: Math.max(...mbps),
        filesPerS: c.files / secs,
        rssMiB: Math.max(...samples.map((s) => s.rssMiB)),
        cpuPerGiB: cpu / (c.bytes / 2 ** 30),
        cpuMsPerFile: (cpu * 1000) / c.files,
        ...(boot.length ? { bootCpuS: median(boot) } : {}),
      };
    });
}

const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "-");
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : "-");

/** The results table: per group, the bridge first, each peer with the bridge's ratio to it. */
export function resultsTable(all: Row[]): string {
  const lines = [
    "| direction | client | MB/s (min-max) | files/s | peak RSS MiB | CPU s/GiB | CPU ms/file | bridge ÷ this: speed | bridge ÷ this: CPU/GiB |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const group of Object.keys(GROUPS) as Group[]) {
    const inGroup = all.filter((r) => r.group === group);
    const bridge = inGroup.find((r) => r.tool === "bridge");
    const small = group.endsWith("small");
    for (const r of inGroup) {
      const peer = bridge && r !== bridge;
      lines.push(
        `| ${GROUPS[group]} | ${r.label} | ${f(r.mbps, 1)} (${f(r.mbpsMin, 0)}-${f(r.mbpsMax, 0)}) | ` +
          `${f(r.filesPerS, small ? 0 : 2)} | ${f(r.rssMiB)} | ${f(r.cpuPerGiB, 2)} | ${f(r.cpuMsPerFile, small ? 2 : 0)} | ` +
          `${peer ? ratio(small ? bridge.filesPerS : bridge.mbps, small ? r.filesPerS : r.mbps) : ""} | ` +
          `${peer ? ratio(bridge.cpuPerGiB, r.cpuPerGiB) : ""} |`,
      );
    }
  }
  return lines.join("\n");
}

export function targets(all: Row[], largeBytes: number): Target[] {
  const get = (group: Group, tool: Row["tool"]) => all.find((r) => r.group === group && r.tool === tool);
  const out: Target[] = [];
  const speed = (what: string, group: Group, peer: Row["tool"], goal: number, unit: "mbps" | "filesPerS") => {
    const b = get(group, "bridge");
    const p = get(group, peer);
    const value = b && p ? b[unit] / p[unit] : NaN;
    out.push({
      what,
      goal: `>= ${goal}x`,
      measured: Number.isFinite(value) ? `${value.toFixed(2)}x (${f(b![unit], 0)} vs ${f(p![unit], 0)})` : "-",
      met: Number.isFinite(value) ? value >= goal : undefined,
    });
  };
  speed("large S3 -> SFTP vs rclone", "s3-sftp-large", "rclone", 1.2, "mbps");
  speed("large SFTP -> S3 vs plain SDK upload", "sftp-s3-large", "sdk", 0.9, "mbps");
  speed("large SFTP -> S3 vs rclone", "sftp-s3-large", "rclone", 1.2, "mbps");
  speed("small files S3 -> SFTP vs rclone (files/s)", "s3-sftp-small", "rclone", 1.5, "filesPerS");
  speed("small files SFTP -> S3 vs rclone (files/s)", "sftp-s3-small", "rclone", 1.5, "filesPerS");
  const fullSize = largeBytes >= 2 ** 30;
  for (const group of ["s3-sftp-large", "sftp-s3-large"] as const) {
    const b = get(group, "bridge");
    out.push({
      what: `peak RSS, bridge ${group === "s3-sftp-large" ? "push" : "pull"} of the large file`,
      goal: "< 150 MiB" + (fullSize ? "" : " (on 1 GiB; this run was smaller)"),
      measured: b ? `${f(b.rssMiB)} MiB` : "-",
      met: b ? b.rssMiB < 150 : undefined,
    });
  }
  for (const group of ["s3-sftp-large", "sftp-s3-large"] as const) {
    const b = get(group, "bridge");
    const p = get(group, "rclone");
    out.push({
      what: `CPU s/GiB, bridge ${group === "s3-sftp-large" ? "push" : "pull"} vs rclone`,
      goal: "<= rclone",
      measured: b && p ? `${f(b.cpuPerGiB, 2)} vs ${f(p.cpuPerGiB, 2)}` : "-",
      met: b && p ? b.cpuPerGiB <= p.cpuPerGiB : undefined,
    });
  }
  return out;
}

export function targetsTable(list: Target[]): string {
  return [
    "| target | goal | measured | met |",
    "| --- | --- | --- | --- |",
    ...list.map(
      (t) => `| ${t.what} | ${t.goal} | ${t.measured} | ${t.met === undefined ? "-" : t.met ? "yes" : "**no**"} |`,
    ),
  ].join("\n");
}

export const START = "<!-- bench:results:start (written by `npm run bench`; edit outside these markers) -->";
export const END = "<!-- bench:results:end -->";

/** Replaces the generated block of the document, keeping everything written by hand around it. */
export async function writeDoc(file: string, generated: string, skeleton: string): Promise<void> {
  const block = `${START}\n${generated.trim()}\n${END}`;
  let text = existsSync(file) ? await readFile(file, "utf8") : skeleton;
  const a = text.indexOf(START.slice(0, 30));
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + END.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  await writeFile(file, text);
}
