// `npm run bench`: the bridge against OpenSSH sftp, rclone and a plain SDK upload, on loopback, same servers, same
// bytes. Not part of CI; prints a table and writes docs/benchmarks.md. `--help` lists the options.
import { mkdir, mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { makeCases, type Case } from "./cases";
import { startBenchEnv, mib } from "./env";
import { buildChild, extractEngine, firstLine, type Sample } from "./measure";
import { resultsTable, rows, targets, targetsTable, writeDoc, type CaseResult } from "./report";

const REPO = path.resolve(__dirname, "..", "..");

const HELP = `npm run bench -- [options]
  --quick             64 MiB file, 200 small files, 1 run, docs not written (a sanity check)
  --size <n[KMG]>     size of the large file (default 1G)
  --files <n>         number of small files (default 1000)
  --file-size <n[K]>  size of each small file (default 8K)
  --runs <n>          runs per case; the table shows medians (default 3)
  --only <a,b>        only cases whose id contains one of these (e.g. s3-sftp-large, bridge, rclone)
  --concurrency <n>   sftp.concurrency for the bridge (default: the config default)
  --no-receipts       run the bridge with receipts.enabled: false (to see what receipts cost)
  --profile           write V8 CPU profiles of the bridge children to .tmp/bench-profiles/
  --node-args <flags> extra flags for the bridge's node process (e.g. "--max-semi-space-size=2")
  --node <path>       run the bridge children with another node binary (default: this one)
  --baseline <ref>    also measure the engine as it was at this git ref (rows "bridge ... @ ref")
  --out <file>        document to update (default docs/benchmarks.md)
  --write / --no-write  update the document or not (default: write unless --quick)`;

function bytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text} (use e.g. 512M, 1G, 8K)`);
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m[2] ?? "").toUpperCase() as "" | "K" | "M" | "G"];
  return Math.round(Number(m[1]) * unit);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      size: { type: "string" },
      files: { type: "string" },
      "file-size": { type: "string" },
      runs: { type: "string" },
      only: { type: "string" },
      concurrency: { type: "string" },
      "no-receipts": { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      "node-args": { type: "string" },
      node: { type: "string" },
      baseline: { type: "string" },
      out: { type: "string", default: "docs/benchmarks.md" },
      write: { type: "boolean" },
      "no-write": { type: "boolean" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const quick = values.quick;
  const sizes = {
    largeBytes: bytes(values.size ?? (quick ? "64M" : "1G")),
    smallCount: Number(values.files ?? (quick ? 200 : 1000)),
    smallBytes: bytes(values["file-size"] ?? "8K"),
  };
  const runs = Number(values.runs ?? (quick ? 1 : 3));
  const write = values["no-write"] ? false : (values.write ?? !quick);
  const only = values.only?.split(",").filter(Boolean);
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  const log = (line: string) => console.error(`[bench] ${line}`);

  const started = new Date();
  const loadBefore = os.loadavg();
  const childScript = await buildChild(REPO);
  let baseline: { script: string; ref: string } | undefined;
  if (values.baseline) {
    const engineDir = await extractEngine(
      REPO,
      values.baseline,
      await mkdtemp(path.join(os.tmpdir(), "bench-baseline-")),
    );
    baseline = { script: await buildChild(REPO, "child-baseline", engineDir), ref: values.baseline };
  }
  const profileDir = path.join(REPO, ".tmp", "bench-profiles");
  if (values.profile) await mkdir(profileDir, { recursive: true });
  const env = await startBenchEnv(sizes, log);
  const results: CaseResult[] = [];
  try {
    const cases = (
      await makeCases(env, {
        childScript,
        baseline,
        bridgeNodeArgs: [
          ...(values.profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
          ...(values["node-args"]?.split(/\s+/).filter(Boolean) ?? []),
        ],
        bridgeNode: values.node,
        concurrency,
        receipts: !values["no-receipts"],
      })
    ).filter((c) => !only || only.some((o) => c.id.includes(o)));
    for (const c of cases) results.push({ case: c, samples: [] });
    // Runs are interleaved (every case once, then again) so a noisy minute hurts all clients alike.
    for (let run = 1; run <= runs; run++) {
      for (const result of results) {
        const c: Case = result.case;
        log(`run ${run}/${runs}: ${c.id}`);
        const sample: Sample = await c.run(run);
        result.samples.push(sample);
        log(
          `  ${(c.bytes / 1e6 / sample.seconds).toFixed(1)} MB/s, ${(c.files / sample.seconds).toFixed(1)} files/s, ` +
            `${sample.cpuS.toFixed(2)} CPU s, ${sample.rssMiB.toFixed(0)} MiB` +
            (sample.detail ? ` (${sample.detail})` : ""),
        );
      }
    }
  } finally {
    await env.close();
  }

  const table = rows(results);
  const checks = targets(table, sizes.largeBytes);
  const facts = await machineFacts(started, loadBefore, os.loadavg());
  const generated = [
    `Run of ${started.toISOString().slice(0, 10)} (\`npm run bench${process.argv.slice(2).length ? " -- " + process.argv.slice(2).join(" ") : ""}\`): ` +
      `1 file of ${mib(sizes.largeBytes)} MiB, ${sizes.smallCount} files of ${sizes.smallBytes / 1024} KiB, ` +
      `median of ${runs} run${runs === 1 ? "" : "s"} per client.`,
    "",
    resultsTable(table),
    "",
    targetsTable(checks),
    "",
    "Machine and versions:",
    "",
    ...facts.map((line) => `- ${line}`),
  ].join("\n");
  console.log("\n" + generated + "\n");
  if (write) {
    const out = path.resolve(REPO, values.out ?? "docs/benchmarks.md");
    await mkdir(path.dirname(out), { recursive: true });
    await writeDoc(out, generated, SKELETON);
    log(`wrote ${path.relative(REPO, out)}`);
  }
}

