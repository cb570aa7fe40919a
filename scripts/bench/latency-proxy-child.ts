// The latency proxy in a process of its own, so its timers do not wait behind the benchmark's event loop and it can
// run at real-time priority (spawnLatencyProxy starts it under `chrt -f`). Protocol, one JSON object per line: on
// start it prints {host, port, scheduling}; on stdin, "stats" prints the figures since start or the last "reset"
// (with the process's CPU seconds over the same span) and "reset" prints {ok: true}. When stdin ends (the parent is
// done or gone) it closes and exits, so it never outlives the benchmark.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { startLatencyProxy } from "./latency-proxy";

const POLICIES: Record<string, string> = { "0": "SCHED_OTHER", "1": "SCHED_FIFO", "2": "SCHED_RR", "3": "SCHED_BATCH" };

function scheduling(): string {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    // Fields after the command name (which may hold spaces): state is field 3, rt_priority 40, policy 41.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const policy = POLICIES[fields[38] ?? ""] ?? `policy ${fields[38]}`;
    return policy === "SCHED_FIFO" || policy === "SCHED_RR" ? `${policy} ${fields[37]}` : policy;
  } catch {
    return "unknown";
  }
}

const cpuSeconds = () => {
  const u = process.resourceUsage();
  return (u.userCPUTime + u.systemCPUTime) / 1e6;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "target-host": { type: "string", default: "127.0.0.1" },
      "target-port": { type: "string" },
      rtt: { type: "string" },
      "listen-host": { type: "string" },
      "max-queued-bytes": { type: "string" },
    },
  });
  if (!values["target-port"] || values.rtt === undefined) throw new Error("--target-port and --rtt are required");
  const proxy = await startLatencyProxy({
    targetHost: values["target-host"],
    targetPort: Number(values["target-port"]),
    rttMs: Number(values.rtt),
    listenHost: values["listen-host"],
    maxQueuedBytes: values["max-queued-bytes"] ? Number(values["max-queued-bytes"]) : undefined,
  });
  let cpu0 = cpuSeconds();
  const say = (o: object) => process.stdout.write(JSON.stringify(o) + "\n");
  say({ host: proxy.host, port: proxy.port, scheduling: scheduling() });
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const command = line.trim();
    if (command === "stats") say({ ...proxy.stats, cpuS: cpuSeconds() - cpu0 });
    else if (command === "reset") {
      proxy.resetStats();
      cpu0 = cpuSeconds();
      say({ ok: true });
    } else say({ error: `unknown command: ${command}` });
  });
  lines.on("close", () => {
    void proxy.close().then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`latency proxy: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
