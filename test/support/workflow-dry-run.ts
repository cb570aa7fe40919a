// A dry run of a workflow's jobs, step by step, the way the GitHub runner would take them: `${{ }}` expressions
// evaluated (contexts github, vars, needs, steps, env; the operators and functions the workflows use), `if:` decided,
// outputs passed from step to step and job to job through GITHUB_OUTPUT files. The repository's own actions run for
// real (node actions are their committed bundles, `run:` steps are the workflow's own shell); what cannot run here is
// stood in for, each by the smallest thing that does the same job:
//   - actions/checkout: nothing (the workspace already holds the repository);
//   - actions/upload-artifact / download-artifact: a folder per artifact name;
//   - aws-actions/configure-aws-credentials: the local account's credentials and the region asked for, handed to the
//     later steps of the job only (before it, a step has no credentials, as on a runner);
//   - ./actions/build-lambda (a composite that runs scripts/package.ts inside a container): scripts/package.ts on
//     this machine, as its use-container: false mode runs it.
// Nothing else is accepted: a workflow step this runner does not know fails the dry run instead of being skipped.
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { parse } from "yaml";
import { buildPackage, type Architecture } from "../../scripts/package";
import { parseOutputFile, REPO, runAction, type ActionRun } from "../integration/actions/run-action";

const exec = promisify(execFile);

export interface WorkflowStep {
  id?: string;
  name?: string;
  if?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
}

export interface WorkflowJob {
  if?: string;
  needs?: string | string[];
  environment?: string | { name: string };
  outputs?: Record<string, string>;
  steps: WorkflowStep[];
}

export interface StepRecord {
  label: string;
  skipped: boolean;
  ok: boolean;
  outputs: Record<string, string>;
  /** For an action or a shell step: what it printed, for a failing test's message. */
  log?: string;
  run?: ActionRun;
}

export interface JobRecord {
  job: string;
  skipped: boolean;
  ok: boolean;
  outputs: Record<string, string>;
  steps: StepRecord[];
}

export interface DryRunOptions {
  /** The run's workspace (GITHUB_WORKSPACE): the repository's files the steps read, and their build/ and artifact/. */
  workspace: string;
  /** The github context: event, ref, sha, repository, token, run_id, ... */
  github: Record<string, unknown>;
  /** Repository variables, then each environment's own (which win, as on GitHub). */
  vars: Record<string, string>;
  environments: Record<string, Record<string, string>>;
  /** Environment every step gets: service endpoints, the GitHub API stand-in. */
  env: () => Record<string, string>;
  /** What configure-aws-credentials hands to the job's later steps (besides AWS_REGION). */
  credentials: () => Record<string, string>;
  /** Inputs put over a repository action's `with:` (e.g. poll intervals of 0 s), by action folder name. */
  inputOverrides?: Record<string, Record<string, string>>;
  /** Directories put first on PATH for `run:` steps (stand-ins for tools such as gh). */
  path?: string[];
  timeoutMs?: number;
}

/** Runs the jobs of one workflow in the order given (each job's needs must come earlier), as one run would. */
export async function dryRun(workflowFile: string, jobs: string[], options: DryRunOptions): Promise<JobRecord[]> {
  const workflow = parse(readFileSync(workflowFile, "utf8")) as { jobs: Record<string, WorkflowJob> };
  const artifacts = await mkdtemp(path.join(tmpdir(), "dry-run-artifacts-"));
  const eventPath = path.join(artifacts, "event.json");
  writeFileSync(eventPath, JSON.stringify(options.github.event ?? {}));
  const done: Record<string, JobRecord> = {};
  const records: JobRecord[] = [];
  for (const name of jobs) {
    const job = workflow.jobs[name];
    if (!job) throw new Error(`${workflowFile} has no job ${name}`);
    const needs = [job.needs ?? []].flat();
    const missing = needs.filter((n) => !done[n]);
    if (missing.length) throw new Error(`job ${name} needs ${missing.join(", ")}, not run before it`);
    const record = await runJob(name, job, { ...options, artifacts, eventPath }, done);
    done[name] = record;
    records.push(record);
  }
  return records;
}

