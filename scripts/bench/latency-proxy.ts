// A TCP proxy that puts a partner "far away": every chunk reaches the other side rttMs/2 after it arrived, in each
// direction, and nothing else changes. netem is not available on these machines, so the delay lives in user space.
//
// Each chunk is due at its own arrival time + delay; one timer per direction wakes for the oldest due chunk and sends
// every chunk that is due by then, so a busy link is not slowed to one chunk per timer (no serialisation) and order
// is kept (due times only grow). There is no bandwidth cap: the proxy reads as fast as the sender writes and only
// pauses a sender when a direction holds too much (delayed + not yet taken by the receiver), which bounds memory the
// way a finite router buffer would. FIN and RST travel like data: the far side sees the end (or the reset) after
// every byte sent before it, one delay later. The TCP handshake is cut short on loopback: the upstream connection
// opens one delay after the client's (the SYN's trip), so a server that speaks first (SSH) is heard after one RTT
// instead of two.
//
// Node timers wake late under load (20-45 ms was seen on 2 busy cores), which would add to the RTT; the lateness
// (actual send time minus due time) is measured per chunk so a run can say how far off its RTT was. Run it in a
// process of its own at real-time priority (latency-proxy-child.ts, spawnLatencyProxy) to keep it small.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, Socket, type Server } from "node:net";
import { createInterface } from "node:readline";

export interface LatencyProxyOptions {
  targetHost: string;
  targetPort: number;
  /** Round-trip time added: rttMs/2 in each direction. */
  rttMs: number;
  /** Default 127.0.0.1. */
  listenHost?: string;
  /** Default: any free port. */
  listenPort?: number;
  /** Bytes one direction may hold (delayed + waiting in the receiving socket) before the sender is paused. */
  maxQueuedBytes?: number;
}

export interface LatencyStats {
  /** Largest lateness of a chunk: when it was sent minus when it was due, ms. */
  maxLatenessMs: number;
  /** Chunks (and bytes) sent after their delay, both directions. */
  chunks: number;
  bytes: number;
  /** Lateness percentiles over the chunks (0.1 ms resolution; 100 ms when beyond). */
  p50LatenessMs: number;
  p99LatenessMs: number;
  meanLatenessMs: number;
  connections: number;
  /** Most bytes one direction held at once, and how often a sender was paused for it. */
  maxQueuedBytes: number;
  pauses: number;
}

export interface LatencyProxy {
  host: string;
  port: number;
  rttMs: number;
  /** Live figures since start (or the last resetStats). */
  stats: LatencyStats;
  resetStats(): void;
  close(): Promise<void>;
}

export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024;

const BUCKET_MS = 0.1;
const BUCKETS = 1000;

interface Recorder {
  readonly stats: LatencyStats;
  sent(bytes: number, latenessMs: number): void;
  reset(): void;
}

/** Lateness figures; the percentiles come from a histogram so millions of chunks cost no memory. */
function recorder(): Recorder {
  const histogram = new Float64Array(BUCKETS + 1);
  let sum = 0;
  const percentile = (p: number) => {
    const want = p * stats.chunks;
    let seen = 0;
    for (let i = 0; i <= BUCKETS; i++) {
      seen += histogram[i]!;
      if (seen >= want && seen > 0) return Math.round((i + 1) * BUCKET_MS * 10) / 10;
    }
    return 0;
  };
  const stats: LatencyStats = {
    maxLatenessMs: 0,
    chunks: 0,
    bytes: 0,
    connections: 0,
    maxQueuedBytes: 0,
    pauses: 0,
    get p50LatenessMs() {
      return percentile(0.5);
    },
    get p99LatenessMs() {
      return percentile(0.99);
    },
    get meanLatenessMs() {
      return stats.chunks ? sum / stats.chunks : 0;
    },
  };
  return {
    stats,
    sent(bytes, latenessMs) {
      stats.chunks += 1;
      stats.bytes += bytes;
      if (latenessMs > stats.maxLatenessMs) stats.maxLatenessMs = latenessMs;
      sum += latenessMs;
      histogram[Math.min(BUCKETS, Math.floor(latenessMs / BUCKET_MS))]! += 1;
    },
    reset() {
      Object.assign(stats, { maxLatenessMs: 0, chunks: 0, bytes: 0, connections: 0, maxQueuedBytes: 0, pauses: 0 });
      sum = 0;
      histogram.fill(0);
    },
  };
}

