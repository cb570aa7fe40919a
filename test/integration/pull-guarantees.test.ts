import { existsSync } from "node:fs";
import { appendFile, mkdir, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { PULL_REFUSED, type BridgeConfigInput } from "../../lambda/bridge";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";
import { startHttpFaultProxy } from "../support/http-fault-proxy";

/**
 * Pull under the partner behaviour that broke it: odd file names, names reused from one day to the next, files still
 * being written. Against the embedded SFTP server and s3rver.
 */
describe("pull: what a partner's folder really holds", () => {
  let env: BridgeEnv;
  beforeAll(async () => {
    env = await startBridgeEnv("bridge-pull-guarantees");
  });
  afterAll(async () => {
    await env?.close();
  });

  const drop = (remote: string, body: string | Buffer, ageSeconds?: number) => env.drop(remote, body, ageSeconds);

  const keysUnder = (prefix: string) => env.keysUnder(prefix);

  const streamOn = (folder: string, edit?: (pull: NonNullable<BridgeConfigInput["streams"][string]["pull"]>) => void) =>
    env.config((doc) => {
      const pull = doc.streams.psp!.pull!;
      pull.from = `/${folder}`;
      pull.to = `${folder}/`;
      edit?.(pull);
    });

  it("a refused file name is reported and left alone; the other files of the folder still move", async () => {
    const odd = ["back\\slash.txt", "new\nline.txt", "tab\there.txt", "del\u007f.txt"];
    for (let i = 1; i <= 12; i++) await drop(`/ODD/good-${i}.txt`, `good ${i}`);
    for (const name of odd) await drop(`/ODD/${name}`, "odd");

    const report = await env.bridge(streamOn("ODD")).pull(["psp"]);
    const [s] = report.streams;
    expect(report.ok).toBe(true);
    expect(s?.files).toBe(12);
    expect(s?.failed).toEqual([]);
    const refused = s!.skipped.filter((f) => f.reason === "unsafe-name");
    expect(refused.map((f) => f.source).sort()).toEqual(
      ["/ODD/back\\slash.txt", "/ODD/new\\x0aline.txt", "/ODD/tab\\x09here.txt", "/ODD/del\\x7f.txt"].sort(),
    );
    // The source shown is safe on one line, and the reason says what is wrong and what to do.
    for (const f of refused) expect(f.source).not.toMatch(/[\n\t\u007f]/);
    expect(refused.find((f) => f.source.includes("back"))?.detail).toMatch(/backslash.*rename it there/);
    expect(refused.find((f) => f.source.includes("new"))?.detail).toMatch(/control character/);
    // Every good file is in S3 and archived; the odd ones stay where the partner put them, on every run.
    expect(await keysUnder("psp/ODD/")).toHaveLength(12);
    for (const name of odd) expect(existsSync(env.local(`/ODD/${name}`))).toBe(true);
    // Each is logged with the wording the template's FilesRefused alarm matches.
    expect(env.logs.filter((l) => l.message === PULL_REFUSED)).toHaveLength(4);
    const again = await env.bridge(streamOn("ODD")).pull(["psp"]);
    expect(again.ok).toBe(true);
    expect(again.streams[0]?.skipped.filter((f) => f.reason === "unsafe-name")).toHaveLength(4);
  });

  it("a reused file name never replaces the earlier delivery in S3: both are kept, the later one time-stamped", async () => {
    await drop("/REUSE/report.csv", "A: monday");
    const first = await env.bridge(streamOn("REUSE")).pull(["psp"]);
    expect(first.streams[0]?.files).toBe(1);
    await drop("/REUSE/report.csv", "B: tuesday");
    const second = await env.bridge(streamOn("REUSE")).pull(["psp"]);
    expect(second.ok).toBe(true);

    const keys = await keysUnder("psp/REUSE/");
    expect(keys).toHaveLength(2);
    expect(keys).toContain("psp/REUSE/report.csv");
    const later = keys.find((k) => k !== "psp/REUSE/report.csv")!;
    expect(later).toMatch(/^psp\/REUSE\/report\.\d{8}T\d{6}Z(-\d+)?\.csv$/);
    expect((await env.get("psp/REUSE/report.csv"))?.toString()).toBe("A: monday");
    expect((await env.get(later))?.toString()).toBe("B: tuesday");
    expect(second.streams[0]?.moved[0]?.destination).toBe(`s3://${env.bucket}/${later}`);
    // The done dir keeps both as well.
    expect((await readdir(env.local("/REUSE/.done"))).filter((n) => n.startsWith("report"))).toHaveLength(2);
    // The receipts say where each delivery went.
    const receipts = await env.bridge().context.receipts.list("psp", { direction: "pull" });
    const mine = receipts.filter((r) => r.source.path === "/REUSE/report.csv").map((r) => r.destination.key);
    expect(mine).toEqual(["psp/REUSE/report.csv", later]);
  });

  it.each([
    ["skip", "exists"],
    ["fail", "S3_OBJECT_EXISTS"],
  ] as const)("onConflict: %s leaves the new file on the server and the earlier copy untouched", async (mode, what) => {
    const folder = `CONFLICT_${mode.toUpperCase()}`;
    await drop(`/${folder}/daily.csv`, "first");
    await env.bridge(streamOn(folder, (p) => (p.onConflict = mode))).pull(["psp"]);
    await drop(`/${folder}/daily.csv`, "second");
    const report = await env.bridge(streamOn(folder, (p) => (p.onConflict = mode))).pull(["psp"]);
    const [s] = report.streams;
    if (mode === "skip") {
      expect(report.ok).toBe(true);
      expect(s?.skipped.find((f) => f.source === `/${folder}/daily.csv`)).toMatchObject({ reason: what });
    } else {
      expect(report.ok).toBe(false);
      expect(s?.failed[0]).toMatchObject({ code: what });
      expect(s?.failed[0]?.message).toMatch(/already holds an earlier delivery/);
    }
    expect(await keysUnder(`psp/${folder}/`)).toEqual([`psp/${folder}/daily.csv`]);
    expect((await env.get(`psp/${folder}/daily.csv`))?.toString()).toBe("first");
    expect(existsSync(env.local(`/${folder}/daily.csv`))).toBe(true);
  });

  it("onConflict: overwrite replaces the object (a versioned bucket keeps the earlier one as a version)", async () => {
    await drop("/OVERWRITE/daily.csv", "first");
    await env.bridge(streamOn("OVERWRITE", (p) => (p.onConflict = "overwrite"))).pull(["psp"]);
    await drop("/OVERWRITE/daily.csv", "second");
    const report = await env.bridge(streamOn("OVERWRITE", (p) => (p.onConflict = "overwrite"))).pull(["psp"]);
    expect(report.streams[0]?.files).toBe(1);
    expect(await keysUnder("psp/OVERWRITE/")).toEqual(["psp/OVERWRITE/daily.csv"]);
    expect((await env.get("psp/OVERWRITE/daily.csv"))?.toString()).toBe("second");
  });

  it("the same file pulled again after a run that copied it but could not archive it is not a conflict", async () => {
    await drop("/AGAIN/once.csv", "only once");
    env.sftp.faults.refuseRename = true;
    env.sftp.faults.refusePosixRename = true;
    try {
      const interrupted = await env.bridge(streamOn("AGAIN")).pull(["psp"]);
      expect(interrupted.streams[0]?.failed).toHaveLength(1);
    } finally {
      env.sftp.faults.refuseRename = false;
      env.sftp.faults.refusePosixRename = false;
    }
    expect(await keysUnder("psp/AGAIN/")).toEqual(["psp/AGAIN/once.csv"]);
    const retried = await env.bridge(streamOn("AGAIN")).pull(["psp"]);
    expect(retried.streams[0]?.files).toBe(1);
    expect(await keysUnder("psp/AGAIN/")).toEqual(["psp/AGAIN/once.csv"]);
    const head = await env.s3Client.send(new HeadObjectCommand({ Bucket: env.bucket, Key: "psp/AGAIN/once.csv" }));
    expect(head.Metadata?.["bridge-source"]).toBe(encodeURIComponent("/AGAIN/once.csv"));
  });

  it("records the version id S3 gives a pulled object in a versioned bucket in its receipt", async () => {
    // s3rver has no versioning: a proxy adds the header a versioned bucket answers a write with.
    const proxy = await startHttpFaultProxy(env.s3.endpoint);
    let n = 0;
    proxy.extraHeaders = (method, path) =>
      (method === "PUT" || method === "POST") && path.includes("/psp/VERSIONED/")
        ? { "x-amz-version-id": `v${++n}.tUd9ZQwXbc` }
        : undefined;
    const client = env.s3.client(proxy.endpoint);
    try {
      await drop("/VERSIONED/v.csv", "versioned");
      const report = await env.bridge(streamOn("VERSIONED"), { s3: client }).pull(["psp"]);
      expect(report.streams[0]?.files).toBe(1);
      const receipts = await env.bridge().context.receipts.list("psp", { direction: "pull", relative: "v.csv" });
      expect(receipts.map((r) => r.destination)).toEqual([
        expect.objectContaining({ key: "psp/VERSIONED/v.csv", versionId: "v1.tUd9ZQwXbc" }),
      ]);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });

  describe("a file still being written, with the default pull settings", () => {
    /** The stream as a user would write it: no minAgeSeconds, no stableCheckMs. */
    const defaults = () =>
      streamOn("SLOW", (p) => {
        delete p.minAgeSeconds;
        delete p.stableCheckMs;
      });

    it("is never taken as a fragment; once complete, exactly the whole file reaches S3", async () => {
      const file = env.local("/SLOW/statement.txt");
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, "");
      let lines = 0;
      const writing = setInterval(() => void appendFile(file, `line ${++lines}\n`), 200);
      const taken: number[] = [];
      try {
        const until = Date.now() + 5_000;
        while (Date.now() < until) {
          // Our clock as it is, and a minute ahead (a partner whose clock lags ours: its mtimes look old).
          for (const skew of [0, 60_000]) {
            const report = await env.bridge(defaults(), { clock: () => Date.now() + skew }).pull(["psp"]);
            const [s] = report.streams;
            taken.push(s!.files);
            const reasons = s!.skipped.map((f) => f.reason);
            expect(reasons).toEqual([skew === 0 ? "too-young" : "growing"]);
          }
        }
      } finally {
        clearInterval(writing);
      }
      await new Promise((r) => setTimeout(r, 300));
      expect(taken.every((n) => n === 0)).toBe(true);
      expect(await keysUnder("psp/SLOW/")).toEqual([]);

      // Finished: the next run after minAgeSeconds (the clock moved on) takes the whole file, once.
      const complete = Array.from({ length: lines }, (_, i) => `line ${i + 1}\n`).join("");
      const report = await env.bridge(defaults(), { clock: () => Date.now() + 31_000 }).pull(["psp"]);
      expect(report.streams[0]?.files).toBe(1);
      expect(await keysUnder("psp/SLOW/")).toEqual(["psp/SLOW/statement.txt"]);
      expect((await env.get("psp/SLOW/statement.txt"))?.toString()).toBe(complete);
    }, 60_000);
  });
});
