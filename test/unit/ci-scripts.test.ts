import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

/**
 * The shell the workflows run around their deploys (scripts/ci), run for real against stand-ins for `gh` and `aws`
 * that answer from files and log what they were asked: GitHub and AWS cannot be reached here, and what is under test
 * is the decision each script makes from their answers.
 */

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");
const SCRIPTS = path.join(ROOT, "scripts", "ci");
const SHA = "a".repeat(40);
const NEWER = "b".repeat(40);

let work: string;
let bin: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "ci-scripts-"));
  bin = path.join(work, "bin");
  await mkdir(bin);
  // gh api <path> [--jq <filter>]: the answer is the file named after the path, filtered by the real jq as gh does.
  await writeFile(
    path.join(bin, "gh"),
    `#!/usr/bin/env bash
set -euo pipefail
[ "$1" = api ] || { echo "fake gh: only api" >&2; exit 2; }
route=$2; shift 2
filter=.
while [ $# -gt 0 ]; do case "$1" in --jq) filter=$2; shift 2 ;; *) shift ;; esac; done
echo "$route" >> "$FAKE_DIR/gh.log"
file="$FAKE_DIR/gh/$(printf '%s' "$route" | tr '/?&=' '____')"
[ -f "$file" ] || { echo "gh: Not Found (HTTP 404)" >&2; exit 1; }
jq -r "$filter" < "$file"
`,
  );
  // aws <service> <command> ...: the answer is the file named after service and command; every call is logged.
  await writeFile(
    path.join(bin, "aws"),
    `#!/usr/bin/env bash
set -euo pipefail
printf '%s\\n' "$*" >> "$FAKE_DIR/aws.log"
file="$FAKE_DIR/aws/$1_$2"
if [ -f "$file.count" ]; then n=$(( $(cat "$file.count") + 1 )); echo "$n" > "$file.count"; file="$file.$n"; fi
[ -f "$file" ] && cat "$file" || true
`,
  );
  await chmod(path.join(bin, "gh"), 0o755);
  await chmod(path.join(bin, "aws"), 0o755);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

let n = 0;
/** A fresh stand-in world: `gh` answers by route, `aws` by service_command (numbered answers when counted). */
async function world(gh: Record<string, unknown>, aws: Record<string, string | string[]> = {}) {
  const dir = path.join(work, `world-${++n}`);
  await mkdir(path.join(dir, "gh"), { recursive: true });
  await mkdir(path.join(dir, "aws"), { recursive: true });
  for (const [route, body] of Object.entries(gh)) {
    await writeFile(path.join(dir, "gh", route.replace(/[/?&=]/g, "_")), JSON.stringify(body));
  }
  for (const [call, answer] of Object.entries(aws)) {
    if (Array.isArray(answer)) {
      await writeFile(path.join(dir, "aws", `${call}.count`), "0");
      for (const [i, a] of answer.entries()) await writeFile(path.join(dir, "aws", `${call}.${i + 1}`), a);
    } else await writeFile(path.join(dir, "aws", call), answer);
  }
  return dir;
}