type Item = { due: number; chunk: Buffer } | { due: number; chunk: "end" | "reset" };

/** One direction of one connection: from -> (delay) -> to. */
class Direction {
  private queue: (Item | undefined)[] = [];
  private head = 0;
  private queued = 0;
  private timer: NodeJS.Timeout | undefined;
  private paused = false;
  private closed = false;
  /** Set once `to` may be written (the upstream socket exists only after the SYN's delay). */
  private ready: boolean;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly delayMs: number,
    private readonly limit: number,
    private readonly recorder: Recorder,
    ready: boolean,
  ) {
    this.ready = ready;
    let finished = false;
    from.on("data", (chunk: Buffer) => this.push(chunk));
    from.on("end", () => {
      finished = true;
      this.push("end");
    });
    from.on("close", () => {
      // A close without a clean end (reset, error, destroyed) reaches the far side as a reset.
      if (!finished) {
        finished = true;
        this.push("reset");
      }
    });
    to.on("drain", () => this.maybeResume());
    to.on("close", () => this.abandon());
  }

  start(): void {
    this.ready = true;
    this.flush();
  }

  private push(chunk: Buffer | "end" | "reset"): void {
    if (this.closed) return;
    this.queue.push({ due: performance.now() + this.delayMs, chunk } as Item);
    if (typeof chunk !== "string") {
      this.queued += chunk.length;
      const held = this.queued + this.to.writableLength;
      const stats = this.recorder.stats;
      if (held > stats.maxQueuedBytes) stats.maxQueuedBytes = held;
      if (held > this.limit && !this.paused) {
        this.paused = true;
        stats.pauses += 1;
        this.from.pause();
      }
    }
    if (this.timer === undefined) this.arm();
  }

  private arm(): void {
    const next = this.queue[this.head];
    if (!next || !this.ready || this.closed) return;
    // Timers count whole milliseconds from a loop time that may be stale, so they can fire a little early: round
    // up, and flush() checks the due time against the clock again (a chunk never leaves before its time).
    const wait = Math.max(0, Math.ceil(next.due - performance.now()));
    this.timer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.timer = undefined;
    if (!this.ready || this.closed) return;
    const now = performance.now();
    const to = this.to;
    to.cork();
    let item = this.queue[this.head];
    while (item && item.due <= now) {
      this.queue[this.head++] = undefined;
      if (item.chunk === "end") {
        to.end();
      } else if (item.chunk === "reset") {
        this.reset();
      } else {
        this.queued -= item.chunk.length;
        this.recorder.sent(item.chunk.length, now - item.due);
        to.write(item.chunk);
      }
      item = this.queue[this.head];
    }
    if (!to.destroyed) to.uncork();
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.maybeResume();
    this.arm();
  }

  /** Resets `to` once what was written before the reset has left this process (a reset discards unsent bytes). */
  private reset(): void {
    const to = this.to;
    if (to.destroyed) return;
    const go = () => {
      if (!to.destroyed) to.resetAndDestroy();
    };
    to.uncork();
    if (to.writableLength === 0) go();
    else to.once("drain", go);
  }

  private maybeResume(): void {
    if (this.paused && this.queued + this.to.writableLength <= this.limit / 2) {
      this.paused = false;
      if (!this.from.destroyed) this.from.resume();
    }
  }

  /** `to` is gone: nothing queued can be delivered any more. */
  abandon(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue = [];
    this.head = 0;
    this.queued = 0;
  }
}