async function machineFacts(started: Date, loadBefore: number[], loadAfter: number[]): Promise<string[]> {
  const cpus = os.cpus();
  const pkg = (name: string) => {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return (require(`${name}/package.json`) as { version: string }).version;
    } catch {
      return "?";
    }
  };
  const osName = (await firstLine("sh", ["-c", ". /etc/os-release && echo $PRETTY_NAME"])) || os.type();
  let binding = false;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = Boolean((require("ssh2/lib/protocol/crypto") as { bindingAvailable?: boolean }).bindingAvailable);
  } catch {
    binding = false;
  }
  return [
    `date: ${started.toISOString()}`,
    `CPU: ${cpus[0]?.model ?? "?"}, ${cpus.length} cores; memory ${Math.round(os.totalmem() / 2 ** 30)} GiB; ${osName}, Linux ${os.release()}`,
    `load average (1 min) before / after: ${loadBefore[0]?.toFixed(2)} / ${loadAfter[0]?.toFixed(2)} (other work shares these cores: figures are noisy)`,
    `Node ${process.version}; ssh2 ${pkg("ssh2")} (native crypto binding ${binding ? "loaded" : "not loadable on this Node: ciphers run on node:crypto"}); ssh2-sftp-client ${pkg("ssh2-sftp-client")}; @aws-sdk/client-s3 ${pkg("@aws-sdk/client-s3")}; @aws-sdk/lib-storage ${pkg("@aws-sdk/lib-storage")}; s3rver ${pkg("s3rver")}`,
    `${await firstLine("ssh", ["-V"])}; ${await firstLine("rclone", ["version"])}`,
  ];
}

const SKELETON = `# Benchmarks

\`npm run bench\` (not part of CI) starts OpenSSH \`sshd\` (internal-sftp, chrooted, key auth) and s3rver on loopback and
moves the same bytes with the bridge, rclone, OpenSSH \`sftp\` and a plain SDK upload.
`;

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