async function script(name: string, args: string[], env: Record<string, string>, dir: string) {
  const output = path.join(dir, "github-output");
  await writeFile(output, "");
  const result = await run("bash", [path.join(SCRIPTS, name), ...args], {
    env: {
      PATH: `${bin}:/usr/bin:/bin`,
      FAKE_DIR: dir,
      GITHUB_OUTPUT: output,
      GH_REPO: "acme/s3-sftp-bridge",
      ...env,
    },
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
  const outputs = Object.fromEntries(
    (await readFile(output, "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  const log = async (tool: string) =>
    (await readFile(path.join(dir, `${tool}.log`), "utf8").catch(() => "")).split("\n").filter(Boolean);
  return { ...result, outputs, gh: await log("gh"), aws: await log("aws") };
}

describe("deploy-guard.sh pr", () => {
  const pr = (state: string, head: string) => ({
    "repos/acme/s3-sftp-bridge/pulls/12": { state, head: { sha: head } },
  });
  const env = { PR_NUMBER: "12", HEAD_SHA: SHA };

  it("deploys an open pull request still at the run's commit", async () => {
    const r = await script("deploy-guard.sh", ["pr"], env, await world(pr("open", SHA)));
    expect(r.code).toBe(0);
    expect(r.outputs).toEqual({ deploy: "true" });
    expect(r.gh).toEqual(["repos/acme/s3-sftp-bridge/pulls/12"]);
  });

  it("skips a pull request closed while the run waited: its stack is not made again", async () => {
    const r = await script("deploy-guard.sh", ["pr"], env, await world(pr("closed", SHA)));
    expect(r.code).toBe(0);
    expect(r.outputs).toEqual({
      deploy: "false",
      reason: "pull request #12 is closed; its stack is not deployed again",
    });
    expect(r.stdout).toContain("::notice title=Deploy skipped::");
  });

  it("skips a run whose commit is no longer the pull request's head", async () => {
    const r = await script("deploy-guard.sh", ["pr"], env, await world(pr("open", NEWER)));
    expect(r.outputs.deploy).toBe("false");
    expect(r.outputs.reason).toBe(
      "pull request #12 is at bbbbbbbbbbbb now, not aaaaaaaaaaaa; the run for bbbbbbbbbbbb deploys it",
    );
  });

  it("fails when GitHub cannot say, rather than deploying blind", async () => {
    const r = await script("deploy-guard.sh", ["pr"], env, await world({}));
    expect(r.code).not.toBe(0);
    expect(r.outputs).toEqual({});
  });
});

describe("deploy-guard.sh release", () => {
  const compare = (status: string) => ({ [`repos/acme/s3-sftp-bridge/compare/main...${SHA}`]: { status } });

  it("deploys main's head", async () => {
    const r = await script(
      "deploy-guard.sh",
      ["release"],
      { SHA, REF: "refs/heads/main" },
      await world(compare("identical")),
    );
    expect(r.outputs).toEqual({ deploy: "true" });
  });

  it("skips a push to main that main has moved on from: a late approval does not roll production back", async () => {
    const r = await script(
      "deploy-guard.sh",
      ["release"],
      { SHA, REF: "refs/heads/main" },
      await world(compare("behind")),
    );
    expect(r.code).toBe(0);
    expect(r.outputs.deploy).toBe("false");
    expect(r.outputs.reason).toContain("main has moved on from aaaaaaaaaaaa");
  });

  it("deploys a tag of a commit main still contains", async () => {
    const r = await script(
      "deploy-guard.sh",
      ["release"],
      { SHA, REF: "refs/tags/v1.2.0" },
      await world(compare("behind")),
    );
    expect(r.outputs).toEqual({ deploy: "true" });
  });

  it.each(["diverged", "ahead"])("refuses a commit that is not on main (compare: %s)", async (status) => {
    const r = await script(
      "deploy-guard.sh",
      ["release"],
      { SHA, REF: "refs/tags/v1.2.0" },
      await world(compare(status)),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`::error title=Deploy refused::aaaaaaaaaaaa is not on main (compare: ${status})`);
    expect(r.outputs).toEqual({});
  });
});

describe("stale-pr-stacks.sh", () => {
  it("lists the PR stacks whose pull request is closed, and leaves every other stack alone", async () => {
    const dir = await world(
      {
        "repos/acme/s3-sftp-bridge/pulls/7": { state: "closed" },
        "repos/acme/s3-sftp-bridge/pulls/8": { state: "open" },
        "repos/acme/s3-sftp-bridge/pulls/9": { state: "closed" },
      },
      // What the query returns: live bridge-pr-* stacks (the query itself is checked below).
      {
        "cloudformation_list-stacks": JSON.stringify([
          "bridge-pr-9",
          "bridge-pr-7",
          "bridge-pr-8",
          "bridge-pr-x",
          "bridge-pr-404",
        ]),
      },
    );
    const r = await script("stale-pr-stacks.sh", [], {}, dir);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.outputs.stacks!)).toEqual([
      { stack: "bridge-pr-7", pr: "7" },
      { stack: "bridge-pr-9", pr: "9" },
    ]);
    expect(r.stdout).toContain("::warning::bridge-pr-x does not end in a pull request number; left alone");
    expect(r.stdout).toContain("::warning::bridge-pr-404: pull request #404 not found");
    expect(r.aws).toHaveLength(1);
    expect(r.aws[0]).toContain("cloudformation list-stacks");
    expect(r.aws[0]).toContain("StackStatus!='DELETE_COMPLETE' && starts_with(StackName, 'bridge-pr-')");
  });

  it("writes an empty list when nothing is stale", async () => {
    const r = await script("stale-pr-stacks.sh", [], {}, await world({}, { "cloudformation_list-stacks": "[]" }));
    expect(r.code).toBe(0);
    expect(r.outputs).toEqual({ stacks: "[]" });
  });
});

describe("remove-bucket.sh", () => {
  it("deletes every version and delete marker page by page, then the bucket", async () => {
    const page = (keys: string[]) =>
      JSON.stringify({
        Versions: keys.map((k) => ({ Key: k, VersionId: `v-${k}` })),
        DeleteMarkers: [{ Key: "gone", VersionId: "m1" }],
      });
    const dir = await world({}, { "s3api_list-object-versions": [page(["a", "b"]), page(["c"]), "{}"] });
    const r = await script("remove-bucket.sh", ["s3-sftp-bridge-1234"], {}, dir);
    expect(r.code).toBe(0);
    const deletes = r.aws.filter((l) => l.startsWith("s3api delete-objects"));
    expect(deletes).toHaveLength(2);
    expect(deletes[0]).toContain(
      '{"Key":"a","VersionId":"v-a"},{"Key":"b","VersionId":"v-b"},{"Key":"gone","VersionId":"m1"}',
    );
    expect(r.aws.at(-1)).toBe("s3api delete-bucket --bucket s3-sftp-bridge-1234");
    expect(r.stdout).toContain("deleted bucket s3-sftp-bridge-1234");
  });

  it("refuses anything that is not a bucket name", async () => {
    const r = await script("remove-bucket.sh", ["../etc; rm -rf /"], {}, await world({}));
    expect(r.code).toBe(2);
    expect(r.aws).toEqual([]);
  });
});