async function runJob(
  name: string,
  job: WorkflowJob,
  options: DryRunOptions & { artifacts: string; eventPath: string },
  finished: Record<string, JobRecord>,
): Promise<JobRecord> {
  const environment = typeof job.environment === "string" ? job.environment : job.environment?.name;
  const needs = Object.fromEntries(
    [job.needs ?? []].flat().map((n) => [n, { outputs: finished[n]!.outputs, result: result(finished[n]!) }]),
  );
  const vars = { ...options.vars, ...(environment ? (options.environments[environment] ?? {}) : {}) };
  const steps: Record<string, { outputs: Record<string, string>; outcome: string }> = {};
  const context = { github: options.github, vars, needs, steps, env: {} };
  const record: JobRecord = { job: name, skipped: false, ok: true, outputs: {}, steps: [] };
  const jobDependenciesOk = Object.values(needs).every((n) => n.result === "success");
  if (!jobDependenciesOk || !truthy(evaluate(withStatus(job.if), context, { failed: false }))) {
    record.skipped = true;
    return record;
  }

  let awsEnv: Record<string, string> = {};
  for (const [i, step] of job.steps.entries()) {
    const label = `${name} / ${step.id ?? step.name ?? step.uses ?? `step ${i + 1}`}`;
    const state = { failed: !record.ok };
    if (!truthy(evaluate(withStatus(step.if), context, state))) {
      record.steps.push({ label, skipped: true, ok: true, outputs: {} });
      if (step.id) steps[step.id] = { outputs: {}, outcome: "skipped" };
      continue;
    }
    const inputs = Object.fromEntries(
      Object.entries(step.with ?? {}).map(([k, v]) => [k, interpolate(String(v), context, state)]),
    );
    const stepEnv = Object.fromEntries(
      Object.entries(step.env ?? {}).map(([k, v]) => [k, interpolate(String(v), context, state)]),
    );
    const base = { ...options.env(), ...awsEnv, ...githubEnv(options), GITHUB_EVENT_PATH: options.eventPath };
    let done: StepRecord;
    if (step.uses?.startsWith("actions/checkout@")) {
      done = { label, skipped: false, ok: true, outputs: {} };
    } else if (step.uses?.startsWith("actions/upload-artifact@")) {
      const target = path.join(options.artifacts, inputs.name ?? "artifact");
      mkdirSync(target, { recursive: true });
      const source = path.join(options.workspace, inputs.path ?? "");
      cpSync(source, path.join(target, path.basename(source)), { recursive: true });
      done = { label, skipped: false, ok: true, outputs: {} };
    } else if (step.uses?.startsWith("actions/download-artifact@")) {
      const source = path.join(options.artifacts, inputs.name ?? "artifact");
      cpSync(source, path.join(options.workspace, inputs.path ?? "."), { recursive: true });
      done = { label, skipped: false, ok: true, outputs: {} };
    } else if (step.uses?.startsWith("aws-actions/configure-aws-credentials@")) {
      const ok = Boolean(inputs["role-to-assume"] && inputs["aws-region"]);
      if (ok) awsEnv = { ...options.credentials(), AWS_REGION: inputs["aws-region"]! };
      done = {
        label,
        skipped: false,
        ok,
        outputs: {},
        log: ok ? undefined : `role-to-assume and aws-region must be set: ${JSON.stringify(inputs)}`,
      };
    } else if (step.uses === "./actions/build-lambda") {
      done = await buildLambda(label, inputs, options.workspace);
    } else if (step.uses?.startsWith("./actions/")) {
      const action = step.uses.slice("./actions/".length);
      const run = await runAction(
        action,
        { ...inputs, ...(options.inputOverrides?.[action] ?? {}) },
        { ...base, ...stepEnv },
        { cwd: options.workspace, timeoutMs: options.timeoutMs ?? 120_000 },
      );
      done = {
        label,
        skipped: false,
        ok: run.code === 0,
        outputs: run.outputs,
        log: run.stdout + run.stderr,
        run,
      };
    } else if (step.run !== undefined) {
      done = await shell(label, interpolate(step.run, context, state), { ...base, ...stepEnv }, options);
    } else {
      throw new Error(`${label}: the dry run does not know how to run ${step.uses ?? "this step"}`);
    }
    record.steps.push(done);
    if (step.id) steps[step.id] = { outputs: done.outputs, outcome: done.ok ? "success" : "failure" };
    if (!done.ok) record.ok = false;
  }
  for (const [key, expr] of Object.entries(job.outputs ?? {})) {
    record.outputs[key] = interpolate(expr, context, { failed: !record.ok });
  }
  return record;
}