export async function startLatencyProxy(options: LatencyProxyOptions): Promise<LatencyProxy> {
  const { targetHost, targetPort, rttMs } = options;
  if (!(rttMs >= 0)) throw new Error(`rttMs must be >= 0, got ${rttMs}`);
  const delayMs = rttMs / 2;
  const limit = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  const record = recorder();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.setNoDelay(true);
    // Errors surface as a close without an end, which Direction turns into a reset of the far side.
    s.on("error", () => undefined);
    s.on("close", () => sockets.delete(s));
  };

  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    record.stats.connections += 1;
    track(client);
    const upstream = new Socket({ allowHalfOpen: true });
    track(upstream);
    const up = new Direction(client, upstream, delayMs, limit, record, false);
    new Direction(upstream, client, delayMs, limit, record, true);
    const connectLater = setTimeout(() => {
      timers.delete(connectLater);
      upstream.connect(targetPort, targetHost);
      up.start();
    }, delayMs);
    timers.add(connectLater);
  });
  server.on("error", () => undefined);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.listenPort ?? 0, options.listenHost ?? "127.0.0.1", () => {
      server.removeListener("error", reject);
      resolve();
    });
  });
  const address = server.address() as { address: string; port: number };
  let closing: Promise<void> | undefined;
  return {
    host: address.address,
    port: address.port,
    rttMs,
    stats: record.stats,
    resetStats: () => record.reset(),
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

/** The proxy in a process of its own (see latency-proxy-child.ts for the protocol on its stdin and stdout). */
export interface SpawnedLatencyProxy {
  host: string;
  port: number;
  rttMs: number;
  pid: number;
  /** The child's scheduling, as the kernel reports it: "SCHED_FIFO 10" when real-time priority took effect. */
  scheduling: string;
  /** Figures since start or the last resetStats(), plus the child's CPU seconds over the same span. */
  stats(): Promise<LatencyStats & { cpuS: number }>;
  resetStats(): Promise<void>;
  /** Ends the child; resolves with its last figures. */
  close(): Promise<LatencyStats & { cpuS: number }>;
}

export interface SpawnOptions {
  /** latency-proxy-child.ts (run with the TypeScript loader) or a bundle of it (.js, run by plain node). */
  script: string;
  /** Run under `chrt -f <priority>` (SCHED_FIFO; needs root or CAP_SYS_NICE). */
  realtimePriority?: number;
  node?: string;
}

export async function spawnLatencyProxy(options: LatencyProxyOptions, how: SpawnOptions): Promise<SpawnedLatencyProxy> {
  const nodeArgs = how.script.endsWith(".ts") ? ["-r", "@swc-node/register", how.script] : [how.script];
  const args = [
    ...nodeArgs,
    "--target-host",
    options.targetHost,
    "--target-port",
    String(options.targetPort),
    "--rtt",
    String(options.rttMs),
    ...(options.listenHost ? ["--listen-host", options.listenHost] : []),
    ...(options.maxQueuedBytes ? ["--max-queued-bytes", String(options.maxQueuedBytes)] : []),
  ];
  const node = how.node ?? process.execPath;
  const child: ChildProcess =
    how.realtimePriority === undefined
      ? spawn(node, args, { stdio: ["pipe", "pipe", "inherit"] })
      : spawn("chrt", ["-f", String(how.realtimePriority), node, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  const early: string[] = [];
  lines.on("line", (line) => {
    const next = waiting.shift();
    if (next) next(line);
    else early.push(line);
  });
  const exited = new Promise<string>((resolve) => {
    child.once("exit", (code, signal) => resolve(`latency proxy exited (code ${code}, signal ${signal})`));
    child.once("error", (err) => resolve(`cannot run the latency proxy: ${err.message}`));
  });
  const nextLine = async (): Promise<Record<string, unknown>> => {
    const line =
      early.shift() ??
      (await Promise.race([
        new Promise<string>((resolve) => waiting.push(resolve)),
        exited.then((why) => Promise.reject(new Error(why))),
      ]));
    return JSON.parse(line) as Record<string, unknown>;
  };
  const ask = async (command: string) => {
    child.stdin!.write(`${command}\n`);
    return nextLine();
  };

  let ready: Record<string, unknown>;
  try {
    ready = await nextLine();
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  const onExit = () => child.kill("SIGKILL");
  process.once("exit", onExit);
  let closing: Promise<LatencyStats & { cpuS: number }> | undefined;
  return {
    host: ready.host as string,
    port: ready.port as number,
    rttMs: options.rttMs,
    pid: child.pid!,
    scheduling: ready.scheduling as string,
    stats: async () => (await ask("stats")) as unknown as LatencyStats & { cpuS: number },
    resetStats: async () => {
      await ask("reset");
    },
    close() {
      closing ??= (async () => {
        process.removeListener("exit", onExit);
        const last = (await ask("stats")) as unknown as LatencyStats & { cpuS: number };
        child.stdin!.end();
        const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(killer);
        return last;
      })();
      return closing;
    },
  };
}
