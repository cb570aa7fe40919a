// Runs a bundled action the way the GitHub runner does: `node actions/<name>/dist/index.js` in a fresh process, every
// declared input as INPUT_<NAME> (defaults from action.yml filled in), outputs and the job summary written to the files
// named by GITHUB_OUTPUT and GITHUB_STEP_SUMMARY. What runs is the committed bundle, so these tests also fail when the
// bundle is stale in a way that matters.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse } from "yaml";

export const REPO = resolve(__dirname, "../../..");

export interface ActionRun {
  code: number | null;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  summary: string;
  /** Lines of `::error::` commands, decoded. */
  errors: string[];
}

interface ActionYaml {
  inputs?: Record<string, { default?: string; required?: boolean }>;
}

export async function runAction(
  name: string,
  inputs: Record<string, string>,
  env: Record<string, string | undefined> = {},
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<ActionRun> {
  const meta = parse(readFileSync(join(REPO, "actions", name, "action.yml"), "utf8")) as ActionYaml;
  const declared = meta.inputs ?? {};
  const unknown = Object.keys(inputs).filter((k) => !(k in declared));
  if (unknown.length) throw new Error(`actions/${name} declares no input(s) ${unknown.join(", ")}`);

  const dir = mkdtempSync(join(tmpdir(), `action-${name}-`));
  const outputFile = join(dir, "output");
  const summaryFile = join(dir, "summary");
  for (const f of [outputFile, summaryFile, join(dir, "env"), join(dir, "state")]) writeFileSync(f, "");

  const childEnv: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: dir,
    GITHUB_OUTPUT: outputFile,
    GITHUB_STEP_SUMMARY: summaryFile,
    GITHUB_ENV: join(dir, "env"),
    GITHUB_STATE: join(dir, "state"),
    GITHUB_WORKSPACE: options.cwd ?? REPO,
    // No instance metadata lookups and no proxy detours for loopback servers.
    AWS_EC2_METADATA_DISABLED: "true",
    NO_PROXY: "127.0.0.1,localhost",
  };
  for (const [input, spec] of Object.entries(declared)) {
    // The runner evaluates ${{ }} defaults; these tests pass such inputs explicitly when they matter.
    const fallback = spec.default !== undefined && !String(spec.default).includes("${{") ? String(spec.default) : "";
    childEnv[`INPUT_${input.replace(/ /g, "_").toUpperCase()}`] = inputs[input] ?? fallback;
  }
  for (const [k, v] of Object.entries(env)) if (v !== undefined) childEnv[k] = v;

  const child = spawn(process.execPath, [join(REPO, "actions", name, "dist", "index.js")], {
    cwd: options.cwd ?? REPO,
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  const code = await new Promise<number | null>((done, fail) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`actions/${name} did not finish within ${options.timeoutMs ?? 60_000} ms\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 60_000);
    child.on("error", fail);
    child.on("close", (c) => {
      clearTimeout(timer);
      done(c);
    });
  });

  return {
    code,
    stdout,
    stderr,
    outputs: parseOutputFile(readFileSync(outputFile, "utf8")),
    summary: readFileSync(summaryFile, "utf8"),
    errors: stdout
      .split("\n")
      .filter((l) => l.startsWith("::error"))
      .map((l) => decodeCommand(l.slice(l.indexOf("::", 2) + 2))),
  };
}

/** The file-command format @actions/core writes: `name<<DELIM\nvalue\nDELIM\n`. */
export function parseOutputFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<]+)<<(.+)$/.exec(lines[i]!);
    if (!m) continue;
    const [, name, delim] = m;
    const value: string[] = [];
    for (i++; i < lines.length && lines[i] !== delim; i++) value.push(lines[i]!);
    out[name!] = value.join("\n");
  }
  return out;
}

function decodeCommand(s: string): string {
  return s.replace(/%0D/g, "\r").replace(/%0A/g, "\n").replace(/%25/g, "%");
}
