import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { fromBufferPromise } from "yauzl";
import {
  buildPackage,
  parseCli,
  reproducibleZip,
  ROOT,
  SIZE_BUDGET,
  SSH2_NATIVE,
  sha256,
  zipTimestamp,
  type PackageResult,
} from "../../scripts/package";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";
import { handlerEnvironment, LAMBDA_CONTEXT_FIELDS } from "../support/handler-env";

/**
 * The deployable artefact itself: scripts/package.ts builds the zip twice (once in this process, once through its CLI
 * in another process, time zone and working directory), the bytes must match, and the unzipped bundle must run a push
 * and a pull with plain `node` in a directory where no node_modules can help it, as it runs in Lambda.
 */

const run = promisify(execFile);

interface ZipEntryFacts {
  name: string;
  data: Buffer;
  mode: number;
  dosDate: number;
  dosTime: number;
  extraFields: number;
  madeByUnix: boolean;
}

async function readZip(zip: Buffer): Promise<ZipEntryFacts[]> {
  const file = await fromBufferPromise(zip, { lazyEntries: true });
  const entries: ZipEntryFacts[] = [];
  for await (const entry of file.eachEntry()) {
    const chunks: Buffer[] = [];
    for await (const chunk of await file.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
    entries.push({
      name: entry.fileName,
      data: Buffer.concat(chunks),
      mode: entry.externalFileAttributes >>> 16,
      dosDate: entry.lastModFileDate,
      dosTime: entry.lastModFileTime,
      extraFields: entry.extraFields.length,
      madeByUnix: entry.versionMadeBy >> 8 === 3,
    });
  }
  return entries;
}

/** Runs in a fresh `node`: loads the bundle, invokes the handler once per event, prints the results on one line. */
const RUNNER = `
const Module = require("node:module");
// Record what the bundle asks require() for and what failed: ssh2's optional native parts must be tried and absent.
const failedRequires = [];
const originalRequire = Module.prototype.require;
Module.prototype.require = function (id) {
  try { return originalRequire.apply(this, arguments); }
  catch (err) { failedRequires.push(id); throw err; }
};
const started = process.hrtime.bigint();
const { handler } = require(process.argv[2]);
const initMs = Number(process.hrtime.bigint() - started) / 1e6;
const events = JSON.parse(process.argv[3]);
(async () => {
  const results = [];
  for (const [i, event] of events.entries()) {
    const context = {
      ...${JSON.stringify(LAMBDA_CONTEXT_FIELDS)}, awsRequestId: "req-" + i,
      getRemainingTimeInMillis: () => 60000,
    };
    results.push(await handler(event, context));
  }
  process.stdout.write("\\n@@RESULT " + JSON.stringify({ initMs, failedRequires, results }) + "\\n", () => process.exit(0));
})().catch((err) => { process.stderr.write(String(err && err.stack || err) + "\\n"); process.exit(1); });
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe("Lambda package (scripts/package.ts)", () => {
  let work: string;
  let first: PackageResult;
  let firstZip: Buffer;
  let entries: ZipEntryFacts[];

  beforeAll(async () => {
    if (Number(process.versions.node.split(".")[0]) < 24) {
      throw new Error(
        `Lambda runs nodejs24.x: run this test on Node 24 (npx jest puts node@24 first), not ${process.version}`,
      );
    }
    work = await mkdtemp(path.join(tmpdir(), "bridge-package-"));
    first = await buildPackage({ architecture: "arm64", outDir: path.join(work, "first") });
    firstZip = await readFile(first.zipPath);
    entries = await readZip(firstZip);
  }, 120_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("stays under 1 MiB and names the zip by its SHA-256", async () => {
    expect(first.size).toBe(firstZip.length);
    expect(first.size).toBeLessThan(SIZE_BUDGET);
    expect(first.sha256).toBe(sha256(firstZip));
    expect(path.basename(first.zipPath)).toBe(`bridge-arm64-${first.sha256}.zip`);
    expect(JSON.parse(await readFile(first.manifestPath, "utf8"))).toEqual({
      zip: path.basename(first.zipPath),
      sha256: first.sha256,
      size: first.size,
      architecture: "arm64",
    });
  });

  it("is reproducible: the CLI in another process, time zone and directory writes the same bytes", async () => {
    const second = path.join(work, "second");
    // A stale zip of the same architecture goes; another architecture's stays.
    await mkdir(second);
    await writeFile(path.join(second, "bridge-arm64-000000000000.zip"), "stale");
    await writeFile(path.join(second, "bridge-x86_64-000000000000.zip"), "other arch");
    const otherCwd = await mkdtemp(path.join(work, "cwd-"));
    const githubOutput = path.join(work, "github-output");
    // Another zone and cwd: yazl writes local-time DOS dates, and paths must not leak into the bundle.
    const { stdout } = await run(
      process.execPath,
      [
        "-r",
        require.resolve("@swc-node/register"),
        path.join(ROOT, "scripts/package.ts"),
        "--arch",
        "arm64",
        "--out",
        second,
        "--github-output",
        githubOutput,
      ],
      {
        cwd: otherCwd,
        env: { ...process.env, TZ: "Pacific/Chatham", SWC_NODE_PROJECT: path.join(ROOT, "tsconfig.json") },
      },
    );
    const again = await readFile(path.join(second, path.basename(first.zipPath)));
    expect((await readdir(second)).sort()).toEqual(
      [path.basename(first.zipPath), "bridge-arm64.json", "bridge-x86_64-000000000000.zip"].sort(),
    );
    expect(sha256(again)).toBe(first.sha256);
    expect(again.equals(firstZip)).toBe(true);
    // The CLI prints what the closing note needs.
    expect(stdout).toContain(first.sha256);
    expect(stdout).toContain(`${first.size.toLocaleString("en-US")} bytes`);
    const zipPath = path.relative(otherCwd, path.join(second, path.basename(first.zipPath)));
    expect(await readFile(githubOutput, "utf8")).toBe(
      `zip-path=${zipPath}\nsha256=${first.sha256}\nsize=${first.size}\n`,
    );
  }, 120_000);

  it("writes sorted entries with fixed times and modes and no extra fields", () => {
    const names = entries.map((e) => e.name);
    expect(names).toEqual(["THIRD-PARTY-LICENSES.txt", "index.js", "index.js.map"]);
    for (const e of entries) {
      expect(e).toMatchObject({
        mode: 0o100644,
        dosDate: (1 << 5) | 1, // 1980-01-01
        dosTime: 0,
        extraFields: 0,
        madeByUnix: true,
      });
    }
  });

  it("links its source map and ships ssh2 without native addons", () => {
    const js = entries.find((e) => e.name === "index.js")!.data.toString("utf8");
    const map = JSON.parse(entries.find((e) => e.name === "index.js.map")!.data.toString("utf8")) as {
      sources: string[];
      sourcesContent?: unknown;
    };
    expect(js.trimEnd().endsWith("//# sourceMappingURL=index.js.map")).toBe(true);
    expect(map.sources).toContain("lambda/handler.ts");
    expect(map.sources.every((s) => !path.isAbsolute(s))).toBe(true);
    expect(map.sourcesContent).toBeUndefined();
    expect(entries.some((e) => e.name.endsWith(".node"))).toBe(false);
    // Left as plain require() calls that fail in Lambda, so ssh2 takes its JavaScript path.
    expect(js).toContain(`require("${SSH2_NATIVE.binding}")`);
    expect(js).toContain(`require("${SSH2_NATIVE.cpuFeatures}")`);
    const notices = entries.find((e) => e.name === "THIRD-PARTY-LICENSES.txt")!.data.toString("utf8");
    for (const pkg of ["ssh2@", "@aws-sdk/client-s3@", "zod@", "yaml@"]) expect(notices).toContain(pkg);
  });

  it("takes SOURCE_DATE_EPOCH as UTC and refuses what a zip cannot hold", async () => {
    const t = zipTimestamp({ SOURCE_DATE_EPOCH: "1700000000" }); // 2023-11-14 22:13:20 UTC
    const [entry] = await readZip(await reproducibleZip([{ name: "a", data: Buffer.from("a") }], t));
    expect(entry?.dosDate).toBe(((2023 - 1980) << 9) | (11 << 5) | 14);
    expect(entry?.dosTime).toBe((22 << 11) | (13 << 5) | (20 >> 1));
    expect(() => zipTimestamp({ SOURCE_DATE_EPOCH: "0" })).toThrow(/between 1980 and 2107/);
    expect(() => zipTimestamp({ SOURCE_DATE_EPOCH: "soon" })).toThrow(/SOURCE_DATE_EPOCH="soon"/);
  });

  it("rejects unknown options and architectures with usage", () => {
    expect(parseCli([])).toEqual({ architecture: "arm64", outDir: "build", githubOutput: undefined });
    expect(() => parseCli(["--arch", "amd64"])).toThrow(/--arch "amd64": expected one of arm64, x86_64\nusage:/);
    expect(() => parseCli(["--zip"])).toThrow(/Unknown option '--zip'[\s\S]*usage:/);
  });

  describe("unzipped alone and run with plain node", () => {
    let env: BridgeEnv;
    let dir: string;
    let runner: string;
    let childEnv: NodeJS.ProcessEnv;

    beforeAll(async () => {
      // os.tmpdir(), far from the repository: nothing up this tree may provide a module the bundle forgot.
      dir = await mkdtemp(path.join(tmpdir(), "bridge-lambda-task-"));
      for (const e of entries) await writeFile(path.join(dir, e.name), e.data, { mode: 0o644 });
      runner = path.join(await mkdtemp(path.join(tmpdir(), "bridge-runner-")), "runner.js");
      await writeFile(runner, RUNNER);

      env = await startBridgeEnv("bridge-package");
      // Only what Lambda would set (plus the local endpoints); nothing from the test process leaks in.
      childEnv = {
        ...(await handlerEnvironment(env, { deadlineMarginMs: 5000, service: "bridge-package-test" })),
        TZ: "UTC",
      };
    }, 60_000);

    afterAll(async () => {
      await env?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
      if (runner) await rm(path.dirname(runner), { recursive: true, force: true });
    });

    it("has no node_modules to fall back on", () => {
      for (let d = dir; ; d = path.dirname(d)) {
        expect(existsSync(path.join(d, "node_modules"))).toBe(false);
        if (path.dirname(d) === d) break;
      }
      const requireThere = createRequire(path.join(dir, "index.js"));
      for (const id of ["ssh2", "@aws-sdk/client-s3", "zod"])
        expect(() => requireThere.resolve(id)).toThrow(/Cannot find/);
    });

    it("pushes an S3 object to SFTP and pulls an SFTP file into S3", async () => {
      await env.put("psp/outbound/x.xml", "<push/>");
      const remote = env.local("/OUT/y.xml");
      await mkdir(path.dirname(remote), { recursive: true });
      await writeFile(remote, "<pull/>");
      const old = new Date(Date.now() - 120_000); // older than any minAgeSeconds
      await utimes(remote, old, old);

      const events = [
        { action: "push", keys: [`s3://${env.bucket}/psp/outbound/x.xml`] },
        { action: "pull", streams: ["psp"] },
      ];
      const { stdout, stderr } = await run(
        process.execPath,
        [runner, path.join(dir, "index.js"), JSON.stringify(events)],
        {
          cwd: dir,
          env: childEnv,
          maxBuffer: 16 << 20,
        },
      ).catch((err: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(`the packaged handler failed: ${err.message}\n${err.stdout ?? ""}\n${err.stderr ?? ""}`);
      });
      const line = stdout.split("\n").find((l) => l.startsWith("@@RESULT "));
      if (!line) throw new Error(`no result from the runner:\n${stdout}\n${stderr}`);
      const out = JSON.parse(line.slice("@@RESULT ".length)) as {
        failedRequires: string[];
        results: { ok: boolean; streams: { stream: string; direction: string; files: number }[] }[];
      };

      const [push, pull] = out.results;
      expect(push).toMatchObject({ ok: true, streams: [{ stream: "psp", direction: "push", files: 1 }] });
      expect(pull).toMatchObject({ ok: true, streams: [{ stream: "psp", direction: "pull", files: 1 }] });
      expect(await readFile(env.local("/IN/x.xml"), "utf8")).toBe("<push/>");
      expect((await env.get("psp/inbound/y.xml"))?.toString()).toBe("<pull/>");
      // The gilt-compatible line the metric filters match, from the bundled Powertools logger.
      expect(stdout).toContain("[psp]: Moved 1 files from S3 to SFTP");
      expect(stdout).toContain("[psp]: Moved 1 files from SFTP to S3");
      // ssh2 looked for its optional native parts, did not find them, and worked without.
      expect(out.failedRequires).toEqual(expect.arrayContaining([SSH2_NATIVE.binding, SSH2_NATIVE.cpuFeatures]));
      expect(out.failedRequires.every((id) => id === SSH2_NATIVE.binding || id === SSH2_NATIVE.cpuFeatures)).toBe(true);
    }, 60_000);

    it("measures cold init: require('./index.js') in a fresh process", async () => {
      const probe = `const t = process.hrtime.bigint(); require("./index.js"); process.stdout.write(String(Number(process.hrtime.bigint() - t) / 1e6));`;
      const sample = async (flags: string[]) => {
        const times: number[] = [];
        for (let i = 0; i < 5; i++) {
          const { stdout } = await run(process.execPath, [...flags, "-e", probe], { cwd: dir, env: childEnv });
          times.push(Number(stdout));
        }
        return median(times);
      };
      const plain = await sample([]);
      const withMaps = await sample(["--enable-source-maps"]);
      // Loose bound: the point is the printed figure; a regression to seconds would still fail here.
      expect(plain).toBeGreaterThan(0);
      expect(plain).toBeLessThan(3000);
      console.log(
        `Lambda package: ${path.basename(first.zipPath)}, ${first.size} bytes ` +
          `(${(first.size / 1024).toFixed(1)} KiB, ${((100 * first.size) / SIZE_BUDGET).toFixed(0)}% of 1 MiB), ` +
          `sha256 ${first.sha256}\n` +
          `cold init (require index.js, Node ${process.version}, median of 5): ${plain.toFixed(0)} ms; ` +
          `with --enable-source-maps: ${withMaps.toFixed(0)} ms`,
      );
    }, 60_000);
  });
});
