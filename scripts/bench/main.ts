// `npm run bench`: the bridge against OpenSSH sftp, rclone and a plain SDK upload, on loopback, same servers, same
// bytes; with --rtt, also with the SFTP server put far away by a latency proxy (S3 stays near). Not part of CI; prints
// tables and writes docs/benchmarks.md. `--help` lists the options.
import { mkdir, mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { makeCases, type Case } from "./cases";
import { SERVER_KINDS, defaultCipherOf, startBenchEnv, mib, type Link, type ServerKind } from "./env";
import { buildChild, extractEngine, firstLine, type Sample } from "./measure";
import {
  distanceDetails,
  distanceMarkers,
  distanceTable,
  failureLines,
  proxySummary,
  resultsTable,
  rows,
  targets,
  targetsTable,
  writeDoc,
  type CaseResult,
  type Leg,
} from "./report";

const REPO = path.resolve(__dirname, "..", "..");

const HELP = `npm run bench -- [options]
  --quick             64 MiB file, 200 small files, 1 run, docs not written (a sanity check)
  --size <n[KMG]>     size of the large file (default 1G)
  --files <n>         number of small files (default 1000)
  --file-size <n[K]>  size of each small file (default 8K)
  --runs <n>          runs per case; the table shows medians (default 3)
  --only <a,b>        only cases whose id contains one of these (e.g. s3-sftp-large, bridge, rclone)
  --concurrency <n>   sftp.concurrency for the bridge (default: the config default)
  --stable-check-ms <n>  pull.stableCheckMs for the bridge (default: the config default, a 2 s wait per pull)
  --no-receipts       run the bridge with receipts.enabled: false (to see what receipts cost)
  --profile           write V8 CPU profiles of the bridge children to .tmp/bench-profiles/
  --node-args <flags> extra flags for the bridge's node process (e.g. "--max-semi-space-size=2")
  --node <path>       run the bridge children with another node binary (default: this one)
  --baseline <ref>    also measure the engine as it was at this git ref (rows "bridge ... @ ref")
  --rtt <ms,ms>       round-trip times to add between the clients and the SFTP server (default 0: loopback only).
                      Each RTT above 0 puts a latency proxy (own process, real-time priority) in front of the
                      server; S3 stays on loopback. Any list other than "0" is a run over distance: it compares
                      bridge, rclone and OpenSSH sftp (large file) and bridge and rclone (small files) at every RTT
                      and writes the distance section of the document, not the loopback table
  --server <a,b>      partner server(s): openssh, proftpd (default openssh; proftpd makes it a run over distance)
  --proxy-priority <n>  SCHED_FIFO priority of the latency proxy (default 10; 0: normal priority)
  --out <file>        document to update (default docs/benchmarks.md)
  --write / --no-write  update the document or not (default: write unless --quick)`;

function bytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) throw new Error(`not a size: ${text} (use e.g. 512M, 1G, 8K)`);
  const unit = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m[2] ?? "").toUpperCase() as "" | "K" | "M" | "G"];
  return Math.round(Number(m[1]) * unit);
}

