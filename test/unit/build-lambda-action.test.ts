import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { parse } from "yaml";

/**
 * actions/build-lambda: the composite action's metadata (inputs, outputs, steps and the expressions that join them),
 * and its shell (build.sh) run for real in both modes. Docker cannot run here, so the container mode runs against a
 * stand-in `docker` that records its arguments and runs the container's command in the mounted directory, and `npm ci`
 * is a stand-in that records its arguments (node_modules is already installed): what is under test is the glue, the
 * arguments and the outputs; the build in between is the real scripts/package.ts.
 */

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");
const ACTION_DIR = path.join(ROOT, "actions/build-lambda");
const ACTION_TEXT = readFileSync(path.join(ACTION_DIR, "action.yml"), "utf8");
const BUILD_SH = path.join(ACTION_DIR, "build.sh");

interface Step {
  name?: string;
  id?: string;
  if?: string;
  uses?: string;
  with?: Record<string, string | number>;
  shell?: string;
  env?: Record<string, string>;
  run?: string;
}
interface ActionMeta {
  name: string;
  description: string;
  inputs: Record<string, { description: string; required?: boolean; default?: string }>;
  outputs: Record<string, { description: string; value: string }>;
  runs: { using: string; steps: Step[] };
}
const action = parse(ACTION_TEXT) as ActionMeta;

/** Every `${{ ... }}` expression in a value, inner text trimmed. */
const expressions = (text: string) => [...text.matchAll(/\$\{\{([^}]*)\}\}/g)].map((m) => m[1]!.trim());

describe("actions/build-lambda/action.yml", () => {
  it("declares the inputs with defaults and descriptions", () => {
    expect(Object.keys(action.inputs).sort()).toEqual(["architecture", "image", "use-container"]);
    expect(action.inputs.architecture?.default).toBe("arm64");
    expect(action.inputs["use-container"]?.default).toBe("true");
    expect(action.inputs.image?.default).toMatch(/^public\.ecr\.aws\/sam\/build-nodejs24\.x[:@]/);
    for (const [name, input] of Object.entries(action.inputs)) {
      expect([name, input.description.length > 20]).toEqual([name, true]);
      expect([name, input.required]).toEqual([name, false]);
    }
  });

  it("maps each output to the build step's output of the same name", () => {
    expect(Object.keys(action.outputs).sort()).toEqual(["sha256", "size", "zip-path"]);
    for (const [name, output] of Object.entries(action.outputs)) {
      expect(output.value).toBe(`\${{ steps.build.outputs.${name} }}`);
      expect(output.description.length).toBeGreaterThan(10);
    }
    expect(action.runs.steps.some((s) => s.id === "build")).toBe(true);
  });

  it("is a composite action whose expressions name declared inputs and earlier steps' outputs", () => {
    expect(action.runs.using).toBe("composite");
    const ids: string[] = [];
    const planOutputs = ["platform"];
    for (const step of action.runs.steps) {
      const texts = [step.name, step.if, ...Object.values(step.with ?? {}), ...Object.values(step.env ?? {})];
      const all = texts.filter((t): t is string => typeof t === "string").flatMap(expressions);
      if (step.if) all.push(step.if.trim()); // `if:` is an expression without ${{ }}
      for (const expr of all) {
        for (const [, input] of expr.matchAll(/\binputs\.([\w-]+)/g))
          expect(Object.keys(action.inputs)).toContain(input);
        for (const [, id, output] of expr.matchAll(/\bsteps\.([\w-]+)\.outputs\.([\w-]+)/g)) {
          expect(ids).toContain(id); // only steps that ran before
          if (id === "plan") expect(planOutputs).toContain(output);
        }
        // The contexts a composite action may read here (a leading name, not a property further down a path).
        for (const [, ctx] of expr.matchAll(/(?<![\w.-])([a-z_]\w*)\./g))
          expect(["inputs", "steps", "runner"]).toContain(ctx);
      }
      if (step.id) ids.push(step.id);
    }
  });

  it("keeps inputs out of shell text and runs every shell step with bash", () => {
    for (const step of action.runs.steps.filter((s) => s.run !== undefined)) {
      // Inputs reach the script through env: a `${{ }}` in run: would be pasted into the script (injection).
      expect(step.run).not.toContain("${{");
      expect(step.shell).toBe("bash");
      expect(step.run).toMatch(/^bash "\$GITHUB_ACTION_PATH\/build\.sh" (plan|build)$/);
    }
  });

  it("pins third-party actions to full commit SHAs and uses each only when needed", () => {
    const uses = action.runs.steps.filter((s) => s.uses);
    for (const step of uses) expect(step.uses).toMatch(/^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/);
    // The version each SHA stands for, for the reader and for update tools.
    for (const step of uses) expect(ACTION_TEXT).toMatch(new RegExp(`${step.uses} # v\\d+\\.\\d+\\.\\d+`));
    // The zip is the same for both architectures: built on the runner's own platform, never under emulation.
    expect(uses.filter((s) => /qemu|binfmt/i.test(s.uses!))).toEqual([]);
    const node = uses.find((s) => s.uses!.startsWith("actions/setup-node@"));
    expect(node?.if).toBe("inputs.use-container != 'true'");
    expect(String(node?.with?.["node-version"])).toBe("24");
  });
});

