// Turning samples into the table, the target checks and the generated part of docs/benchmarks.md.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { GROUPS, type Case, type Group } from "./cases";
import { mib, type BenchSizes, type ServerKind } from "./env";
import type { Sample } from "./measure";

export interface CaseResult {
  case: Case;
  samples: Sample[];
  /** Runs that failed (the benchmark goes on with the others), as their error's first line. */
  failures: string[];
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
  filesPerSMin: number;
  filesPerSMax: number;
  /** Largest peak RSS over the runs, MiB. */
  rssMiB: number;
  /** Median CPU seconds per GiB moved, and per file. */
  cpuPerGiB: number;
  cpuMsPerFile: number;
  bootCpuS?: number;
  /**
   * Through the latency proxy: the mean chunk lateness over the runs, the worst run's p99 and max, and the proxy's
   * median CPU seconds.
   */
  proxyMeanLatenessMs?: number;
  proxyP99LatenessMs?: number;
  proxyMaxLatenessMs?: number;
  proxyCpuS?: number;
  failures: number;
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
    .map(({ case: c, samples, failures }) => {
      const mbps = samples.map((s) => c.bytes / 1e6 / s.seconds);
      const secs = median(samples.map((s) => s.seconds));
      const cpu = median(samples.map((s) => s.cpuS));
      const boot = samples.map((s) => s.bootCpuS).filter((b): b is number => b !== undefined);
      const proxy = samples.map((s) => s.proxy).filter((p) => p !== undefined);
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
        filesPerSMin: c.files / Math.max(...samples.map((s) => s.seconds)),
        filesPerSMax: c.files / Math.min(...samples.map((s) => s.seconds)),
        rssMiB: Math.max(...samples.map((s) => s.rssMiB)),
        cpuPerGiB: cpu / (c.bytes / 2 ** 30),
        cpuMsPerFile: (cpu * 1000) / c.files,
        ...(boot.length ? { bootCpuS: median(boot) } : {}),
        ...(proxy.length
          ? {
              proxyMeanLatenessMs:
                proxy.reduce((n, p) => n + p.meanLatenessMs * p.chunks, 0) /
                Math.max(
                  1,
                  proxy.reduce((n, p) => n + p.chunks, 0),
                ),
              proxyP99LatenessMs: Math.max(...proxy.map((p) => p.p99LatenessMs)),
              proxyMaxLatenessMs: Math.max(...proxy.map((p) => p.maxLatenessMs)),
              proxyCpuS: median(proxy.map((p) => p.cpuS)),
            }
          : {}),
        failures: failures.length,
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

export interface Markers {
  start: string;
  end: string;
}

/** The loopback table's markers (a run at +0 ms against OpenSSH only, as before runs over distance existed). */
export const LOOPBACK_MARKERS: Markers = { start: START, end: END };

/** One marker pair per server for the runs over distance, so neither run overwrites the loopback table or the other. */
export function distanceMarkers(server: ServerKind): Markers {
  return {
    start: `<!-- bench:distance-${server}:start (written by \`npm run bench -- --rtt ... --server ${server}\`; edit outside these markers) -->`,
    end: `<!-- bench:distance-${server}:end -->`,
  };
}

/** Replaces the generated block of the document, keeping everything written by hand around it. */
export async function writeDoc(
  file: string,
  generated: string,
  skeleton: string,
  markers: Markers = LOOPBACK_MARKERS,
): Promise<void> {
  const block = `${markers.start}\n${generated.trim()}\n${markers.end}`;
  let text = existsSync(file) ? await readFile(file, "utf8") : skeleton;
  // The start marker is found by its name only, so a reworded explanation inside it is still replaced.
  const a = text.indexOf(markers.start.slice(0, markers.start.indexOf(":start") + ":start".length));
  const b = text.indexOf(markers.end);
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + markers.end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  await writeFile(file, text);
}

/** The runs against one server at one added RTT. */
export interface Leg {
  server: ServerKind;
  rttMs: number;
  rows: Row[];
  /** The proxy's scheduling ("SCHED_FIFO 10"), for rttMs > 0. */
  proxyScheduling?: string;
  failures: { id: string; message: string }[];
}

const DISTANCE_GROUPS: Group[] = ["s3-sftp-large", "sftp-s3-large", "s3-sftp-small", "sftp-s3-small"];

function distanceGroupLabel(group: Group, sizes: BenchSizes): string {
  const direction = group.startsWith("s3-sftp") ? "S3 -> SFTP" : "SFTP -> S3";
  return group.endsWith("large")
    ? `${direction}, ${mib(sizes.largeBytes)} MiB file (MB/s)`
    : `${direction}, ${sizes.smallCount} x ${sizes.smallBytes / 1024} KiB (files/s)`;
}

/**
 * Side by side per added RTT: the bridge, rclone and OpenSSH sftp on the same bytes, and the bridge's ratios. MB/s for
 * the large file, files/s for the small ones; medians with the runs' range.
 */
export function distanceTable(legs: Leg[], sizes: BenchSizes, defaultCipher: string): string {
  const lines = [
    `| RTT | direction | bridge | rclone | OpenSSH sftp (aes128-gcm) | OpenSSH sftp (${defaultCipher}, default) | bridge ÷ OpenSSH sftp (aes128-gcm) | bridge ÷ rclone |`,
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const leg of legs) {
    for (const group of DISTANCE_GROUPS) {
      const get = (tool: Row["tool"]) => leg.rows.find((r) => r.group === group && r.tool === tool);
      const small = group.endsWith("small");
      const value = (r: Row | undefined) => (r ? (small ? r.filesPerS : r.mbps) : NaN);
      const cell = (r: Row | undefined) =>
        r
          ? small
            ? `${f(r.filesPerS, 0)} (${f(r.filesPerSMin, 0)}-${f(r.filesPerSMax, 0)})`
            : `${f(r.mbps, 1)} (${f(r.mbpsMin, 0)}-${f(r.mbpsMax, 0)})`
          : "-";
      const bridge = get("bridge");
      if (!bridge && !get("rclone")) continue;
      const sftpGcm = get("sftp-gcm");
      const sftpDefault = get("sftp");
      lines.push(
        `| +${leg.rttMs} ms | ${distanceGroupLabel(group, sizes)} | ${cell(bridge)} | ${cell(get("rclone"))} | ` +
          `${small ? "" : cell(sftpGcm)} | ${small ? "" : cell(sftpDefault)} | ` +
          `${small ? "" : ratio(value(bridge), value(sftpGcm))} | ${ratio(value(bridge), value(get("rclone")))} |`,
      );
    }
  }
  return lines.join("\n");
}

/** Every client's figures per added RTT, with what the proxy saw while it ran. */
export function distanceDetails(legs: Leg[], sizes: BenchSizes): string {
  const lines = [
    "| RTT | direction | client | MB/s (min-max) | files/s | CPU s/GiB | peak RSS MiB | proxy lateness p99 / max, ms | proxy CPU s |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const leg of legs) {
    for (const group of DISTANCE_GROUPS) {
      for (const r of leg.rows.filter((row) => row.group === group)) {
        const small = group.endsWith("small");
        lines.push(
          `| +${leg.rttMs} ms | ${distanceGroupLabel(group, sizes).replace(/ \((MB|files)\/s\)$/, "")} | ${r.label} | ` +
            `${f(r.mbps, 1)} (${f(r.mbpsMin, 0)}-${f(r.mbpsMax, 0)}) | ${f(r.filesPerS, small ? 0 : 2)} | ` +
            `${f(r.cpuPerGiB, 2)} | ${f(r.rssMiB)} | ` +
            `${r.proxyMaxLatenessMs === undefined ? "" : `${f(r.proxyP99LatenessMs ?? NaN, 1)} / ${f(r.proxyMaxLatenessMs, 1)}`} | ` +
            `${r.proxyCpuS === undefined ? "" : f(r.proxyCpuS, 2)} |`,
        );
      }
    }
  }
  return lines.join("\n");
}

/** One line per proxied RTT: how late the proxy's timers were over all its runs (the RTT actually added). */
export function proxySummary(legs: Leg[]): string[] {
  return legs
    .filter((leg) => leg.rttMs > 0)
    .map((leg) => {
      const p99 = leg.rows.map((r) => r.proxyP99LatenessMs).filter((v) => v !== undefined);
      const max = leg.rows.map((r) => r.proxyMaxLatenessMs).filter((v) => v !== undefined);
      const mean = leg.rows.map((r) => r.proxyMeanLatenessMs).filter((v) => v !== undefined);
      return (
        `+${leg.rttMs} ms: proxy at ${leg.proxyScheduling ?? "?"}; chunk lateness (sent minus due, per direction) ` +
        `mean ${f(Math.min(...mean), 2)}-${f(Math.max(...mean), 2)} ms per client, p99 <= ${f(Math.max(...p99), 1)} ms ` +
        `in every run, max ${f(Math.max(...max), 1)} ms`
      );
    });
}

/** Runs that failed, so a table with a missing row says why. */
export function failureLines(legs: Leg[]): string[] {
  return legs.flatMap((leg) => leg.failures.map((x) => `+${leg.rttMs} ms, ${x.id}: ${x.message}`));
}