function list(text: string): string[] {
  return text
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
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
      "stable-check-ms": { type: "string" },
      "no-receipts": { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      "node-args": { type: "string" },
      node: { type: "string" },
      baseline: { type: "string" },
      rtt: { type: "string", default: "0" },
      server: { type: "string", default: "openssh" },
      "proxy-priority": { type: "string", default: "10" },
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
  const stableCheckMs = values["stable-check-ms"] === undefined ? undefined : Number(values["stable-check-ms"]);
  const rtts = list(values.rtt).map(Number);
  if (rtts.length === 0 || rtts.some((r) => !Number.isFinite(r) || r < 0)) {
    throw new Error(`--rtt wants milliseconds >= 0, e.g. 0,50,100 (got ${values.rtt})`);
  }
  const servers = list(values.server) as ServerKind[];
  const unknown = servers.filter((x) => !SERVER_KINDS.includes(x));
  if (servers.length === 0 || unknown.length) {
    throw new Error(`--server wants ${SERVER_KINDS.join(", ")} (got ${values.server})`);
  }
  // Only the plain loopback run against OpenSSH fills the loopback table, so a run over distance (smaller data,
  // fewer clients) never replaces it.
  const distance = !(rtts.length === 1 && rtts[0] === 0 && servers.length === 1 && servers[0] === "openssh");
  const priority = Number(values["proxy-priority"]);
  const log = (line: string) => console.error(`[bench] ${line}`);

  const started = new Date();
  const loadBefore = os.loadavg();
  const source = await sourceState();
  const childScript = await buildChild(REPO);
  const proxyScript = rtts.some((r) => r > 0)
    ? await buildChild(REPO, "latency-proxy-child", undefined, "latency-proxy-child.ts")
    : undefined;
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
  const legs: Leg[] = [];
  let loopbackResults: CaseResult[] = [];
  try {
    for (const kind of servers) {
      const partner = await env.startPartner(kind);
      try {
        for (const rttMs of rtts) {
          const link = await env.openLink(
            partner,
            rttMs,
            proxyScript ? { script: proxyScript, realtimePriority: priority > 0 ? priority : undefined } : undefined,
          );
          try {
            const tag = distance ? `${kind} +${rttMs} ms: ` : "";
            if (link.proxy) log(`${tag}latency proxy on port ${link.port} (${link.proxy.scheduling})`);
            const cases = (
              await makeCases(env, link, {
                childScript,
                baseline,
                bridgeNodeArgs: [
                  ...(values.profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
                  ...(values["node-args"]?.split(/\s+/).filter(Boolean) ?? []),
                ],
                bridgeNode: values.node,
                concurrency,
                stableCheckMs,
                receipts: !values["no-receipts"],
                distance,
              })
            )
              // The baseline's rows are the bridge's too ("bridge ... @ ref"): --only bridge keeps them.
              .filter(
                (c) =>
                  !only || only.some((o) => c.id.includes(o) || c.id.replace(/\/baseline$/, "/bridge").includes(o)),
              );
            const results = await runCases(cases, runs, link, (line) => log(tag + line));
            legs.push({
              server: kind,
              rttMs,
              rows: rows(results),
              proxyScheduling: link.proxy?.scheduling,
              failures: results.flatMap((r) => r.failures.map((message) => ({ id: r.case.id, message }))),
            });
            if (!distance) loopbackResults = results;
          } finally {
            await link.close();
          }
        }
      } finally {
        await partner.close();
      }
    }
  } finally {
    await env.close();
  }

  const facts = await machineFacts(started, loadBefore, os.loadavg(), source, servers);
  const command = `\`npm run bench${process.argv.slice(2).length ? " -- " + process.argv.slice(2).join(" ") : ""}\``;
  const documents: { generated: string; markers?: Parameters<typeof writeDoc>[3] }[] = [];
  if (!distance) {
    const table = rows(loopbackResults);
    const checks = targets(table, sizes.largeBytes);
    const failures = failureLines(legs);
    documents.push({
      generated: [
        `Run of ${started.toISOString().slice(0, 10)} (${command}): ` +
          `1 file of ${mib(sizes.largeBytes)} MiB, ${sizes.smallCount} files of ${sizes.smallBytes / 1024} KiB, ` +
          `median of ${runs} run${runs === 1 ? "" : "s"} per client.`,
        "",
        resultsTable(table),
        "",
        targetsTable(checks),
        "",
        ...(failures.length ? ["Failed runs (not in the figures):", "", ...failures.map((x) => `- ${x}`), ""] : []),
        "Machine and versions:",
        "",
        ...facts.map((line) => `- ${line}`),
      ].join("\n"),
    });
  } else {
    for (const kind of servers) {
      const mine = legs.filter((leg) => leg.server === kind);
      const failures = failureLines(mine);
      const proxied = proxySummary(mine);
      documents.push({
        markers: distanceMarkers(kind),
        generated: [
          `Run of ${started.toISOString().slice(0, 10)} (${command}): ` +
            `${kind === "openssh" ? "OpenSSH sshd" : "ProFTPD mod_sftp"} behind +${mine.map((l) => l.rttMs).join(", +")} ms ` +
            `of RTT (S3 on loopback), 1 file of ${mib(sizes.largeBytes)} MiB, ${sizes.smallCount} files of ` +
            `${sizes.smallBytes / 1024} KiB, median of ${runs} run${runs === 1 ? "" : "s"} per client (range in ` +
            `brackets).`,
          "",
          distanceTable(mine, sizes, defaultCipherOf(kind)),
          "",
          ...(proxied.length ? [...proxied.map((x) => `- ${x}`), ""] : []),
          ...(failures.length ? ["Failed runs (not in the figures):", "", ...failures.map((x) => `- ${x}`), ""] : []),
          "Every client:",
          "",
          distanceDetails(mine, sizes),
          "",
          "Machine and versions:",
          "",
          ...facts.map((line) => `- ${line}`),
        ].join("\n"),
      });
    }
  }
  for (const doc of documents) console.log("\n" + doc.generated + "\n");
  if (write) {
    const out = path.resolve(REPO, values.out ?? "docs/benchmarks.md");
    await mkdir(path.dirname(out), { recursive: true });
    for (const doc of documents) await writeDoc(out, doc.generated, SKELETON, doc.markers);
    log(`wrote ${path.relative(REPO, out)}`);
  }
}

/**
 * Runs every case `runs` times, interleaved (every case once, then again) so a noisy minute hurts all clients alike.
 * A failed run is logged and counted, and the others go on: one broken client must not cost the whole run.
 */
async function runCases(cases: Case[], runs: number, link: Link, log: (line: string) => void): Promise<CaseResult[]> {
  const results: CaseResult[] = cases.map((c) => ({ case: c, samples: [], failures: [] }));
  for (let run = 1; run <= runs; run++) {
    for (const result of results) {
      const c: Case = result.case;
      log(`run ${run}/${runs}: ${c.id}`);
      try {
        await link.proxy?.resetStats();
        const sample: Sample = await c.run(run);
        if (link.proxy) {
          const p = await link.proxy.stats();
          sample.proxy = {
            maxLatenessMs: p.maxLatenessMs,
            p99LatenessMs: p.p99LatenessMs,
            meanLatenessMs: p.meanLatenessMs,
            chunks: p.chunks,
            cpuS: p.cpuS,
          };
        }
        result.samples.push(sample);
        log(
          `  ${(c.bytes / 1e6 / sample.seconds).toFixed(1)} MB/s, ${(c.files / sample.seconds).toFixed(1)} files/s, ` +
            `${sample.cpuS.toFixed(2)} CPU s, ${sample.rssMiB.toFixed(0)} MiB` +
            (sample.detail ? ` (${sample.detail})` : "") +
            (sample.proxy
              ? `; proxy lateness mean ${sample.proxy.meanLatenessMs.toFixed(2)} / p99 ${sample.proxy.p99LatenessMs} / ` +
                `max ${sample.proxy.maxLatenessMs.toFixed(1)} ms ` +
                `over ${sample.proxy.chunks} chunks, ${sample.proxy.cpuS.toFixed(2)} CPU s`
              : ""),
        );
      } catch (err) {
        const message = (err instanceof Error ? err.message : String(err)).split("\n")[0] ?? "";
        result.failures.push(message.startsWith(`${c.id}: `) ? message.slice(c.id.length + 2) : message);
        log(`  FAILED: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
  return results;
}

/** The commit measured, and whether the working tree (the engine above all) differed from it. */
async function sourceState(): Promise<{ commit: string; dirty: string }> {
  const commit = (await firstLine("git", ["-C", REPO, "rev-parse", "--short", "HEAD"])) || "?";
  const changed = async (...paths: string[]) =>
    Boolean(await firstLine("git", ["-C", REPO, "status", "--porcelain", "--", ...paths]));
  const tree = await changed();
  const engine = await changed("lambda");
  return {
    commit,
    dirty: !tree ? "clean" : engine ? "dirty, lambda/ modified" : "dirty outside lambda/ (engine as committed)",
  };
}

async function machineFacts(
  started: Date,
  loadBefore: number[],
  loadAfter: number[],
  source: { commit: string; dirty: string },
  servers: ServerKind[],
): Promise<string[]> {
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
    `date: ${started.toISOString()}; engine bundled from commit ${source.commit}, working tree ${source.dirty} at the start`,
    `CPU: ${cpus[0]?.model ?? "?"}, ${cpus.length} cores; memory ${Math.round(os.totalmem() / 2 ** 30)} GiB; ${osName}, Linux ${os.release()}`,
    `load average (1 min) before / after: ${loadBefore[0]?.toFixed(2)} / ${loadAfter[0]?.toFixed(2)} (other work shares these cores: figures are noisy)`,
    `Node ${process.version}; ssh2 ${pkg("ssh2")} (native crypto binding ${binding ? "loaded" : "not loadable on this Node: ciphers run on node:crypto"}); ssh2-sftp-client ${pkg("ssh2-sftp-client")}; @aws-sdk/client-s3 ${pkg("@aws-sdk/client-s3")}; @aws-sdk/lib-storage ${pkg("@aws-sdk/lib-storage")}; s3rver ${pkg("s3rver")}`,
    `${await firstLine("ssh", ["-V"])}; ${await firstLine("rclone", ["version"])}` +
      (servers.includes("proftpd") ? `; ${await firstLine("proftpd", ["-v"])}` : ""),
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