describe("actions/build-lambda/build.sh", () => {
  let work: string;
  let bin: string;

  /** build.sh with the step's environment; resolves with its exit code, output and what it wrote to GITHUB_OUTPUT. */
  async function buildSh(args: string[], env: Record<string, string>, cwd = work) {
    const githubOutput = path.join(work, `github-output-${Math.random().toString(16).slice(2)}`);
    await writeFile(githubOutput, "");
    const result = await run("bash", [BUILD_SH, ...args], {
      cwd,
      env: {
        PATH: `${bin}:${path.dirname(process.execPath)}:/usr/bin:/bin`,
        HOME: work,
        GITHUB_OUTPUT: githubOutput,
        FAKE_LOG_DIR: work,
        FAKE_CONTAINER_PATH: `${bin}:${path.dirname(process.execPath)}:/usr/bin:/bin`,
        ...env,
      },
    }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
    const outputs = Object.fromEntries(
      (await readFile(githubOutput, "utf8"))
        .split("\n")
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    return { ...result, outputs };
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "build-lambda-action-"));
    bin = path.join(work, "bin");
    await mkdir(bin);
    // `npm`: records its arguments; node_modules is already there (and installing is not what is tested).
    await writeFile(path.join(bin, "npm"), `#!/usr/bin/env bash\nprintf '%s\\n' "$*" >> "$FAKE_LOG_DIR/npm.log"\n`);
    // `docker run`: records its arguments, then runs the container's command in the directory mounted at /var/task
    // with only the -e variables, as the container would (minus the isolation, the image and the platform).
    await writeFile(
      path.join(bin, "docker"),
      `#!/usr/bin/env bash
set -euo pipefail
printf '%s\\n' "$@" > "$FAKE_LOG_DIR/docker.args"
[ "$1" = run ] || { echo "fake docker: only run is supported" >&2; exit 2; }
shift
mount= workdir= envs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rm) shift ;;
    --platform) shift 2 ;;
    -v) case "$2" in *:/var/task) mount=\${2%:/var/task} ;; esac; shift 2 ;;
    -w) workdir=$2; shift 2 ;;
    -e) envs+=("$2"); shift 2 ;;
    -*) echo "fake docker: unexpected option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ "$workdir" = /var/task ] || { echo "fake docker: workdir $workdir" >&2; exit 2; }
shift # the image
pass=()
for e in "\${envs[@]}"; do
  case "$e" in *=*) pass+=("$e") ;; *) if [ -n "\${!e+x}" ]; then pass+=("$e=\${!e}"); fi ;; esac
done
cd "$mount"
exec env -i PATH="$FAKE_CONTAINER_PATH" HOME="$HOME" FAKE_LOG_DIR="$FAKE_LOG_DIR" "\${pass[@]}" "$@"
`,
    );
    await chmod(path.join(bin, "npm"), 0o755);
    await chmod(path.join(bin, "docker"), 0o755);
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.each([
    ["arm64", "true", "X64", "linux/amd64"],
    ["arm64", "true", "ARM64", "linux/arm64"],
    ["x86_64", "true", "X64", "linux/amd64"],
    ["x86_64", "true", "ARM64", "linux/arm64"],
    ["arm64", "false", "X64", "linux/amd64"],
  ])(
    "plans %s with use-container %s on a %s runner: the runner's own platform",
    async (arch, container, runner, platform) => {
      const r = await buildSh(["plan"], {
        BUILD_ARCHITECTURE: arch,
        BUILD_USE_CONTAINER: container,
        RUNNER_ARCH: runner,
      });
      expect(r.code).toBe(0);
      expect(r.outputs).toEqual({ platform });
    },
  );

  it.each([
    [{ BUILD_ARCHITECTURE: "amd64" }, /architecture must be arm64 or x86_64.*'amd64'/],
    [{ BUILD_USE_CONTAINER: "yes" }, /use-container must be true or false, got 'yes'/],
    [{ RUNNER_ARCH: "ARM" }, /the build image runs on X64 and ARM64 runners, not ARM/],
  ])("refuses %j with a clear error", async (env, message) => {
    const r = await buildSh(["plan"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^::error title=build-lambda::/);
    expect(r.stderr).toMatch(message);
    expect(r.outputs).toEqual({});
  });

  /** A workspace that is the repository for the build (symlinks) but keeps build/ to itself. */
  async function workspace(name: string): Promise<string> {
    const ws = path.join(work, name);
    await mkdir(ws);
    for (const entry of ["package.json", "package-lock.json", "tsconfig.json", "lambda", "scripts", "node_modules"]) {
      await symlink(path.join(ROOT, entry), path.join(ws, entry));
    }
    return ws;
  }

  function expectBuildOutputs(outputs: Record<string, string>, ws: string, arch: string) {
    expect(Object.keys(outputs).sort()).toEqual(["sha256", "size", "zip-path"]);
    expect(outputs.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(outputs["zip-path"]).toBe(`build/bridge-${arch}-${outputs.sha256!}.zip`);
    const zip = path.join(ws, outputs["zip-path"]!);
    expect(existsSync(zip)).toBe(true);
    expect(Number(outputs.size)).toBe(readFileSync(zip).length);
    expect(existsSync(path.join(ws, `build/.outputs-${arch}`))).toBe(false);
  }

  it("builds in the container: docker run with the platform, the workspace at /var/task and the image", async () => {
    const ws = await workspace("container");
    const r = await buildSh(
      ["build"],
      { BUILD_ARCHITECTURE: "x86_64", BUILD_USE_CONTAINER: "true", RUNNER_ARCH: "X64" },
      ws,
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expectBuildOutputs(r.outputs, ws, "x86_64");
    const args = (await readFile(path.join(work, "docker.args"), "utf8")).trimEnd().split("\n");
    expect(args.slice(0, 4)).toEqual(["run", "--rm", "--platform", "linux/amd64"]);
    expect(args).toEqual(expect.arrayContaining([`${ws}:/var/task`, "/var/task/node_modules", "ARCH=x86_64"]));
    expect(args).toContain("public.ecr.aws/sam/build-nodejs24.x:latest");
    const command = args.at(-1)!;
    expect(args.at(-2)).toBe("-c");
    expect(command).toContain("npm ci");
    expect(command).toContain('node -r @swc-node/register scripts/package.ts --arch "$ARCH" --out build');
    expect(await readFile(path.join(work, "npm.log"), "utf8")).toContain("ci --no-audit --no-fund");
  }, 60_000);

  it("builds both architectures once each on an X64 runner, natively, into the same bytes", async () => {
    const built: Record<string, { sha256: string; platform: string }> = {};
    for (const arch of ["arm64", "x86_64"]) {
      const ws = await workspace(`native-${arch}`);
      const r = await buildSh(
        ["build"],
        { BUILD_ARCHITECTURE: arch, BUILD_USE_CONTAINER: "true", RUNNER_ARCH: "X64" },
        ws,
      );
      expect(r.code).toBe(0);
      expectBuildOutputs(r.outputs, ws, arch);
      const args = (await readFile(path.join(work, "docker.args"), "utf8")).trimEnd().split("\n");
      built[arch] = { sha256: r.outputs.sha256!, platform: args[args.indexOf("--platform") + 1]! };
    }
    expect(built.arm64!.platform).toBe("linux/amd64");
    expect(built.x86_64!.platform).toBe("linux/amd64");
    // What the architecture changes is the file's name, not its content.
    expect(built.arm64!.sha256).toBe(built.x86_64!.sha256);
  }, 120_000);

  it("builds on the runner with use-container: false, without docker", async () => {
    const ws = await workspace("runner");
    await rm(path.join(work, "docker.args"), { force: true });
    const r = await buildSh(["build"], { BUILD_ARCHITECTURE: "arm64", BUILD_USE_CONTAINER: "false" }, ws);
    expect(r.code).toBe(0);
    expectBuildOutputs(r.outputs, ws, "arm64");
    expect(existsSync(path.join(work, "docker.args"))).toBe(false);
  }, 60_000);

  it("says where to run it from when the repository is not checked out", async () => {
    const empty = await mkdtemp(path.join(work, "empty-"));
    const r = await buildSh(["build"], { BUILD_USE_CONTAINER: "false" }, empty);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/run from the repository root .*check out the repository first/);
  });
});
