import { createHash, randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, readFile, readdir, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { DeleteObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { stringify } from "yaml";
import { createBridge, createCredentialResolver, type BridgeConfigInput, type RunReport } from "../../lambda/bridge";
import { startSftpServer, type EmbeddedSftpServer } from "../../scripts/local/sftp-server";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";
import { handlerEnvironment, lambdaContext, loadHandler } from "../support/handler-env";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy";
import { startHttpFaultProxy, type HttpFaultProxy } from "../support/http-fault-proxy";
import { startLocalAws, type LocalAws } from "../support/local-aws";

/**
 * The reliability promises of DESIGN.md, under faults: connections cut mid-file, refused renames, S3 errors, a
 * deadline mid-batch, duplicate and poison deliveries. Every scenario checks that no file is lost, no partial file is
 * visible at the destination, and the report says what went wrong. A final scan proves no secret reached a log line.
 */
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const MiB = 1024 * 1024;

const tally = { scenarios: 0, transferred: 0, lost: 0 };
function count(report: RunReport): RunReport {
  tally.transferred += report.streams.reduce((n, s) => n + s.files, 0);
  return report;
}

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

describe("fault suite", () => {
  let env: BridgeEnv;
  let sftpProxy: FaultProxy;
  let s3Proxy: HttpFaultProxy;
  let proxiedS3: S3Client;

  beforeAll(async () => {
    env = await startBridgeEnv();
    sftpProxy = await startFaultProxy(env.sftp.host, env.sftp.port);
    s3Proxy = await startHttpFaultProxy(env.s3.endpoint);
    proxiedS3 = new S3Client({
      endpoint: s3Proxy.endpoint,
      region: env.s3.region,
      credentials: env.s3.credentials,
      forcePathStyle: true,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      // Fast retries: the SDK's default backoff would only slow the suite down.
      retryStrategy: undefined,
      maxAttempts: 3,
    });
  });
  beforeEach(() => {
    sftpProxy.rules = {};
    s3Proxy.faults = [];
    tally.scenarios++;
  });
  afterAll(async () => {
    proxiedS3?.destroy();
    await s3Proxy?.close();
    await sftpProxy?.close();
    await env?.close();
    console.log(
      `fault suite: ${tally.scenarios} scenarios, ${tally.transferred} files transferred, ${tally.lost} files lost`,
    );
  });

  /** The engine through both proxies: SFTP via the TCP fault proxy, S3 via the HTTP fault proxy. */
  const faulty = (edit?: (doc: BridgeConfigInput) => void) =>
    env.bridge(
      env.config((doc) => {
        doc.streams.psp!.sftp.port = sftpProxy.port;
        edit?.(doc);
      }),
      { s3: proxiedS3 },
    );

  async function drop(remote: string, body: Buffer | string): Promise<void> {
    const file = env.local(remote);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, body);
    const old = new Date(Date.now() - 120_000);
    await utimes(file, old, old);
  }

  /** A pulled file is lost when it is neither at the source, nor archived, nor intact in S3. */
  async function assertPullNotLost(name: string, body: Buffer): Promise<void> {
    const atSource = existsSync(env.local(`/OUT/${name}`));
    const archived = existsSync(env.local(`/OUT/.done/${name}`));
    const inS3 = await env.get(`psp/inbound/${name}`);
    if (inS3 && sha(inS3) !== sha(body)) tally.lost++;
    if (!atSource && !(archived && inS3)) tally.lost++;
    expect(inS3 === undefined || sha(inS3) === sha(body)).toBe(true);
    expect(atSource || (archived && inS3 !== undefined)).toBe(true);
  }

  const visibleNames = async (dir: string) => (await readdir(env.local(dir))).filter((n) => !n.startsWith("."));

  it("push: connection dropped mid-file fails clearly, shows no partial file, and the retry delivers", async () => {
    const body = pattern(6 * MiB, 1);
    await env.put("psp/outbound/drop/push.bin", body);
    sftpProxy.rules = { dropUpstreamAfter: 2 * MiB };
    const first = count(await faulty().push([{ bucket: env.bucket, key: "psp/outbound/drop/push.bin" }]));
    expect(first.ok).toBe(false);
    expect(first.streams[0]?.failed[0]).toMatchObject({ source: `s3://${env.bucket}/psp/outbound/drop/push.bin` });
    expect(first.streams[0]?.failed[0]?.message).toMatch(/^sftp /);
    expect(sftpProxy.stats.dropped).toBeGreaterThan(0);
    expect(existsSync(env.local("/IN/drop/push.bin"))).toBe(false);

    sftpProxy.rules = {};
    const retry = count(await faulty().push([{ bucket: env.bucket, key: "psp/outbound/drop/push.bin" }]));
    expect(retry.ok).toBe(true);
    expect(sha(await readFile(env.local("/IN/drop/push.bin")))).toBe(sha(body));
    expect(await visibleNames("/IN/drop")).toEqual(["push.bin"]);
  }, 60_000);

  it("pull: connection dropped mid-file leaves the source in place and nothing in S3; the next run completes", async () => {
    const body = pattern(6 * MiB, 2);
    await drop("/OUT/cut.bin", body);
    sftpProxy.rules = { dropDownstreamAfter: 2 * MiB };
    const only = (doc: BridgeConfigInput) => {
      doc.streams.psp!.pull!.patterns = ["cut.bin"];
    };
    const first = count(await faulty(only).pull(["psp"]));
    expect(first.ok).toBe(false);
    expect(existsSync(env.local("/OUT/cut.bin"))).toBe(true);
    expect(await env.get("psp/inbound/cut.bin")).toBeUndefined();
    await assertPullNotLost("cut.bin", body);

    sftpProxy.rules = {};
    const retry = count(await faulty(only).pull(["psp"]));
    expect(retry.streams[0]?.files).toBe(1);
    await assertPullNotLost("cut.bin", body);
    expect(existsSync(env.local("/OUT/.done/cut.bin"))).toBe(true);
  }, 60_000);

  it("a server that stops answering mid-file is timed out in both directions; nothing is lost or half-visible", async () => {
    const body = pattern(4 * MiB, 3);
    await env.put("psp/outbound/stall/push.bin", body);
    await drop("/OUT/stall.bin", body);
    const quick = (doc: BridgeConfigInput) => {
      doc.streams.psp!.sftp.operationTimeoutMs = 1500;
      doc.streams.psp!.pull!.patterns = ["stall.bin"];
    };
    sftpProxy.rules = { stallUpstreamAfter: 1 * MiB };
    const pushed = count(await faulty(quick).push([{ bucket: env.bucket, key: "psp/outbound/stall/push.bin" }]));
    expect(pushed.streams[0]?.failed[0]?.message).toMatch(/no answer within 1500 ms/);
    expect(existsSync(env.local("/IN/stall/push.bin"))).toBe(false);

    sftpProxy.rules = { stallDownstreamAfter: 1 * MiB };
    const pulled = count(await faulty(quick).pull(["psp"]));
    expect(pulled.streams[0]?.failed[0]?.message).toMatch(/no answer within 1500 ms/);
    expect(await env.get("psp/inbound/stall.bin")).toBeUndefined();
    await assertPullNotLost("stall.bin", body);

    sftpProxy.rules = {};
    expect(count(await faulty(quick).pull(["psp"])).streams[0]?.files).toBe(1);
    await assertPullNotLost("stall.bin", body);
  }, 60_000);

  it("a connection lost mid-batch fails only the file in flight; the next files reconnect", async () => {
    const keys = ["a", "b", "c", "d"].map((n) => `psp/outbound/midbatch/${n}.bin`);
    for (const [i, k] of keys.entries()) await env.put(k, pattern(3 * MiB, 10 + i));
    // Every connection is cut after 4 MiB up: the first file fits, the second is cut, the rest need new connections.
    sftpProxy.rules = { dropUpstreamAfter: 4 * MiB };
    const report = count(
      await faulty((doc) => {
        doc.streams.psp!.sftp.concurrency = 1;
      }).push(keys.map((key) => ({ bucket: env.bucket, key }))),
    );
    expect(report.streams[0]?.files).toBeGreaterThanOrEqual(2);
    expect(report.streams[0]!.files + report.streams[0]!.failed.length).toBe(4);
    expect(sftpProxy.stats.connections).toBeGreaterThan(1);
    for (const m of report.streams[0]!.moved) {
      const key = m.source.replace(`s3://${env.bucket}/`, "");
      expect(sha(await readFile(env.local(m.destination)))).toBe(sha((await env.get(key))!));
    }
    for (const f of report.streams[0]!.failed) {
      expect(existsSync(env.local(f.source.replace(`s3://${env.bucket}/psp/outbound`, "/IN")))).toBe(false);
    }
  }, 60_000);

  it("a server that refuses rename: atomic mode fails clearly and leaves nothing; atomic off delivers", async () => {
    await env.put("psp/outbound/norename/a.xml", "<a/>");
    env.sftp.faults.refuseRename = true;
    env.sftp.faults.refusePosixRename = true;
    try {
      const atomic = count(await faulty().push([{ bucket: env.bucket, key: "psp/outbound/norename/a.xml" }]));
      expect(atomic.streams[0]?.failed[0]).toMatchObject({ code: "SFTP_RENAME_FAILED" });
      expect(atomic.streams[0]?.failed[0]?.message).toMatch(/sftp rename .*permission denied/i);
      expect(existsSync(env.local("/IN/norename"))).toBe(true);
      expect(await readdir(env.local("/IN/norename"))).toEqual([]);

      const direct = count(
        await faulty((doc) => {
          doc.streams.psp!.push!.atomic = false;
        }).push([{ bucket: env.bucket, key: "psp/outbound/norename/a.xml" }]),
      );
      expect(direct.ok).toBe(true);
      expect(await readFile(env.local("/IN/norename/a.xml"), "utf8")).toBe("<a/>");
    } finally {
      env.sftp.faults.refuseRename = false;
      env.sftp.faults.refusePosixRename = false;
    }
  });

  it("S3 500/503 are retried by the SDK and the transfers complete", async () => {
    await env.put("psp/outbound/flaky/x.xml", "<x/>");
    s3Proxy.faults = [{ method: "GET", path: /\/flaky\/x\.xml$/, status: 503, code: "SlowDown", times: 2 }];
    const pushed = count(await faulty().push([{ bucket: env.bucket, key: "psp/outbound/flaky/x.xml" }]));
    expect(pushed.ok).toBe(true);
    expect(s3Proxy.injected.SlowDown).toBe(2);

    const body = Buffer.from("retry me");
    await drop("/OUT/flaky.csv", body);
    s3Proxy.faults = [{ method: "PUT", path: /\/inbound\/flaky\.csv$/, status: 500, code: "InternalError", times: 1 }];
    const pulled = count(
      await faulty((doc) => {
        doc.streams.psp!.pull!.patterns = ["flaky.csv"];
      }).pull(["psp"]),
    );
    expect(pulled.streams[0]?.files).toBe(1);
    expect(s3Proxy.injected.InternalError).toBe(1);
    await assertPullNotLost("flaky.csv", body);
  });

  it("S3 403 fails clearly and leaves the source untouched, in both directions", async () => {
    await env.put("psp/outbound/denied/y.xml", "<y/>");
    s3Proxy.faults = [{ method: "GET", path: /\/denied\/y\.xml$/, status: 403, code: "AccessDenied", times: Infinity }];
    const pushed = count(await faulty().push([{ bucket: env.bucket, key: "psp/outbound/denied/y.xml" }]));
    expect(pushed.streams[0]?.failed[0]).toMatchObject({ code: "S3_ACCESS_DENIED" });
    expect(pushed.streams[0]?.failed[0]?.message).toMatch(/access denied; check the function role allows s3:GetObject/);
    expect(s3Proxy.injected.AccessDenied).toBe(1);
    expect(await env.get("psp/outbound/denied/y.xml")).toBeDefined();
    expect(existsSync(env.local("/IN/denied/y.xml"))).toBe(false);

    const body = Buffer.from("keep me");
    await drop("/OUT/denied.csv", body);
    s3Proxy.faults = [
      { method: "PUT", path: /\/inbound\/denied\.csv$/, status: 403, code: "AccessDenied", times: Infinity },
    ];
    const pulled = count(
      await faulty((doc) => {
        doc.streams.psp!.pull!.patterns = ["denied.csv"];
      }).pull(["psp"]),
    );
    expect(pulled.streams[0]?.failed[0]).toMatchObject({ code: "S3_ACCESS_DENIED" });
    expect(existsSync(env.local("/OUT/denied.csv"))).toBe(true);
    await assertPullNotLost("denied.csv", body);
  });

  it("the deadline arriving mid-batch: what finished is archived, the rest stays for the next run", async () => {
    const names = Array.from({ length: 8 }, (_, i) => `batch-${i}.dat`);
    const bodies = new Map(names.map((n, i) => [n, pattern(64 * 1024, 100 + i)]));
    for (const [n, b] of bodies) await drop(`/OUT/${n}`, b);
    // The clock leaps past the deadline once three files have been archived on the server: deterministic, no timing
    // involved. (Counted at the server, not from log lines: receipts and their log lines finish in the background.)
    const archived = () =>
      existsSync(env.local("/OUT/.done")) ? readdirSync(env.local("/OUT/.done")).filter((n) => names.includes(n)) : [];
    const clock = () => Date.now() + (archived().length >= 3 ? 3_600_000 : 0);
    const config = env.config((doc) => {
      doc.streams.psp!.pull!.patterns = ["batch-*.dat"];
      doc.streams.psp!.sftp.concurrency = 1;
    });
    const report = count(await env.bridge(config, { clock }).pull(["psp"], { deadline: Date.now() + 60_000 }));
    expect(report.streams[0]?.files).toBe(3);
    expect(report.streams[0]?.skipped.filter((s) => s.reason === "deadline")).toHaveLength(5);
    for (const n of names) await assertPullNotLost(n, bodies.get(n)!);

    const rest = count(await env.bridge(config).pull(["psp"]));
    expect(rest.streams[0]?.files).toBe(5);
    for (const n of names) expect(existsSync(env.local(`/OUT/.done/${n}`))).toBe(true);
  });

  it("the same S3 event delivered three times reaches the partner once", async () => {
    await env.put("psp/outbound/dup/once.xml", "<once/>");
    const item = { bucket: env.bucket, key: "psp/outbound/dup/once.xml" };
    const results = [];
    for (let i = 0; i < 3; i++) results.push(count(await env.bridge().push([item])));
    expect(results.map((r) => r.streams[0]?.files)).toEqual([1, 0, 0]);
    expect(results.slice(1).map((r) => r.streams[0]?.skipped[0]?.reason)).toEqual(["duplicate", "duplicate"]);
    const receipts = await env.bridge().context.receipts.list("psp", { direction: "push", relative: "dup/once.xml" });
    expect(receipts).toHaveLength(1);
  });

  it("a push killed mid-file: the next attempt waits out its claim, delivers once, and removes the dead run's temp file", async () => {
    const body = pattern(48 * MiB, 7);
    const key = "psp/outbound/killed/big.bin";
    await env.put(key, body);
    const configPath = path.join(env.dir, "killed.config.yaml");
    const edit = (doc: BridgeConfigInput) => {
      doc.receipts = { claimLeaseSeconds: 3, claimWaitSeconds: 20 };
      doc.streams.psp!.push!.staleTempSeconds = 1;
    };
    await writeFile(configPath, stringify(env.configDoc(edit)));
    // A slow partner, so the transfer is surely under way when the process dies.
    env.sftp.faults.delayMs = 5;
    const root = path.resolve(__dirname, "..", "..");
    const child = spawn(
      path.join(root, "node_modules", ".bin", "node"),
      [path.join(root, "scripts", "bridge.js"), "push", `s3://${env.bucket}/${key}`, "--config", configPath],
      {
        env: {
          PATH: process.env.PATH,
          HOME: env.dir,
          AWS_ENDPOINT_URL_S3: env.s3.endpoint,
          AWS_ACCESS_KEY_ID: "S3RVER",
          AWS_SECRET_ACCESS_KEY: "S3RVER",
          AWS_REGION: "us-east-1",
          AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED",
        },
        stdio: "ignore",
      },
    );
    const exited = new Promise((resolve) => child.once("exit", resolve));
    const dir = env.local("/IN/killed");
    let temp: string | undefined;
    try {
      for (let i = 0; i < 600 && !temp; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const names = existsSync(dir) ? readdirSync(dir) : [];
        const partial = names.find((n) => n.endsWith(".part"));
        if (partial && statSync(path.join(dir, partial)).size > 0) temp = partial;
      }
    } finally {
      child.kill("SIGKILL");
      await exited;
      env.sftp.faults.delayMs = 0;
    }
    expect(temp).toBeDefined();
    // Killed mid-file: a partial temp file, no delivered file, and the claim still held by the dead run.
    expect(existsSync(path.join(dir, "big.bin"))).toBe(false);
    expect(existsSync(path.join(dir, temp!))).toBe(true);

    const started = Date.now();
    const report = count(await env.bridge(env.config(edit)).push([{ bucket: env.bucket, key }]));
    expect(report.ok).toBe(true);
    expect(report.streams[0]?.files).toBe(1);
    // It waited for the dead run's lease rather than delivering alongside it.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(sha(await readFile(path.join(dir, "big.bin")))).toBe(sha(body));
    expect(report.streams[0]?.cleaned?.map((c) => c.path)).toEqual([`/IN/killed/${temp}`]);
    expect(readdirSync(dir)).toEqual(["big.bin"]);
    expect(env.sftp.observed.renamedTo.filter((p) => p === "/IN/killed/big.bin")).toHaveLength(1);
    const receipts = await env.bridge().context.receipts.list("psp", { direction: "push", relative: "killed/big.bin" });
    expect(receipts).toHaveLength(1);
  }, 90_000);

  describe("through the Lambda handler", () => {
    let handler: typeof import("../../lambda/handler").handler;
    const output: string[] = [];
    let restoreEnv: (() => void) | undefined;
    const context = () => lambdaContext(randomBytes(6).toString("hex"), 120_000);

    beforeAll(async () => {
      ({ handler, restore: restoreEnv } = loadHandler(
        await handlerEnvironment(env, { configName: "faults.config.yaml" }),
      ));
    });
    beforeEach(() => {
      for (const stream of [process.stdout, process.stderr]) {
        jest.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
          output.push(chunk.toString());
          return true;
        });
      }
    });
    afterEach(() => jest.restoreAllMocks());
    afterAll(() => {
      restoreEnv?.();
    });

    it("a poison message (object deleted before the push) fails each delivery, is never retried in a loop, and ends in the DLQ", async () => {
      await env.put("psp/outbound/poison/good.xml", "<good/>");
      await env.put("psp/outbound/poison/gone.xml", "<gone/>");
      await env.s3Client.send(new DeleteObjectCommand({ Bucket: env.bucket, Key: "psp/outbound/poison/gone.xml" }));
      const message = (id: string, key: string) => ({
        messageId: id,
        eventSource: "aws:sqs",
        body: JSON.stringify({
          Records: [
            {
              eventSource: "aws:s3",
              eventName: "ObjectCreated:Put",
              s3: { bucket: { name: env.bucket }, object: { key } },
            },
          ],
        }),
        attributes: { ApproximateReceiveCount: "1" },
      });
      // SQS as the template configures it: a failed message comes back until maxReceiveCount, then goes to the DLQ.
      const maxReceiveCount = 3;
      let queue = [message("good", "psp/outbound/poison/good.xml"), message("poison", "psp/outbound/poison/gone.xml")];
      const receives = new Map<string, number>();
      const dlq: string[] = [];
      let invocations = 0;
      while (queue.length) {
        invocations++;
        for (const m of queue) receives.set(m.messageId, (receives.get(m.messageId) ?? 0) + 1);
        const result = (await handler({ Records: queue }, context())) as {
          batchItemFailures: { itemIdentifier: string }[];
        };
        const failed = new Set(result.batchItemFailures.map((f) => f.itemIdentifier));
        queue = queue.filter((m) => failed.has(m.messageId));
        for (const m of queue.filter((m) => (receives.get(m.messageId) ?? 0) >= maxReceiveCount)) dlq.push(m.messageId);
        queue = queue.filter((m) => !dlq.includes(m.messageId));
      }
      expect(dlq).toEqual(["poison"]);
      expect(invocations).toBe(maxReceiveCount);
      expect(receives.get("good")).toBe(1);
      expect(existsSync(env.local("/IN/poison/good.xml"))).toBe(true);
      expect(output.join("")).toMatch(/S3_OBJECT_NOT_FOUND/);
      tally.transferred += 1;
    });
  });

  describe("secrets never reach logs or reports", () => {
    let aws: LocalAws;
    let server: EmbeddedSftpServer;
    const password = `pw-${randomBytes(12).toString("hex")}`;

    beforeAll(async () => {
      aws = await startLocalAws();
      aws.secrets.set("bridge/secret-stream", JSON.stringify({ username: "secretive", password }));
      server = await startSftpServer({
        root: path.join(env.dir, "sftp-secret"),
        users: [{ username: "secretive", password }],
      });
    });
    afterAll(async () => {
      await server?.close();
      await aws?.close();
    });

    it("scans every log line and report of runs that succeed and fail with password and key credentials", async () => {
      const logs: string[] = [];
      const logger = {
        debug: (m: string, f?: unknown) => logs.push(JSON.stringify({ m, f })),
        info: (m: string, f?: unknown) => logs.push(JSON.stringify({ m, f })),
        warn: (m: string, f?: unknown) => logs.push(JSON.stringify({ m, f })),
        error: (m: string, f?: unknown) => logs.push(JSON.stringify({ m, f })),
      };
      const sm = aws.secretsManager();
      const run = (edit: (doc: BridgeConfigInput) => void) =>
        createBridge({
          config: env.config((doc) => {
            doc.streams.psp!.sftp = {
              host: server.host,
              port: server.port,
              credentials: { secretsManager: "bridge/secret-stream" },
              hostKeys: [server.hostKeyFingerprint],
            };
            edit(doc);
          }),
          s3: env.s3Client,
          credentials: createCredentialResolver({ secretsManager: sm, allowFiles: true }),
          logger,
        });
      await env.put("psp/outbound/secret/a.xml", "<a/>");
      const item = { bucket: env.bucket, key: "psp/outbound/secret/a.xml" };
      const reports = [
        count(await run(() => undefined).push([item])),
        await run((doc) => (doc.streams.psp!.sftp.hostKeys = ["SHA256:" + "C".repeat(43)])).push([item], {
          force: true,
        }),
        await run((doc) => (doc.streams.psp!.sftp.credentials = { secretsManager: "bridge/missing" })).push([item], {
          force: true,
        }),
      ];
      aws.secrets.set("bridge/secret-stream", JSON.stringify({ username: "secretive", password: password + "-wrong" }));
      reports.push(await run(() => undefined).push([item], { force: true }));
      sm.destroy();

      expect(reports[0]?.ok).toBe(true);
      expect(reports.slice(1).map((r) => r.streams[0]?.failed[0]?.code)).toEqual([
        "HOST_KEY_REJECTED",
        "CREDENTIALS_NOT_FOUND",
        "SFTP_AUTH_FAILED",
      ]);
      const keyMaterial = (await readFile(env.keyPath, "utf8"))
        .split("\n")
        .filter((l) => l.length > 20 && !l.startsWith("-----"));
      const everything = [
        ...logs,
        ...reports.map((r) => JSON.stringify(r)),
        ...env.logs.map((l) => JSON.stringify(l)),
      ].join("\n");
      expect(everything.length).toBeGreaterThan(1000);
      expect(everything).not.toContain(password);
      for (const line of keyMaterial) expect(everything).not.toContain(line);
    });
  });
});
