// The benchmark's latency proxy (scripts/bench/latency-proxy.ts): it must add the round-trip time it is asked for,
// never less, and nothing else: no bandwidth cap, no reordering, no lost end or reset. Delays are checked with firm
// lower bounds and generous upper ones, since timers on a busy 2-core machine wake late but never early.
import { createHash, randomBytes } from "node:crypto";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import path from "node:path";
import {
  spawnLatencyProxy,
  startLatencyProxy,
  type LatencyProxy,
  type SpawnedLatencyProxy,
} from "../../scripts/bench/latency-proxy";

jest.setTimeout(20_000);

const MiB = 1024 * 1024;
const CHILD = path.join(__dirname, "..", "..", "scripts", "bench", "latency-proxy-child.ts");
// Timers wake late under load, never early; these bounds only catch a proxy that adds far more than asked.
const SLACK_MS = 250;

const servers: Server[] = [];
const proxies: { close(): Promise<unknown> }[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const p of proxies.splice(0)) await p.close();
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
});

async function listen(onConnection: (socket: Socket) => void): Promise<number> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on("error", () => undefined);
    onConnection(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true, noDelay: true }, () => resolve(socket));
    sockets.push(socket);
    socket.once("error", reject);
  });
}

async function proxyTo(port: number, rttMs: number, maxQueuedBytes?: number): Promise<LatencyProxy> {
  const proxy = await startLatencyProxy({ targetHost: "127.0.0.1", targetPort: port, rttMs, maxQueuedBytes });
  proxies.push(proxy);
  return proxy;
}

const echoServer = () => listen((socket) => socket.pipe(socket));

/** Sends `request` and resolves with the milliseconds until as many bytes came back. */
function roundTrip(socket: Socket, request: Buffer): Promise<number> {
  return new Promise((resolve) => {
    let got = 0;
    const t0 = performance.now();
    const onData = (chunk: Buffer) => {
      got += chunk.length;
      if (got >= request.length) {
        socket.removeListener("data", onData);
        resolve(performance.now() - t0);
      }
    };
    socket.on("data", onData);
    socket.write(request);
  });
}

