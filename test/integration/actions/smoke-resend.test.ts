import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { RunReport } from "../../../lambda/bridge";
import { startLocalStack, type LocalStack } from "../../../scripts/local/start";
import { waitFor } from "../../support/wait";
import { REPO, runAction } from "./run-action";

/**
 * The smoke-test and resend actions as the runner runs them (`node actions/<name>/dist/index.js`, INPUT_* variables),
 * against the local stack: s3rver, the embedded SFTP server, the bridge handler behind the local Lambda Invoke
 * endpoint, reached through the SDK's standard AWS_ENDPOINT_URL_* variables as in AWS. Push goes through the stack's
 * S3 events and queue; nothing in the data path is mocked.
 */
const CONFIG = path.join(REPO, "examples", "local.config.yaml");
const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

// Each action run is a fresh Node process (about 1 s to load its bundle) and a round trip polls the far side.
jest.setTimeout(90_000);

describe("smoke-test and resend actions against the local stack", () => {
  let dir: string;
  let stack: LocalStack;
  let s3: S3Client;
  let goodConfig: string;
  const savedTtl = process.env.BRIDGE_CACHE_TTL_SECONDS;

  const env = () => ({
    ...stack.env,
    AWS_ENDPOINT_URL_LAMBDA: stack.lambda.url,
    AWS_ACCESS_KEY_ID: stack.env.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: stack.env.AWS_SECRET_ACCESS_KEY,
  });
  // One round trip, S3 -> SFTP, pushed by a direct invoke rather than by the S3 event.
  const pushByInvoke = () => ({
    "function-name": "bridge",
    config: stack.configPath,
    stream: "demo",
    directions: "push",
    "push-trigger": "invoke",
    "timeout-seconds": "20",
  });
  const sftpFiles = (dirName: string) => {
    const full = path.join(stack.sftp.root, dirName);
    return existsSync(full) ? readdirSync(full) : [];
  };
  const keys = async (prefix: string) =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: "bridge-local", Prefix: prefix }))).Contents ?? []).map(
      (o) => o.Key!,
    );
  const smokeLeftovers = async () =>
    [
      ...sftpFiles("inbound"),
      ...sftpFiles("outbound"),
      ...sftpFiles("outbound/.done"),
      ...(await keys("demo/")),
    ].filter((n) => n.includes("bridge-smoke-"));

  beforeAll(async () => {
    // The function re-reads its config on every invoke, so a test can break the deployment and mend it.
    process.env.BRIDGE_CACHE_TTL_SECONDS = "0";
    dir = await mkdtemp(path.join(tmpdir(), "smoke-resend-"));
    // No scheduled pulls: every pull here is one an action asked for. Failed S3 events are not retried within a test.
    stack = await startLocalStack({ dir, configPath: CONFIG, pullIntervalMs: 0, retryDelayMs: 600_000, quiet: true });
    s3 = stack.s3.client();
    goodConfig = await readFile(stack.configPath, "utf8");
  });

  afterAll(async () => {
    s3?.destroy();
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
    if (savedTtl === undefined) delete process.env.BRIDGE_CACHE_TTL_SECONDS;
    else process.env.BRIDGE_CACHE_TTL_SECONDS = savedTtl;
  });

  afterEach(async () => {
    await writeFile(stack.configPath, goodConfig);
  });

  it("smoke test passes both round trips, reports each step's latency, and leaves nothing behind", async () => {
    const run = await runAction(
      "smoke-test",
      { "function-name": "bridge", config: stack.configPath, stream: "demo", "timeout-seconds": "30" },
      env(),
      { timeoutMs: 60_000 },
    );
    expect(run.errors).toEqual([]);
    expect(run.code).toBe(0);
    expect(run.outputs.result).toBe("passed");
    expect(Number(run.outputs["push-latency-ms"])).toBeGreaterThan(0);
    expect(Number(run.outputs["pull-latency-ms"])).toBeGreaterThan(0);
    const steps = JSON.parse(run.outputs.steps!) as { direction: string; name: string; ok: boolean }[];
    expect(steps.map((s) => `${s.direction}: ${s.name}`)).toEqual([
      "push: put object in the push source",
      "push: file arrives on SFTP",
      "push: same SHA-256 on SFTP",
      "pull: put file in the pull folder",
      "pull: invoke pull",
      "pull: same SHA-256 in S3",
      "pull: source archived",
    ]);
    expect(steps.every((s) => s.ok)).toBe(true);
    expect(run.summary).toContain("### Smoke test of stream `demo` through `bridge`: passed");
    expect(run.summary).toMatch(/\| S3 -> SFTP \| file arrives on SFTP \| ok \| \d+\.\d s \|/);
    expect(await smokeLeftovers()).toEqual([]);
  });

  it("smoke test fails when the bridge is misconfigured: names the step and the bridge's error, and cleans up", async () => {
    // The partner "rotated" its host key as far as the bridge knows: the function refuses the server. The smoke test
    // verifies with the right pin, given as its own input.
    const pinned = stack.config.streams.demo!.sftp.hostKeys[0]!;
    const wrong = "SHA256:" + "A".repeat(43);
    await writeFile(stack.configPath, goodConfig.replaceAll(pinned, wrong));
    const run = await runAction(
      "smoke-test",
      {
        "function-name": "bridge",
        config: stack.configPath,
        stream: "demo",
        "sftp-host-keys": pinned,
        "timeout-seconds": "6",
        "poll-interval-seconds": "1",
      },
      env(),
      { timeoutMs: 60_000 },
    );
    expect(run.code).toBe(1);
    expect(run.outputs.result).toBe("failed");
    expect(run.errors).toHaveLength(1);
    const message = run.errors[0]!;
    expect(message).toContain('smoke test failed: push round trip failed at "file arrives on SFTP"');
    expect(message).toContain("did not appear within 6 s");
    // The direct invoke the smoke test makes after the timeout brings back the bridge's own words.
    expect(message).toContain("a direct invoke of the same key reports: the bridge failed");
    expect(message).toContain(wrong);
    const steps = JSON.parse(run.outputs.steps!) as { direction: string; name: string; ok: boolean; detail: string }[];
    const pullFailure = steps.find((s) => s.direction === "pull" && !s.ok);
    expect(pullFailure).toMatchObject({ name: "invoke pull" });
    expect(pullFailure!.detail).toContain(wrong);
    expect(run.summary).toContain(": **failed**");
    expect(await smokeLeftovers()).toEqual([]);
  });

  it("smoke test of one direction by direct invoke: pushes without waiting for S3 events", async () => {
    const run = await runAction("smoke-test", pushByInvoke(), env());
    expect(run.errors).toEqual([]);
    expect(run.code).toBe(0);
    const steps = JSON.parse(run.outputs.steps!) as { direction: string; name: string; ok: boolean }[];
    expect(steps.map((s) => s.name)).toEqual([
      "put object in the push source",
      "invoke push",
      "file arrives on SFTP",
      "same SHA-256 on SFTP",
    ]);
    expect(run.outputs["pull-latency-ms"]).toBe("");
    expect(await smokeLeftovers()).toEqual([]);
  });

  it("smoke test fails when the file on the SFTP side is not the bytes put in S3", async () => {
    // The bridge writes intact bytes; the server then serves them with a byte flipped. Only the hash check can see it.
    stack.sftp.faults.corruptReads = true;
    let run;
    try {
      run = await runAction("smoke-test", pushByInvoke(), env());
    } finally {
      stack.sftp.faults.corruptReads = false;
    }
    expect(run.code).not.toBe(0);
    const steps = JSON.parse(run.outputs.steps!) as { name: string; ok: boolean; detail?: string }[];
    const hash = steps.find((s) => s.name === "same SHA-256 on SFTP");
    expect(hash?.ok).toBe(false);
    expect(hash?.detail).toMatch(/^expected [0-9a-f]{64}, the server holds [0-9a-f]{64}$/);
    expect(await smokeLeftovers()).toEqual([]);
  });

  it("smoke test in folders of its own on a shared server: makes them, and leaves another stack's smoke file alone", async () => {
    // Two stacks' configs point at one test server, each in its folders (deploy/environments/*.config.yaml:
    // /<stack name>/in and /<stack name>/out). This stack's folders do not exist yet; the other's holds a file its own
    // smoke test waits for.
    await writeFile(
      stack.configPath,
      goodConfig.replace("to: /inbound", "to: /bridge-a/in").replace("from: /outbound", "from: /bridge-a/out"),
    );
    const otherDir = path.join(stack.sftp.root, "bridge-b", "out");
    await mkdir(otherDir, { recursive: true });
    const other = path.join(otherDir, "bridge-smoke-pull-20260101T000000Z-0000000.txt");
    await writeFile(other, "the other stack's smoke file");
    expect(existsSync(path.join(stack.sftp.root, "bridge-a"))).toBe(false);

    const run = await runAction(
      "smoke-test",
      { "function-name": "bridge", config: stack.configPath, stream: "demo", "timeout-seconds": "30" },
      env(),
      { timeoutMs: 60_000 },
    );
    expect(run.errors).toEqual([]);
    expect(run.outputs.result).toBe("passed");
    expect(await readFile(other, "utf8")).toBe("the other stack's smoke file");
    expect(sftpFiles("bridge-a/out").filter((n) => n.includes("bridge-smoke-"))).toEqual([]);
    expect(sftpFiles("bridge-a/in").filter((n) => n.includes("bridge-smoke-"))).toEqual([]);
  });

  it("smoke test refuses an unknown stream and every bad input at once, before touching anything", async () => {
    const bad = await runAction(
      "smoke-test",
      { config: stack.configPath, stream: "", directions: "sideways", "sftp-host-keys": "MD5:aa" },
      env(),
    );
    expect(bad.code).toBe(1);
    expect(bad.errors[0]!.split("\n")).toEqual([
      "smoke test: 4 invalid input(s):",
      "  stack-name: give stack-name (the bridge stack) or function-name (and bucket/config) to find the bridge",
      "  stream: is required: the stream to exercise, as named in the bridge config",
      '  directions: "sideways" is not one of: both, push, pull',
      '  sftp-host-keys: "MD5:aa" is not a SHA256:... fingerprint',
    ]);
    const unknown = await runAction(
      "smoke-test",
      { "function-name": "bridge", config: stack.configPath, stream: "nope" },
      env(),
    );
    expect(unknown.code).toBe(1);
    expect(unknown.errors[0]).toMatch(/^smoke test: stream "nope" is not in the bridge config .* \(it has: demo\)$/);
  });

  it("resend S3 -> SFTP: a dry run lists sizes and earlier deliveries; the real run delivers again", async () => {
    const body = "<invoice n='7'/>";
    await s3.send(new PutObjectCommand({ Bucket: "bridge-local", Key: "demo/outbound/resend/inv-7.xml", Body: body }));
    const delivered = path.join(stack.sftp.root, "inbound", "resend", "inv-7.xml");
    // Delivered once the way every object is: its S3 event, through the queue.
    await waitFor("the first delivery of inv-7.xml", () => existsSync(delivered), 20_000);
    // The partner "lost" it.
    await rm(delivered);

    const inputs = { "function-name": "bridge", stream: "demo", direction: "push", keys: "resend/inv-7.xml" };
    const dry = await runAction("resend", inputs, env());
    expect(dry.errors).toEqual([]);
    expect(dry.code).toBe(0);
    expect(dry.outputs).toMatchObject({ planned: "1", resent: "0", failed: "0" });
    expect(dry.stdout).toMatch(
      /would resend to the partner: s3:\/\/bridge-local\/demo\/outbound\/resend\/inv-7\.xml -> \/inbound\/resend\/inv-7\.xml \(16 B\); delivered before: \d{4}-\d\d-\d\dT[\d:.]+Z \(event\)/,
    );
    expect(dry.summary).toContain("### Dry run: resend S3 -> SFTP for `demo`");
    expect(existsSync(delivered)).toBe(false);

    const real = await runAction("resend", { ...inputs, "dry-run": "false" }, env());
    expect(real.errors).toEqual([]);
    expect(real.code).toBe(0);
    expect(real.outputs).toMatchObject({ planned: "0", resent: "1", failed: "0" });
    expect(sha256(await readFile(delivered))).toBe(sha256(body));
    // The receipt says it was a resend.
    const receipts = await keys("_bridge/receipts/demo/push/");
    const triggers = await Promise.all(
      receipts.map(async (key) => {
        const out = await s3.send(new GetObjectCommand({ Bucket: "bridge-local", Key: key }));
        return (JSON.parse(await out.Body!.transformToString()) as { trigger?: string; source: { key?: string } })
          .trigger;
      }),
    );
    expect(triggers).toContain("resend");
  });

  it("resend SFTP -> S3: a dry run lists the archived file; the real run moves it back and the next pull takes it", async () => {
    await writeFile(path.join(stack.sftp.root, "outbound", "statement.csv"), "a,b\n1,2\n");
    const pulled = await stack.invoke({ action: "pull", streams: ["demo"] });
    expect((pulled.result as RunReport).streams[0]?.files).toBe(1);
    expect(sftpFiles("outbound/.done")).toContain("statement.csv");

    const inputs = { "function-name": "bridge", stream: "demo", direction: "pull", keys: "statement.csv" };
    const dry = await runAction("resend", inputs, env());
    expect(dry.code).toBe(0);
    expect(dry.outputs).toMatchObject({ planned: "1", resent: "0" });
    expect(dry.stdout).toContain(
      "would move back for the next pull: /outbound/.done/statement.csv -> /outbound/statement.csv (8 B)",
    );
    expect(sftpFiles("outbound/.done")).toContain("statement.csv");

    const real = await runAction("resend", { ...inputs, "dry-run": "false" }, env());
    expect(real.errors).toEqual([]);
    expect(real.code).toBe(0);
    expect(real.outputs).toMatchObject({ resent: "1", failed: "0" });
    expect(sftpFiles("outbound")).toContain("statement.csv");
    expect(sftpFiles("outbound/.done")).not.toContain("statement.csv");
    const again = await stack.invoke({ action: "pull", streams: ["demo"] });
    expect((again.result as RunReport).streams[0]?.files).toBe(1);
  });

  it("resend fails clearly when nothing matches a real run, and refuses to resend everything", async () => {
    const none = await runAction(
      "resend",
      { "function-name": "bridge", stream: "demo", direction: "push", keys: "no/such.xml", "dry-run": "false" },
      env(),
    );
    expect(none.code).toBe(1);
    expect(none.errors).toEqual(["nothing was resent: nothing matches keys no/such.xml in stream demo"]);

    const everything = await runAction(
      "resend",
      { "function-name": "bridge", stream: "demo", direction: "pull" },
      env(),
    );
    expect(everything.code).toBe(1);
    expect(everything.errors[0]).toContain(
      "keys: choose what to resend: keys, a prefix, or a since/until window (never everything)",
    );

    const unknown = await runAction(
      "resend",
      { "function-name": "bridge", stream: "ghost", direction: "push", prefix: "" + "x" },
      env(),
    );
    expect(unknown.code).toBe(1);
    expect(unknown.errors[0]).toMatch(/^resend: lambda invoke bridge: the function failed .*ghost/);
  });
});
