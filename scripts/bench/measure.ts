// Running one measured process: external tools under GNU time (CPU seconds, peak RSS), the bridge and the SDK upload
// as a bundled Node child that reports its own figures (see child.ts).
import { spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ChildJob, ChildResult } from "./child";

/** What the latency proxy saw during one run (lateness: when a chunk left minus when it was due). */
export interface ProxySample {
  maxLatenessMs: number;
  p99LatenessMs: number;
  meanLatenessMs: number;
  chunks: number;
  /** CPU seconds of the proxy process during the run. */
  cpuS: number;
}

export interface Sample {
  /** Seconds the transfer took (see Measurement notes in docs/benchmarks.md for what is included). */
  seconds: number;
  /** CPU seconds (user + system) of the client process and its children. */
  cpuS: number;
  /** Peak RSS of the client process (the largest of its processes), MiB. */
  rssMiB: number;
  /** Node start-up CPU seconds, for the Node children only (not included in cpuS). */
  bootCpuS?: number;
  /** Resident set after start-up, for the Node children only. */
  bootRssMiB?: number;
  /** Free text for the progress log (memory peaks of the Node children). */
  detail?: string;
  /** Set when the client went through the latency proxy. */
  proxy?: ProxySample;
}

const TIME = "/usr/bin/time";

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runProcess(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout = (stdout + c.toString("utf8")).slice(-100_000)));
    child.stderr.on("data", (c: Buffer) => (stderr = (stderr + c.toString("utf8")).slice(-20_000)));
    child.stdin.end();
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30 * 60_000);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${err.message}`, { cause: err }));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs an external client under GNU time; wall time as seen from here (process start-up included). */
export async function measureCommand(
  scratch: string,
  command: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
): Promise<Sample> {
  const out = path.join(scratch, `time-${process.pid}-${Date.now()}.txt`);
  const t0 = performance.now();
  const exit = await runProcess(TIME, ["-f", "%U %S %M", "-o", out, command, ...args], { env });
  const seconds = (performance.now() - t0) / 1000;
  const timeText = await readFile(out, "utf8").catch(() => "");
  await rm(out, { force: true });
  if (exit.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${exit.code ?? exit.signal}\n${exit.stderr.trim()}`);
  }
  // GNU time may prefix "Command exited with non-zero status"; the figures are on the last line.
  const last = timeText.trim().split("\n").pop() ?? "";
  const [user, sys, maxKiB] = last.split(/\s+/).map(Number);
  if (![user, sys, maxKiB].every((n) => Number.isFinite(n)))
    throw new Error(`cannot read GNU time output: ${timeText}`);
  return { seconds, cpuS: (user as number) + (sys as number), rssMiB: (maxKiB as number) / 1024 };
}

/**
 * Bundles child.ts (or another entry of this directory) into node_modules/.cache (so its dependencies resolve from
 * node_modules). With `engineDir`, the engine is taken from that copy of lambda/bridge instead (an earlier version,
 * for --baseline).
 */
export async function buildChild(
  repoRoot: string,
  name = "child",
  engineDir?: string,
  entry = "child.ts",
): Promise<string> {
  const { build } = await import("esbuild");
  const outdir = path.join(repoRoot, "node_modules", ".cache", "s3-sftp-bridge-bench");
  await mkdir(outdir, { recursive: true });
  const outfile = path.join(outdir, `${name}.js`);
  await build({
    entryPoints: [path.join(__dirname, entry)],
    outfile,
    bundle: true,
    platform: "node",
    target: "node24",
    format: "cjs",
    packages: "external",
    logLevel: "warning",
    plugins: engineDir
      ? [
          {
            name: "baseline-engine",
            setup(b) {
              b.onResolve({ filter: /^\.\.\/\.\.\/lambda\/bridge$/ }, () => ({
                path: path.join(engineDir, "index.ts"),
              }));
            },
          },
        ]
      : [],
  });
  return outfile;
}

/** lambda/bridge as it was at a git ref, extracted into `dir`; returns the engine's directory. */
export async function extractEngine(repoRoot: string, ref: string, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const exit = await runProcess("sh", [
    "-c",
    `git -C "$0" archive "$1" lambda/bridge | tar -x -C "$2"`,
    repoRoot,
    ref,
    dir,
  ]);
  if (exit.code !== 0) throw new Error(`cannot extract lambda/bridge at ${ref}: ${exit.stderr.trim()}`);
  return path.join(dir, "lambda", "bridge");
}

export interface NodeChildOptions {
  scratch: string;
  script: string;
  /** Extra flags for node, e.g. --cpu-prof. */
  nodeArgs?: string[];
  /** Another node binary (default: the one running the bench). */
  node?: string;
  env?: NodeJS.ProcessEnv;
}

export async function measureNodeChild(options: NodeChildOptions, job: ChildJob): Promise<Sample & ChildResult> {
  const jobFile = path.join(options.scratch, `job-${process.pid}-${Date.now()}.json`);
  await writeFile(jobFile, JSON.stringify(job));
  try {
    const exit = await runProcess(
      options.node ?? process.execPath,
      [...(options.nodeArgs ?? []), options.script, jobFile],
      {
        env: options.env,
        cwd: options.scratch,
      },
    );
    if (exit.code !== 0)
      throw new Error(`bench child (${job.kind}) exited ${exit.code ?? exit.signal}\n${exit.stderr}`);
    const line = exit.stdout.trim().split("\n").pop() ?? "";
    const result = JSON.parse(line) as ChildResult;
    if (result.failed > 0) {
      throw new Error(`bench child (${job.kind}): ${result.failed} failed, first: ${result.firstError ?? "?"}`);
    }
    if (result.skipped > 0) {
      throw new Error(`bench child (${job.kind}): ${result.skipped} skipped, first: ${result.firstSkipped ?? "?"}`);
    }
    const p = result.peaks;
    return {
      ...result,
      seconds: result.elapsedMs / 1000,
      cpuS: result.cpuS,
      rssMiB: result.maxRssMiB,
      detail:
        `boot ${result.bootRssMiB.toFixed(0)} MiB RSS / ${result.bootCpuS.toFixed(2)} CPU s; peaks: heap ` +
        `${p.heapUsed.toFixed(0)}, external ${p.external.toFixed(0)}, array buffers ${p.arrayBuffers.toFixed(0)} MiB`,
    };
  } finally {
    await rm(jobFile, { force: true });
  }
}

/** First line of a command's output (versions for the machine facts), or "" when it cannot run. */
export async function firstLine(command: string, args: string[]): Promise<string> {
  try {
    const exit = await runProcess(command, args, { timeoutMs: 10_000 });
    return (exit.stdout.trim() || exit.stderr.trim()).split("\n")[0] ?? "";
  } catch {
    return "";
  }
}