/** A server that hashes everything it receives and reports when the sender has ended. */
async function sinkServer(): Promise<{ port: number; done: Promise<{ bytes: number; sha: string; at: number }> }> {
  let resolveDone!: (v: { bytes: number; sha: string; at: number }) => void;
  const done = new Promise<{ bytes: number; sha: string; at: number }>((r) => (resolveDone = r));
  const port = await listen((socket) => {
    const hash = createHash("sha256");
    let bytes = 0;
    socket.on("data", (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    socket.on("end", () => {
      resolveDone({ bytes, sha: hash.digest("hex"), at: performance.now() });
      socket.end();
    });
  });
  return { port, done };
}

/** Writes `data` in 1 MiB pieces, honouring backpressure, then ends. */
async function send(socket: Socket, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += MiB) {
    if (!socket.write(data.subarray(at, at + MiB))) await new Promise((resolve) => socket.once("drain", resolve));
  }
  socket.end();
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("latency proxy", () => {
  test("a request/response costs the RTT through the proxy, about nothing direct", async () => {
    const port = await echoServer();
    const direct = await dial(port);
    const directMs = await roundTrip(direct, Buffer.from("ping"));

    const proxy = await proxyTo(port, 100);
    const far = await dial(proxy.port);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(await roundTrip(far, Buffer.from(`ping ${i}`)));
    console.log(
      `echo round trip: direct ${directMs.toFixed(1)} ms; at rtt 100: ${times.map((t) => t.toFixed(1)).join(", ")} ms;` +
        ` proxy lateness max ${proxy.stats.maxLatenessMs.toFixed(1)} ms over ${proxy.stats.chunks} chunks`,
    );
    expect(directMs).toBeLessThan(50);
    for (const t of times) {
      expect(t).toBeGreaterThanOrEqual(100);
      expect(t).toBeLessThan(100 + SLACK_MS);
    }
    expect(proxy.stats.chunks).toBe(10);
    expect(proxy.stats.connections).toBe(1);
    expect(proxy.stats.maxLatenessMs).toBeGreaterThanOrEqual(0);
    expect(proxy.stats.maxLatenessMs).toBeLessThan(SLACK_MS);
  });

  test("chunks sent apart are each delayed once, not queued behind each other's timers", async () => {
    const port = await echoServer();
    const proxy = await proxyTo(port, 100);
    const far = await dial(proxy.port);
    const arrivals: number[] = [];
    far.on("data", () => arrivals.push(performance.now()));
    const t0 = performance.now();
    // Ten chunks 10 ms apart: each comes back about 100 ms after it left, so the last at ~190 ms; a proxy that
    // serialised them on their timers would need 10 x 100 ms.
    for (let i = 0; i < 10; i++) {
      far.write(Buffer.from([i]));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    while (arrivals.length < 10 && performance.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 10));
    const last = (arrivals[arrivals.length - 1] ?? Infinity) - t0;
    console.log(`ten chunks 10 ms apart at rtt 100: last back after ${last.toFixed(1)} ms`);
    expect(arrivals.length).toBeGreaterThanOrEqual(1);
    expect(last).toBeGreaterThanOrEqual(190);
    expect(last).toBeLessThan(190 + SLACK_MS);
  });

  test("bulk is not capped: 64 MiB one way at rtt 50, bytes in order", async () => {
    const total = 64 * MiB;
    const data = randomBytes(total);
    const expected = sha(data);
    const directSink = await sinkServer();
    const direct = await dial(directSink.port);
    const d0 = performance.now();
    await send(direct, data);
    const directGot = await directSink.done;
    const directMBps = total / 1e6 / ((directGot.at - d0) / 1000);

    const sink = await sinkServer();
    const proxy = await proxyTo(sink.port, 50);
    const far = await dial(proxy.port);
    const t0 = performance.now();
    await send(far, data);
    const got = await sink.done;
    const seconds = (got.at - t0) / 1000;
    const mbps = total / 1e6 / seconds;
    // The connection waits one delay (the SYN's trip) and the last byte one more; what is left is the transfer.
    const transferMBps = total / 1e6 / (seconds - 0.05);
    console.log(
      `64 MiB one way: direct ${directMBps.toFixed(0)} MB/s; through the proxy at rtt 50 ${mbps.toFixed(0)} MB/s ` +
        `(${(seconds * 1000).toFixed(0)} ms; ${transferMBps.toFixed(0)} MB/s without the two 25 ms delays); ` +
        `proxy lateness p50 ${proxy.stats.p50LatenessMs} / p99 ${proxy.stats.p99LatenessMs} / max ` +
        `${proxy.stats.maxLatenessMs.toFixed(1)} ms over ${proxy.stats.chunks} chunks, most queued ` +
        `${(proxy.stats.maxQueuedBytes / MiB).toFixed(1)} MiB`,
    );
    expect(directGot).toMatchObject({ bytes: total, sha: expected });
    expect(got).toMatchObject({ bytes: total, sha: expected });
    expect(seconds * 1000).toBeGreaterThanOrEqual(50);
    expect(proxy.stats.bytes).toBe(total);
    // Caps this catches: a window of 4 MiB per 50 ms RTT is 84 MB/s, ssh2's 2 MiB is 42, and a proxy that waited a
    // delay per 64 KiB chunk would do 2.6. Sender, proxy and hashing receiver share this process's one thread (the
    // direct figure pays for two of them), so the bounds leave room for a busy machine.
    expect(transferMBps).toBeGreaterThan(100);
    expect(transferMBps).toBeGreaterThan(0.3 * directMBps);
  });

  test("the other way too, and both ways at once keep each stream's order", async () => {
    const up = 8 * MiB;
    const down = 8 * MiB;
    const downData = randomBytes(down);
    let serverGot: Promise<string> = Promise.resolve("");
    const port = await listen((socket) => {
      const hash = createHash("sha256");
      serverGot = new Promise((resolve) => {
        socket.on("data", (c: Buffer) => hash.update(c));
        socket.on("end", () => resolve(hash.digest("hex")));
      });
      socket.end(downData);
    });
    const proxy = await proxyTo(port, 50);
    const far = await dial(proxy.port);
    const clientHash = createHash("sha256");
    const clientGot = new Promise<string>((resolve) => {
      far.on("data", (c: Buffer) => clientHash.update(c));
      far.on("end", () => resolve(clientHash.digest("hex")));
    });
    const upData = randomBytes(up);
    await send(far, upData);
    expect(await clientGot).toBe(sha(downData));
    expect(await serverGot).toBe(sha(upData));
  });

  test("memory is bounded: a receiver that stops reading pauses the sender", async () => {
    let receiver!: Socket;
    const hash = createHash("sha256");
    let received = 0;
    const ended = new Promise<void>((resolve) => {
      void listen((socket) => {
        receiver = socket;
        socket.pause();
        socket.on("data", (c: Buffer) => {
          received += c.length;
          hash.update(c);
        });
        socket.on("end", () => resolve());
      }).then((port) => (receiverPort = port));
    });
    let receiverPort = 0;
    while (!receiverPort) await new Promise((r) => setTimeout(r, 5));
    const limit = MiB;
    const proxy = await proxyTo(receiverPort, 20, limit);
    const far = await dial(proxy.port);
    const total = 64 * MiB;
    const data = randomBytes(total);
    far.end(data);
    // Wait until the proxy paused the sender and the rest piles up in the sender's own buffer.
    const t0 = performance.now();
    while (proxy.stats.pauses === 0 && performance.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    const stuck = far.writableLength;
    console.log(
      `receiver not reading: proxy held at most ${(proxy.stats.maxQueuedBytes / MiB).toFixed(2)} MiB ` +
        `(limit 1 MiB), ${proxy.stats.pauses} pause(s); ${(stuck / MiB).toFixed(1)} MiB waiting in the sender`,
    );
    expect(proxy.stats.pauses).toBeGreaterThanOrEqual(1);
    // One read (at most 64 KiB) can land after the limit is crossed, before the pause takes effect.
    expect(proxy.stats.maxQueuedBytes).toBeLessThanOrEqual(limit + 64 * 1024);
    expect(stuck).toBeGreaterThan(16 * MiB);
    receiver.resume();
    await ended;
    expect(received).toBe(total);
    expect(hash.digest("hex")).toBe(sha(data));
  });

  test("an end travels behind the data, one delay later; the other side can still answer", async () => {
    let serverEndAt = 0;
    let serverData = "";
    const port = await listen((socket) => {
      socket.setEncoding("utf8");
      socket.on("data", (c: string) => (serverData += c));
      socket.on("end", () => {
        serverEndAt = performance.now();
        socket.end(`bye after ${serverData}`);
      });
    });
    const proxy = await proxyTo(port, 100);
    const far = await dial(proxy.port);
    far.setEncoding("utf8");
    let reply = "";
    far.on("data", (c: string) => (reply += c));
    const closed = new Promise<boolean>((resolve) => far.once("close", resolve));
    const ended = new Promise<number>((resolve) => far.once("end", () => resolve(performance.now())));
    const t0 = performance.now();
    far.end("hello");
    const clientEndAt = await ended;
    expect(reply).toBe("bye after hello");
    expect(serverEndAt - t0).toBeGreaterThanOrEqual(50);
    expect(clientEndAt - t0).toBeGreaterThanOrEqual(100);
    expect(clientEndAt - t0).toBeLessThan(100 + SLACK_MS);
    expect(await closed).toBe(false);
  });

  test("a reset travels behind the data too, one delay later", async () => {
    let resetAt = 0;
    const port = await listen((socket) => {
      // Only once the client spoke: a reset that beat the proxy's own connect would be a connect error, not data.
      socket.once("data", () =>
        socket.write("last words", () => {
          resetAt = performance.now();
          socket.resetAndDestroy();
        }),
      );
    });
    const proxy = await proxyTo(port, 100);
    const far = await dial(proxy.port);
    far.setEncoding("utf8");
    let got = "";
    far.on("data", (c: string) => (got += c));
    far.write("hi");
    const failed = new Promise<{ code?: string; at: number }>((resolve) =>
      far.once("error", (err: NodeJS.ErrnoException) => resolve({ code: err.code, at: performance.now() })),
    );
    const outcome = await failed;
    expect(got).toBe("last words");
    expect(outcome.code).toBe("ECONNRESET");
    expect(outcome.at - resetAt).toBeGreaterThanOrEqual(50);
    expect(outcome.at - resetAt).toBeLessThan(50 + SLACK_MS);
  });

  test("a client that resets is seen as a reset by the server; a refused upstream resets the client", async () => {
    let serverError: Promise<{ code?: string; at: number }> = new Promise(() => undefined);
    let connected!: () => void;
    const serverConnected = new Promise<void>((resolve) => (connected = resolve));
    const port = await listen((socket) => {
      serverError = new Promise((resolve) =>
        socket.once("error", (err: NodeJS.ErrnoException) => resolve({ code: err.code, at: performance.now() })),
      );
      connected();
    });
    const proxy = await proxyTo(port, 100);
    const far = await dial(proxy.port);
    await serverConnected;
    const t0 = performance.now();
    far.resetAndDestroy();
    const seen = await serverError;
    expect(seen.code).toBe("ECONNRESET");
    expect(seen.at - t0).toBeGreaterThanOrEqual(50);

    // Nothing listens on the refused port any more: the client hears of it after the SYN's and the RST's trips.
    const gone = await listen(() => undefined);
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const refusing = await proxyTo(gone, 100);
    const t1 = performance.now();
    const doomed = await dial(refusing.port);
    const closed = await new Promise<{ hadError: boolean; at: number }>((resolve) =>
      doomed.once("close", (hadError) => resolve({ hadError, at: performance.now() })),
    );
    expect(closed.hadError).toBe(true);
    expect(closed.at - t1).toBeGreaterThanOrEqual(100);
    expect(closed.at - t1).toBeLessThan(100 + SLACK_MS);
  });

  test("in a process of its own (under chrt as root) it reports its scheduling, figures and CPU time", async () => {
    const port = await echoServer();
    const root = process.getuid?.() === 0;
    const proxy: SpawnedLatencyProxy = await spawnLatencyProxy(
      { targetHost: "127.0.0.1", targetPort: port, rttMs: 100 },
      { script: CHILD, realtimePriority: root ? 10 : undefined },
    );
    proxies.push(proxy);
    expect(proxy.scheduling).toBe(root ? "SCHED_FIFO 10" : "SCHED_OTHER");
    const far = await dial(proxy.port);
    const first = await roundTrip(far, Buffer.from("ping"));
    await proxy.resetStats();
    const second = await roundTrip(far, Buffer.from("pong"));
    const stats = await proxy.stats();
    console.log(
      `spawned proxy (${proxy.scheduling}): round trips ${first.toFixed(1)} / ${second.toFixed(1)} ms, ` +
        `lateness max ${stats.maxLatenessMs.toFixed(2)} ms, CPU ${stats.cpuS.toFixed(3)} s`,
    );
    expect(first).toBeGreaterThanOrEqual(100);
    expect(second).toBeGreaterThanOrEqual(100);
    expect(second).toBeLessThan(100 + SLACK_MS);
    expect(stats.chunks).toBe(2);
    expect(stats.connections).toBe(0);
    expect(stats.cpuS).toBeGreaterThanOrEqual(0);
    const last = await proxy.close();
    expect(last.chunks).toBe(2);
  });
});