/** An `if:` without a status function is implicitly `success() && (...)`. */
function withStatus(condition: string | undefined): string {
  if (!condition) return "success()";
  const bare = condition.replace(/^\s*\$\{\{([\s\S]*)\}\}\s*$/, "$1");
  return /\b(success|failure|always|cancelled)\(/.test(bare) ? bare : `success() && (${bare})`;
}

function result(job: JobRecord): string {
  return job.skipped ? "skipped" : job.ok ? "success" : "failure";
}

function githubEnv(options: DryRunOptions): Record<string, string> {
  const g = options.github;
  return {
    GITHUB_REPOSITORY: String(g.repository ?? ""),
    GITHUB_SHA: String(g.sha ?? ""),
    GITHUB_REF: String(g.ref ?? ""),
    GITHUB_RUN_ID: String(g.run_id ?? ""),
    GITHUB_RUN_ATTEMPT: "1",
    GITHUB_EVENT_NAME: String(g.event_name ?? ""),
  };
}

async function buildLambda(label: string, inputs: Record<string, string>, workspace: string): Promise<StepRecord> {
  const architecture = (inputs.architecture || "arm64") as Architecture;
  const built = await buildPackage({ architecture, outDir: path.join(workspace, "build"), root: REPO });
  return {
    label,
    skipped: false,
    ok: true,
    outputs: {
      "zip-path": path.relative(workspace, built.zipPath),
      sha256: built.sha256,
      size: String(built.size),
    },
  };
}

async function shell(
  label: string,
  script: string,
  env: Record<string, string>,
  options: DryRunOptions,
): Promise<StepRecord> {
  const output = path.join(await mkdtemp(path.join(tmpdir(), "dry-run-step-")), "output");
  writeFileSync(output, "");
  const pathValue = [...(options.path ?? []), process.env.PATH ?? ""].join(path.delimiter);
  const ran = await exec("bash", ["-eo", "pipefail", "-c", script], {
    cwd: options.workspace,
    env: { ...env, PATH: pathValue, GITHUB_OUTPUT: output, HOME: tmpdir() },
  }).then(
    (r) => ({ code: 0, log: r.stdout + r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, log: `${e.stdout}${e.stderr}` }),
  );
  const text = readFileSync(output, "utf8");
  // Shell steps write name=value lines; actions write the name<<DELIM form.
  const outputs = {
    ...Object.fromEntries(
      text
        .split("\n")
        .filter((l) => /^[\w-]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    ),
    ...parseOutputFile(text),
  };
  return { label, skipped: false, ok: ran.code === 0, outputs, log: ran.log };
}

// ---------------------------------------------------------------- expressions

type Value = unknown;

/** Replaces each `${{ expr }}` in a string with the expression's value as text (GitHub's string coercion). */
export function interpolate(text: string, context: Record<string, unknown>, state: { failed: boolean }): string {
  return text.replace(/\$\{\{([\s\S]*?)\}\}/g, (_m, expr: string) => asText(evaluate(expr, context, state)));
}

function asText(v: Value): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function truthy(v: Value): boolean {
  return !(v === false || v === 0 || v === "" || v === null || v === undefined || Number.isNaN(v));
}

/** GitHub's loose equality: strings compare case-insensitively; mixed types compare as numbers. */
function equal(a: Value, b: Value): boolean {
  if (typeof a === "string" && typeof b === "string") return a.toLowerCase() === b.toLowerCase();
  if (typeof a === typeof b) return a === b;
  const n = (x: Value) => (x === null || x === undefined ? 0 : x === "" ? 0 : Number(x));
  return n(a) === n(b);
}

/** The expression subset the workflows use: literals, context paths, ! == != && || ( ), and a few functions. */
export function evaluate(expr: string, context: Record<string, unknown>, state: { failed: boolean }): Value {
  const tokens = expr.match(/'(?:[^']|'')*'|==|!=|&&|\|\||[()!,]|[A-Za-z_][\w.-]*|\d+(?:\.\d+)?|\S/g) ?? [];
  let i = 0;
  const peek = () => tokens[i];
  const take = (expected?: string) => {
    const t = tokens[i++];
    if (expected !== undefined && t !== expected) throw new Error(`expression ${expr}: expected ${expected}, got ${t}`);
    return t;
  };
  const functions: Record<string, (...args: Value[]) => Value> = {
    success: () => !state.failed,
    failure: () => state.failed,
    always: () => true,
    cancelled: () => false,
    startsWith: (a, b) => asText(a).toLowerCase().startsWith(asText(b).toLowerCase()),
    endsWith: (a, b) => asText(a).toLowerCase().endsWith(asText(b).toLowerCase()),
    contains: (a, b) =>
      Array.isArray(a) ? a.some((x) => equal(x, b)) : asText(a).toLowerCase().includes(asText(b).toLowerCase()),
  };
  const primary = (): Value => {
    const t = take();
    if (t === undefined) throw new Error(`expression ${expr}: ends too soon`);
    if (t === "(") {
      const v = or();
      take(")");
      return v;
    }
    if (t === "!") return !truthy(primary());
    if (t.startsWith("'")) return t.slice(1, -1).replace(/''/g, "'");
    if (/^\d/.test(t)) return Number(t);
    if (t === "true" || t === "false") return t === "true";
    if (t === "null") return null;
    if (peek() === "(") {
      const fn = functions[t];
      if (!fn) throw new Error(`expression ${expr}: the dry run does not implement ${t}()`);
      take("(");
      const args: Value[] = [];
      while (peek() !== ")") {
        args.push(or());
        if (peek() === ",") take(",");
      }
      take(")");
      return fn(...args);
    }
    // A context path; a missing property is null, as on GitHub.
    return t.split(".").reduce<Value>((v, key) => (v && typeof v === "object" ? (v as never)[key] : null), context);
  };
  const comparison = (): Value => {
    let left = primary();
    while (peek() === "==" || peek() === "!=") {
      const op = take();
      const right = primary();
      left = op === "==" ? equal(left, right) : !equal(left, right);
    }
    return left;
  };
  const and = (): Value => {
    let left = comparison();
    while (peek() === "&&") {
      take();
      const right = comparison();
      left = truthy(left) ? right : left;
    }
    return left;
  };
  function or(): Value {
    let left = and();
    while (peek() === "||") {
      take();
      const right = and();
      left = truthy(left) ? left : right;
    }
    return left;
  }
  const value = or();
  if (i !== tokens.length) throw new Error(`expression ${expr}: unexpected ${tokens[i]}`);
  return value;
}
