import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { reportMetrics, type BridgeConfigInput, type RunReport } from "../../lambda/bridge";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy";
import { waitFor } from "../support/wait";

/**
 * The stream's SFTP endpoint options (readyTimeoutMs, algorithms, keepaliveIntervalMs, concurrency) against the
 * embedded server, each checked by what the server saw or by how the engine failed, not by what the config says.
 */
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const KiB = 1024;
const MiB = 1024 * KiB;

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

/** Accepts TCP connections and never says a word: no SSH identification line, so the handshake cannot start. */
async function startSilentListener(): Promise<{ port: number; accepted: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("SFTP endpoint options on the embedded server", () => {
  let env: BridgeEnv;
  let proxy: FaultProxy;

  beforeAll(async () => {
    env = await startBridgeEnv();
    proxy = await startFaultProxy(env.sftp.host, env.sftp.port);
  });
  beforeEach(() => {
    proxy.rules = {};
  });
  afterAll(async () => {
    await proxy?.close();
    await env?.close();
  });

  const bridgeWith = (edit: (sftp: BridgeConfigInput["streams"][string]["sftp"]) => void) =>
    env.bridge(env.config((doc) => edit(doc.streams.psp!.sftp)));

  async function receiptKeysFor(name: string): Promise<string[]> {
    const out = await env.s3Client.send(new ListObjectsV2Command({ Bucket: env.bucket, Prefix: "_bridge/receipts/" }));
    return (out.Contents ?? []).map((o) => o.Key ?? "").filter((k) => k.includes(name));
  }

  const failedCodes = (report: RunReport) => report.streams.flatMap((s) => s.failed.map((f) => f.code));

  it("readyTimeoutMs: a server that never sends its banner fails the batch once, within about readyTimeoutMs", async () => {
    const silent = await startSilentListener();
    try {
      const keys = ["psp/outbound/ready/one.xml", "psp/outbound/ready/two.xml"];
      for (const key of keys) await env.put(key, `<${key}/>`);
      const started = Date.now();
      const report = await bridgeWith((sftp) => {
        sftp.port = silent.port;
        sftp.readyTimeoutMs = 800;
      }).push(keys.map((key) => ({ bucket: env.bucket, key })));
      const elapsed = Date.now() - started;

      // Both files share the one connection attempt, so the batch waits one timeout, not one per file.
      expect(elapsed).toBeGreaterThanOrEqual(750);
      expect(elapsed).toBeLessThan(1600);
      expect(silent.accepted()).toBe(1);
      expect(report.ok).toBe(false);
      const failed = report.streams[0]?.failed ?? [];
      expect(failed.map((f) => f.source).sort()).toEqual(keys.map((k) => `s3://${env.bucket}/${k}`).sort());
      expect(failedCodes(report)).toEqual(["SFTP_CONNECT_TIMEOUT", "SFTP_CONNECT_TIMEOUT"]);
      expect(failed[0]?.message).toBe(`sftp connect 127.0.0.1:${silent.port}: timed out after 800 ms`);
      expect(reportMetrics(report)[0]?.values.ConnectionTimeouts).toBe(1);
      // Nothing lost: the objects stay in S3 for the retry, and no receipt claims a delivery.
      for (const key of keys) expect(await env.get(key)).toBeDefined();
      expect(await receiptKeysFor("ready/")).toEqual([]);
      expect(existsSync(env.local("/IN/ready"))).toBe(false);
    } finally {
      await silent.close();
    }
  }, 20_000);

  it("algorithms: a cipher override is what the server negotiates, and the file still arrives intact", async () => {
    const body = pattern(3 * MiB + 7, 1);
    await env.put("psp/outbound/algo/default.bin", body);
    await env.put("psp/outbound/algo/ctr.bin", body);

    // The contrast first: without an override the pair negotiates something else, so the check below means something.
    env.sftp.resetStats();
    const plain = await env.bridge().push([{ bucket: env.bucket, key: "psp/outbound/algo/default.bin" }]);
    expect(plain.ok).toBe(true);
    expect(env.sftp.observed.handshakes.map((h) => h.cs.cipher)).not.toContain("aes256-ctr");

    env.sftp.resetStats();
    const report = await bridgeWith((sftp) => {
      sftp.algorithms = { cipher: ["aes256-ctr"] };
    }).push([{ bucket: env.bucket, key: "psp/outbound/algo/ctr.bin" }]);
    expect(report.ok).toBe(true);
    expect(env.sftp.observed.handshakes).toHaveLength(1);
    expect(env.sftp.observed.handshakes[0]).toMatchObject({
      cs: { cipher: "aes256-ctr" },
      sc: { cipher: "aes256-ctr" },
    });
    expect(sha(await readFile(env.local("/IN/algo/ctr.bin")))).toBe(sha(body));
  }, 30_000);

  it("algorithms: an override the server does not offer fails the handshake with a message that says so", async () => {
    await env.put("psp/outbound/algo/cbc.xml", "<cbc/>");
    env.sftp.resetStats();
    const report = await bridgeWith((sftp) => {
      // ssh2 supports CBC as a client but its server, like OpenSSH's, no longer offers it by default.
      sftp.algorithms = { cipher: ["aes128-cbc"] };
    }).push([{ bucket: env.bucket, key: "psp/outbound/algo/cbc.xml" }]);
    expect(report.ok).toBe(false);
    const failed = report.streams[0]?.failed[0];
    expect(failed?.code).toBe("SFTP_CONNECT_FAILED");
    expect(failed?.message).toMatch(
      new RegExp(`^sftp connect 127\\.0\\.0\\.1:${env.sftp.port}: handshake failed`, "i"),
    );
    expect(failed?.message).toMatch(/cipher/);
    expect(env.sftp.stats.sessionsOpened).toBe(0);
    expect(existsSync(env.local("/IN/algo/cbc.xml"))).toBe(false);
    expect(await env.get("psp/outbound/algo/cbc.xml")).toBeDefined();
  }, 20_000);

  it("keepaliveIntervalMs: a connection that goes silent mid-file is given up after a few missed keepalives", async () => {
    const body = pattern(4 * MiB, 2);
    await env.put("psp/outbound/keepalive/push.bin", body);
    // Past the handshake and into the file's data, then nothing gets through, keepalive probes included.
    proxy.rules = { stallUpstreamAfter: 1 * MiB };
    const started = Date.now();
    const report = await bridgeWith((sftp) => {
      sftp.port = proxy.port;
      sftp.keepaliveIntervalMs = 200;
      // Far away: only the keepalive can end this within the test's bound.
      sftp.operationTimeoutMs = 6_000;
    }).push([{ bucket: env.bucket, key: "psp/outbound/keepalive/push.bin" }]);
    const elapsed = Date.now() - started;

    // ssh2 gives up after keepaliveCountMax (3) unanswered probes: about 4 intervals after the stall.
    expect(elapsed).toBeLessThan(4_000);
    expect(report.ok).toBe(false);
    // ssh2 cuts the connection; whichever notices first words it (the session, or the SFTP channel's pending write).
    const failed = report.streams[0]?.failed[0];
    expect(["SFTP_CONNECT_FAILED", "SFTP_OPERATION_FAILED"]).toContain(failed?.code);
    expect(failed?.message).toMatch(/: (connection lost|No response from server)$/);
    expect(existsSync(env.local("/IN/keepalive/push.bin"))).toBe(false);
    expect(await env.get("psp/outbound/keepalive/push.bin")).toBeDefined();
  }, 40_000);

  it("an SFTP layer that stops answering mid-file is timed out and counted as a connection timeout", async () => {
    const body = pattern(4 * MiB, 3);
    await env.put("psp/outbound/stall/push.bin", body);
    proxy.rules = { stallUpstreamAfter: 1 * MiB };
    const report = await bridgeWith((sftp) => {
      sftp.port = proxy.port;
      // Keepalives off, so the operation timeout is what notices the stall.
      sftp.keepaliveIntervalMs = 0;
      sftp.operationTimeoutMs = 800;
    }).push([{ bucket: env.bucket, key: "psp/outbound/stall/push.bin" }]);
    expect(report.streams[0]?.failed[0]).toMatchObject({
      code: "SFTP_OPERATION_TIMEOUT",
      message: "sftp write: no answer within 800 ms",
    });
    expect(reportMetrics(report)[0]?.values).toMatchObject({ Errors: 1, ConnectionTimeouts: 1, FilesMoved: 0 });
    expect(existsSync(env.local("/IN/stall/push.bin"))).toBe(false);
  }, 30_000);

  it("concurrency: a batch of 12 files keeps at most sftp.concurrency open for writing, over one SSH session", async () => {
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < 12; i++)
      bodies.set(`psp/outbound/many/f${String(i).padStart(2, "0")}.bin`, pattern(600 * KiB, i));
    for (const [key, body] of bodies) await env.put(key, body);
    // Earlier tests' cut connections may still hold a write handle until the server notices they are gone.
    await waitFor("earlier connections to close", () => env.sftp.stats.activeSessions === 0);
    env.sftp.resetStats();
    // Writes wait until 3 files are open (at most a few seconds): a loaded machine that schedules the bridge's
    // workers one after another would otherwise see fewer files open at once than the setting allows.
    env.sftp.faults.holdWritesUntilOpen = 3;
    let report: RunReport;
    try {
      report = await bridgeWith((sftp) => {
        sftp.concurrency = 3;
      }).push([...bodies.keys()].map((key) => ({ bucket: env.bucket, key })));
    } finally {
      env.sftp.faults.holdWritesUntilOpen = undefined;
    }
    expect(report.ok).toBe(true);
    expect(report.streams[0]?.files).toBe(12);
    // Exactly 3: fewer would mean the setting is not used for parallelism at all.
    expect(env.sftp.observed.maxOpenWriteHandles).toBe(3);
    expect(env.sftp.observed.openWriteHandles).toBe(0);
    expect(env.sftp.stats.sessionsOpened).toBe(1);
    expect(env.sftp.stats.maxConcurrentSessions).toBe(1);
    expect((await readdir(env.local("/IN/many"))).sort()).toEqual([...bodies.keys()].map((k) => k.split("/").pop()));
    for (const [key, body] of bodies) {
      expect(sha(await readFile(env.local(`/IN/many/${key.split("/").pop()!}`)))).toBe(sha(body));
    }
  }, 60_000);

  it("windowBytes: a pull grants the server the configured window (ssh2 alone never grants more than 2 MiB)", async () => {
    const body = pattern(24 * 1024 * KiB, 9);
    await mkdir(env.local("/OUT/window"), { recursive: true });
    await writeFile(env.local("/OUT/window/big.bin"), body);
    const pullOnce = async (windowBytes?: number) => {
      env.sftp.resetStats();
      const report = await env
        .bridge(
          env.config((doc) => {
            doc.streams.psp!.pull = {
              from: "/OUT/window",
              to: "window/",
              minAgeSeconds: 0,
              stableCheckMs: 0,
              after: "delete",
            };
            if (windowBytes !== undefined) doc.streams.psp!.sftp.windowBytes = windowBytes;
          }),
        )
        .pull(["psp"]);
      expect(report.streams[0]?.files).toBe(1);
      expect(sha((await env.get("psp/window/big.bin"))!)).toBe(sha(body));
      await writeFile(env.local("/OUT/window/big.bin"), body);
      return env.sftp.observed.maxClientWindow;
    };
    // Credit goes back in steps as the data arrives, so the window stays near what was granted, far above 2 MiB.
    expect(await pullOnce()).toBeGreaterThan(12 * 1024 * KiB);
    expect(await pullOnce(4 * 1024 * KiB)).toBeLessThanOrEqual(4 * 1024 * KiB);
    // A distant server (every answer 40 ms late): up to three quarters of the window in flight, so a round trip
    // carries 12 MiB instead of 4.
    env.sftp.faults.delayMs = 40;
    try {
      await pullOnce();
    } finally {
      env.sftp.faults.delayMs = 0;
    }
    expect(env.sftp.observed.maxPendingReadBytes).toBeGreaterThan(8 * 1024 * KiB);
    expect(env.sftp.observed.maxPendingReadBytes).toBeLessThanOrEqual(12 * 1024 * KiB);
  }, 60_000);
});
