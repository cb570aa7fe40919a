import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { S3EventRecord } from "aws-lambda";
import SftpClient from "ssh2-sftp-client";
import { ReceiptStore, fingerprint, type Receipt, type RunReport } from "../../lambda/bridge";
import { startLocalStack, type LocalStack } from "../../scripts/local/start";
import { portClosed, processGone, waitFor } from "../support/wait";

/**
 * The local stack (`npm start`) as a newcomer meets it: the real examples/local.config.yaml, s3rver, the embedded SFTP
 * server and the Lambda handler, driven only through S3 and SFTP. In process first (receipts, duplicates, retries),
 * then as the child process `npm start` runs, stopped with Ctrl-C.
 */
const ROOT = path.resolve(__dirname, "..", "..");
const CONFIG = path.join(ROOT, "examples", "local.config.yaml");
const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

async function getObject(s3: S3Client, bucket: string, key: string): Promise<string | undefined> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await out.Body!.transformToString();
  } catch (err) {
    if ((err as { name?: string }).name === "NoSuchKey") return undefined;
    throw err;
  }
}

describe("local stack, in process", () => {
  let dir: string;
  let stack: LocalStack;
  let s3: S3Client;
  const lines: string[] = [];
  const events: S3EventRecord[] = [];
  const savedEnv = { ...process.env };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "local-stack-"));
    stack = await startLocalStack({
      dir,
      configPath: CONFIG,
      pullIntervalMs: 500,
      retryDelayMs: 500,
      output: (line) => lines.push(line),
    });
    stack.s3.onEvent((r) => events.push(r));
    s3 = stack.s3.client();
  });

  afterAll(async () => {
    s3?.destroy();
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("tells a newcomer where to drop files, which endpoints and credentials to use, and how to invoke", () => {
    const text = lines[0] as string;
    expect(text).toContain("put a file under s3://bridge-local/demo/outbound/");
    expect(text).toContain("put a file in the SFTP folder /outbound");
    expect(text).toContain(`Embedded S3     ${stack.s3.endpoint}  (access key S3RVER, secret S3RVER`);
    expect(text).toContain(`port ${stack.sftp.port}  host key ${stack.sftp.hostKeyFingerprint}`);
    expect(text).toContain(`user demo_user, private key ${path.join(dir, "keys", "demo_user")}`);
    expect(text).toContain(`Lambda Invoke   ${stack.lambda.url}  function "bridge"`);
    expect(text).toContain(`sftp -P ${stack.sftp.port} -i ${path.join(dir, "keys", "demo_user")}`);
    expect(text).toContain("echo hello > hello.txt && aws s3 cp hello.txt s3://bridge-local/demo/outbound/hello.txt");
    expect(text).toContain(
      "every 0.5 s, new files are copied to s3://bridge-local/demo/inbound/ and the originals moved to /outbound/.done",
    );
  });

  it("writes the effective config and a state file pointing at the embedded servers", async () => {
    const effective = await readFile(stack.configPath, "utf8");
    expect(effective).toContain(`port: ${stack.sftp.port}`);
    expect(effective).toContain(stack.sftp.hostKeyFingerprint);
    const state = JSON.parse(await readFile(path.join(dir, "stack.json"), "utf8")) as { s3: { pid: number } };
    expect(state.s3.pid).toBe(stack.s3.pid);
    expect(await readFile(path.join(dir, "env"), "utf8")).toContain(
      `export AWS_ENDPOINT_URL_LAMBDA="${stack.lambda.url}"`,
    );
  });

  it("pushes an object put into S3 to the SFTP folder, with a receipt whose SHA-256 matches the file", async () => {
    const body = "id,amount\n1,10.00\n";
    await s3.send(new PutObjectCommand({ Bucket: "bridge-local", Key: "demo/outbound/daily report.csv", Body: body }));
    const delivered = path.join(stack.sftp.root, "inbound", "daily report.csv");
    await waitFor("the pushed file on the SFTP server", () => existsSync(delivered));
    expect(await readFile(delivered, "utf8")).toBe(body);
    await waitFor("the line for the moved file", () =>
      lines.some((l) =>
        l.includes(
          "demo  S3 -> SFTP  s3://bridge-local/demo/outbound/daily report.csv -> /inbound/daily report.csv  (18 B)",
        ),
      ),
    );
    const receipts = await new ReceiptStore(s3, stack.config).list("demo", {
      direction: "push",
      relative: "daily report.csv",
    });
    expect(receipts).toHaveLength(1);
    expect(receipts[0]).toMatchObject({
      sha256: sha256(await readFile(delivered)),
      bytes: 18,
      trigger: "event",
      attempt: 1,
      destination: { path: "/inbound/daily report.csv" },
    });
    expect(receipts[0]?.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("skips a duplicate S3 event, and delivers a forced resend through the handler", async () => {
    const record = events.find((r) => r.s3.object.key === "demo/outbound/daily+report.csv") as S3EventRecord;
    expect(record).toBeDefined();
    const delivered = path.join(stack.sftp.root, "inbound", "daily report.csv");
    const before = (await stat(delivered)).mtimeMs;

    // At-least-once delivery: the same notification again, as SQS would hand it over a second time.
    const again = await stack.invoke({
      Records: [{ messageId: "dup-1", eventSource: "aws:sqs", body: JSON.stringify({ Records: [record] }) }],
    });
    expect(again.result).toEqual({ batchItemFailures: [] });
    expect((await stat(delivered)).mtimeMs).toBe(before);
    expect(
      lines.some((l) => /skipped push s3:\/\/bridge-local\/demo\/outbound\/daily report\.csv: duplicate/.test(l)),
    ).toBe(true);

    const forced = await stack.invoke({
      action: "push",
      keys: ["s3://bridge-local/demo/outbound/daily report.csv"],
      force: true,
    });
    expect((forced.result as RunReport).streams[0]).toMatchObject({ files: 1, failed: [] });
    const receipts = await new ReceiptStore(s3, stack.config).list("demo", {
      direction: "push",
      relative: "daily report.csv",
    });
    expect(receipts.map((r) => r.trigger)).toEqual(["event", "force"]);
  });

  it("pulls a file dropped in the SFTP folder into S3 and moves the original to .done", async () => {
    // An upload in progress (pull.ignore): reported once, not on every scheduled run.
    await writeFile(path.join(stack.sftp.root, "outbound", "incoming.csv.part"), "partial");
    // Written aside and renamed in, as a partner's upload appears: a scheduled pull never sees it half-written.
    await writeFile(path.join(stack.sftp.root, "settlement.csv.tmp"), "settled\n");
    await rename(
      path.join(stack.sftp.root, "settlement.csv.tmp"),
      path.join(stack.sftp.root, "outbound", "settlement.csv"),
    );
    const copy = await waitFor("the pulled object in S3", () =>
      getObject(s3, "bridge-local", "demo/inbound/settlement.csv"),
    );
    expect(copy).toBe("settled\n");
    await waitFor("the original in .done", () =>
      existsSync(path.join(stack.sftp.root, "outbound", ".done", "settlement.csv")),
    );
    expect(existsSync(path.join(stack.sftp.root, "outbound", "settlement.csv"))).toBe(false);
    await waitFor("the line for the pulled file", () =>
      lines.some((l) =>
        l.includes("demo  SFTP -> S3  /outbound/settlement.csv -> s3://bridge-local/demo/inbound/settlement.csv"),
      ),
    );
    await new Promise((r) => setTimeout(r, 1200));
    expect(lines.filter((l) => l.includes("skipped pull /outbound/incoming.csv.part: ignored"))).toHaveLength(1);
  });

  it("writes an event per file moved to .bridge/events.jsonl, as EventBridge would carry it, and shows each", async () => {
    const events = async () =>
      (await readFile(stack.eventsPath, "utf8").catch(() => ""))
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { source: string; "detail-type": string; time: string; detail: Receipt });
    const delivered = await waitFor("the File Delivered event", async () =>
      (await events()).find(
        (e) => e["detail-type"] === "File Delivered" && e.detail.source.key === "demo/outbound/daily report.csv",
      ),
    );
    expect(delivered).toMatchObject({
      source: "s3-sftp-bridge",
      detail: { stream: "demo", direction: "push", destination: { path: "/inbound/daily report.csv" }, bytes: 18 },
    });
    expect(delivered.detail.sha256).toMatch(/^[0-9a-f]{64}$/);
    const pulled = (await events()).find((e) => e["detail-type"] === "File Pulled");
    expect(pulled?.detail).toMatchObject({
      stream: "demo",
      direction: "pull",
      source: { path: "/outbound/settlement.csv" },
      destination: { key: "demo/inbound/settlement.csv" },
    });
    expect(lines.some((l) => l.includes('demo  event "File Pulled"  /outbound/settlement.csv'))).toBe(true);
    // A failure has its event too: a push of a key that is gone.
    await stack.invoke({ action: "push", keys: ["s3://bridge-local/demo/outbound/never-there.csv"] });
    const failed = (await events()).find((e) => e["detail-type"] === "File Failed");
    expect(failed?.detail).toMatchObject({
      stream: "demo",
      direction: "push",
      source: "s3://bridge-local/demo/outbound/never-there.csv",
      code: "S3_OBJECT_NOT_FOUND",
    });
  });

  it("gives a failed SQS message back to the queue and delivers it on a later attempt", async () => {
    stack.sftp.faults.failWriteAfterBytes = 0;
    await s3.send(new PutObjectCommand({ Bucket: "bridge-local", Key: "demo/outbound/retry.txt", Body: "retry me" }));
    await waitFor("the failure line", () =>
      lines.some((l) => l.includes("FAILED push s3://bridge-local/demo/outbound/retry.txt")),
    );
    stack.sftp.faults.failWriteAfterBytes = undefined;
    const delivered = path.join(stack.sftp.root, "inbound", "retry.txt");
    await waitFor("the redelivered message's file", () => existsSync(delivered));
    const [receipt] = await new ReceiptStore(s3, stack.config).list("demo", {
      direction: "push",
      relative: "retry.txt",
    });
    // ApproximateReceiveCount of the redelivery, carried into the receipt.
    expect(receipt?.attempt).toBe(2);
  });

  it("stops: ports closed, the s3rver child gone, the environment restored, the state file removed", async () => {
    const ports = [stack.s3.port, stack.sftp.port, stack.lambda.port];
    await stack.stop();
    for (const port of ports) expect(await portClosed(port)).toBe(true);
    expect(await waitFor("s3rver to exit", () => processGone(stack.s3.pid), 5000)).toBe(true);
    expect(process.env.AWS_ENDPOINT_URL_S3).toBe(savedEnv.AWS_ENDPOINT_URL_S3);
    expect(process.env.BRIDGE_CONFIG).toBe(savedEnv.BRIDGE_CONFIG);
    expect(existsSync(path.join(dir, "stack.json"))).toBe(false);
  });
});

describe("local stack with a broken config", () => {
  it("lists the problems in the user's file and starts nothing", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "local-stack-bad-"));
    try {
      const bad = path.join(dir, "bad.yaml");
      await writeFile(bad, "streams:\n  demo:\n    s3: { bucket: bridge-local }\n    sftp: { host: h }\n");
      await expect(startLocalStack({ dir, configPath: bad, quiet: true })).rejects.toThrow(
        /^config .*bad\.yaml has \d+ problem\(s\):\n {2}streams\.demo\.sftp\.credentials: /,
      );
      expect(existsSync(path.join(dir, "stack.json"))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("npm start, as a child process", () => {
  jest.setTimeout(60_000);
  const startScript = (
    JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: { start: string } }
  ).scripts.start;

  interface Running {
    child: ChildProcess;
    stdout: () => string;
    state: {
      pid: number;
      s3: { endpoint: string; port: number; pid: number };
      sftp: { host: string; port: number; hostKeyFingerprint: string };
      lambda: { port: number };
      env: Record<string, string>;
    };
    exited: Promise<number | null>;
  }

  /** What `npm start -- --dir ...` runs: the package's start script, with node_modules/.bin first as npm puts it. */
  async function start(dir: string): Promise<Running> {
    const child = spawn("sh", ["-c", `exec ${startScript} --dir "${dir}" --s3-port 0 --sftp-port 0 --lambda-port 0`], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so Ctrl-C can be sent as a terminal sends it: to the stack and everything it started.
      detached: true,
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    await waitFor("the stack to print its instructions", () => out.includes("Ctrl-C stops everything"), 30_000).catch(
      (err: Error) => {
        process.kill(-child.pid!, "SIGKILL");
        throw new Error(`${err.message}\noutput:\n${out}`);
      },
    );
    const state = JSON.parse(await readFile(path.join(dir, "stack.json"), "utf8")) as Running["state"];
    return { child, stdout: () => out, state, exited };
  }

  async function sftpClient(run: Running, dir: string): Promise<SftpClient> {
    const client = new SftpClient();
    await client.connect({
      host: run.state.sftp.host,
      port: run.state.sftp.port,
      username: "demo_user",
      privateKey: await readFile(path.join(dir, "keys", "demo_user")),
      hostVerifier: (key: Buffer) => fingerprint(key) === run.state.sftp.hostKeyFingerprint,
    });
    return client;
  }

  let dir: string;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "npm-start-"));
  });
  afterAll(async () => {
    // A failed test may leave a stack running: take its whole process group down.
    for (const c of children) {
      if (c.exitCode === null && c.pid) {
        try {
          process.kill(-c.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("comes up, moves a file each way, and leaves nothing running after Ctrl-C", async () => {
    const run = await start(dir);
    children.push(run.child);
    const s3 = new S3Client({
      endpoint: run.state.s3.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
      forcePathStyle: true,
    });
    const sftp = await sftpClient(run, dir);
    try {
      // S3 -> SFTP, seen through an SFTP client as the partner would.
      await s3.send(new PutObjectCommand({ Bucket: "bridge-local", Key: "demo/outbound/hello.txt", Body: "hello\n" }));
      await waitFor("hello.txt on the SFTP server", () => sftp.exists("/inbound/hello.txt"));
      expect((await sftp.get("/inbound/hello.txt")).toString()).toBe("hello\n");

      // SFTP -> S3: uploaded under a temporary name and renamed, as partners should, then pulled on the schedule.
      await sftp.put(Buffer.from("a,b\n"), "/outbound/.upload.tmp");
      await sftp.rename("/outbound/.upload.tmp", "/outbound/data.csv");
      expect(
        await waitFor("data.csv in S3", () => getObject(s3, "bridge-local", "demo/inbound/data.csv"), 20_000),
      ).toBe("a,b\n");
      await waitFor("data.csv in .done", () => sftp.exists("/outbound/.done/data.csv"));
      expect(await sftp.exists("/outbound/data.csv")).toBe(false);
      expect(run.stdout()).toContain(
        "demo  S3 -> SFTP  s3://bridge-local/demo/outbound/hello.txt -> /inbound/hello.txt",
      );
      expect(run.stdout()).toContain("demo  SFTP -> S3  /outbound/data.csv -> s3://bridge-local/demo/inbound/data.csv");

      // The operator's question, answered by the CLI with the variables the stack printed.
      const receipts = await promisify(execFile)(
        path.join(ROOT, "node_modules", ".bin", "node"),
        [path.join(ROOT, "scripts", "bridge.js"), "receipts", "demo"],
        { env: { ...process.env, ...run.state.env } },
      );
      expect(receipts.stdout).toMatch(
        /push {2}s3:\/\/bridge-local\/demo\/outbound\/hello\.txt -> .*\/inbound\/hello\.txt/,
      );
      expect(receipts.stdout).toContain("2 receipts for stream demo");
    } finally {
      await sftp.end();
      s3.destroy();
    }

    // Ctrl-C in a terminal: SIGINT to the whole foreground process group.
    process.kill(-run.child.pid!, "SIGINT");
    expect(await run.exited).toBe(0);
    expect(run.stdout()).toContain("stopped");
    expect(processGone(run.state.pid)).toBe(true);
    expect(await waitFor("s3rver to exit", () => processGone(run.state.s3.pid), 5000)).toBe(true);
    for (const port of [run.state.s3.port, run.state.sftp.port, run.state.lambda.port]) {
      expect(await portClosed(port)).toBe(true);
    }
    expect(existsSync(path.join(dir, "stack.json"))).toBe(false);
  });

  it("serves the same host key and accepts the same user key after a restart, so pinned fingerprints stay valid", async () => {
    const keyBefore = await readFile(path.join(dir, "keys", "demo_user"), "utf8");
    const before = (await readFile(path.join(dir, "bridge.config.yaml"), "utf8")).match(
      /SHA256:[A-Za-z0-9+/]{43}/,
    )?.[0];
    const run = await start(dir);
    children.push(run.child);
    try {
      expect(run.state.sftp.hostKeyFingerprint).toBe(before);
      expect(await readFile(path.join(dir, "keys", "demo_user"), "utf8")).toBe(keyBefore);
      const sftp = await sftpClient(run, dir);
      // The file pushed before the restart is still there: state lives in the directory, not the process.
      expect(await sftp.exists("/inbound/hello.txt")).toBe("-");
      await sftp.end();
    } finally {
      run.child.kill("SIGTERM");
      expect(await run.exited).toBe(0);
    }
  });
});
