import { existsSync } from "node:fs";
import { mkdir, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { PulledState, S3Endpoint, validateConfig, type BridgeConfigInput } from "../../lambda/bridge";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";

/**
 * What happens to a partner's file after its copy reached S3: left in place for partners that allow no moves or
 * deletes (pulled once, and again only when it changes), and archives that expire. Against the embedded SFTP server
 * and s3rver.
 */
describe("pull: after the copy", () => {
  let env: BridgeEnv;
  beforeAll(async () => {
    env = await startBridgeEnv("bridge-pull-after");
  });
  afterAll(async () => {
    await env?.close();
  });

  const drop = (remote: string, body: string | Buffer, ageSeconds?: number) => env.drop(remote, body, ageSeconds);
  const keysUnder = (prefix: string) => env.keysUnder(prefix);
  const stream = (folder: string, edit: (pull: NonNullable<BridgeConfigInput["streams"][string]["pull"]>) => void) =>
    env.config((doc) => {
      const pull = doc.streams.psp!.pull!;
      pull.from = `/${folder}`;
      pull.to = `${folder}/`;
      edit(pull);
    });

  describe("after: leave", () => {
    const leave = () => stream("LEAVE", (p) => (p.after = "leave"));

    it("pulls each file once and leaves it on the server; a file the partner replaces is pulled again", async () => {
      await drop("/LEAVE/a.csv", "a1");
      await drop("/LEAVE/b.csv", "b1");
      await drop("/LEAVE/c.csv", "c1");
      const first = await env.bridge(leave()).pull(["psp"]);
      expect(first.ok).toBe(true);
      expect(first.streams[0]?.files).toBe(3);
      expect((await readdir(env.local("/LEAVE"))).sort()).toEqual(["a.csv", "b.csv", "c.csv"]);
      expect(await keysUnder("psp/LEAVE/")).toEqual(["psp/LEAVE/a.csv", "psp/LEAVE/b.csv", "psp/LEAVE/c.csv"]);

      // Nothing changed: nothing is pulled, and the report counts them rather than listing each.
      const second = await env.bridge(leave()).pull(["psp"]);
      expect(second.streams[0]?.files).toBe(0);
      expect(second.streams[0]?.alreadyPulled).toBe(3);
      expect(second.streams[0]?.skipped).toEqual([]);

      // The partner replaces b.csv (new content, new mtime): it is pulled again, and S3 keeps both versions.
      await drop("/LEAVE/b.csv", "b2, longer", 60);
      const third = await env.bridge(leave()).pull(["psp"]);
      expect(third.streams[0]?.files).toBe(1);
      expect(third.streams[0]?.alreadyPulled).toBe(2);
      const bKeys = (await keysUnder("psp/LEAVE/")).filter((k) => k.includes("/b."));
      expect(bKeys).toHaveLength(2);
      expect((await env.get("psp/LEAVE/b.csv"))?.toString()).toBe("b1");
      expect((await env.get(bKeys.find((k) => k !== "psp/LEAVE/b.csv")!))?.toString()).toBe("b2, longer");
    });

    it("forgets files the partner removed, and keeps the record when the server cannot be listed", async () => {
      const endpoint = new S3Endpoint(env.s3Client);
      const stateKey = "_bridge/receipts/psp/pulled-state.json";
      const before = await PulledState.load(endpoint, env.bucket, stateKey);
      // The server reports whole seconds; what was recorded is what it listed.
      const listedMtime = Math.floor((await stat(env.local("/LEAVE/a.csv"))).mtimeMs / 1000) * 1000;
      expect(before.has("/LEAVE/a.csv", 2, listedMtime)).toBe(true);
      expect(before.size).toBe(3);

      await rm(env.local("/LEAVE/c.csv"));
      await env.bridge(leave()).pull(["psp"]);
      expect((await PulledState.load(endpoint, env.bucket, stateKey)).size).toBe(2);

      const unreachable = env.config((doc) => {
        doc.streams.psp!.pull = { from: "/LEAVE", to: "LEAVE/", after: "leave", minAgeSeconds: 0, stableCheckMs: 0 };
        doc.streams.psp!.sftp.port = 1;
      });
      const failed = await env.bridge(unreachable).pull(["psp"]);
      expect(failed.ok).toBe(false);
      expect((await PulledState.load(endpoint, env.bucket, stateKey)).size).toBe(2);
    });

    it("two runs saving at once keep both runs' records", async () => {
      const endpoint = new S3Endpoint(env.s3Client);
      const key = "_bridge/receipts/race/pulled-state.json";
      const one = await PulledState.load(endpoint, env.bucket, key);
      const two = await PulledState.load(endpoint, env.bucket, key);
      one.record("/x/one.csv", { size: 1, mtimeMs: 1000, key: "k1", pulledAt: "2026-12-03T00:00:01.000Z" });
      two.record("/x/two.csv", { size: 2, mtimeMs: 2000, key: "k2", pulledAt: "2026-12-03T00:00:02.000Z" });
      await Promise.all([one.save(), two.save()]);
      const merged = await PulledState.load(endpoint, env.bucket, key);
      expect(merged.has("/x/one.csv", 1, 1000)).toBe(true);
      expect(merged.has("/x/two.csv", 2, 2000)).toBe(true);
    });

    it("is refused by the validator without receipts, and doneRetentionDays is refused without archiving", () => {
      const doc = env.configDoc((d) => {
        d.receipts = { enabled: false };
        d.streams.psp!.pull = { from: "/LEAVE", to: "LEAVE/", after: "leave", doneRetentionDays: 30 };
      });
      expect(() => validateConfig(doc, "test", { allowFileCredentials: true })).toThrow(
        /streams\.psp\.pull\.after: after: leave remembers what was pulled next to the receipts[\s\S]*streams\.psp\.pull\.doneRetentionDays: only applies to archived files/,
      );
    });
  });

  describe("pull.doneRetentionDays", () => {
    it("deletes archived files older than the retention, counted from the archiving, and reports each", async () => {
      const config = stream("RETAIN", (p) => (p.doneRetentionDays = 30));
      // A partner file written 100 days ago and pulled now is archived now: retention starts today.
      await drop("/RETAIN/old-but-new.csv", "fresh archive", 100 * 86_400);
      const pulled = await env.bridge(config).pull(["psp"]);
      expect(pulled.streams[0]?.files).toBe(1);
      const archivedAt = (await stat(env.local("/RETAIN/.done/old-but-new.csv"))).mtimeMs;
      expect(Math.abs(archivedAt - Date.now())).toBeLessThan(60_000);
      expect(pulled.streams[0]?.cleaned).toBeUndefined();

      // Archived files of 40 days and of 10 days: the older one goes on the next run.
      await mkdir(env.local("/RETAIN/.done/2026"), { recursive: true });
      for (const [name, days] of [
        ["2026/expired.csv", 40],
        ["kept.csv", 10],
      ] as const) {
        await writeFile(env.local(`/RETAIN/.done/${name}`), name);
        const t = new Date(Date.now() - days * 86_400_000);
        await utimes(env.local(`/RETAIN/.done/${name}`), t, t);
      }
      const next = await env.bridge(config).pull(["psp"]);
      expect(next.ok).toBe(true);
      expect(next.streams[0]?.cleaned).toEqual([
        {
          path: "/RETAIN/.done/2026/expired.csv",
          bytes: "2026/expired.csv".length,
          ageSeconds: expect.any(Number) as number,
          reason: "archive-expired",
        },
      ]);
      expect(existsSync(env.local("/RETAIN/.done/2026/expired.csv"))).toBe(false);
      expect(existsSync(env.local("/RETAIN/.done/kept.csv"))).toBe(true);
      expect(existsSync(env.local("/RETAIN/.done/old-but-new.csv"))).toBe(true);
    });
  });
});

describe("requests the engine refuses, by code", () => {
  let env: BridgeEnv;
  beforeAll(async () => {
    env = await startBridgeEnv("bridge-refusals");
  });
  afterAll(async () => {
    await env?.close();
  });

  it("a pull of a stream without a pull section is a config error, a malformed resend a request error", async () => {
    const pushOnly = env.config((doc) => {
      delete doc.streams.psp!.pull;
    });
    const pulled = await env.bridge(pushOnly).pull(["psp"]);
    expect(pulled.streams[0]?.failed[0]).toMatchObject({
      code: "CONFIG_INVALID",
      message: "pull psp: the stream has no pull section; add streams.psp.pull",
    });
    await expect(
      env.bridge().resend({ stream: "psp", direction: "push", since: "last tuesday" }),
    ).rejects.toMatchObject({ code: "REQUEST_INVALID", message: expect.stringMatching(/^resend: since/) as string });
    await expect(env.bridge(pushOnly).resend({ stream: "psp", direction: "pull" })).rejects.toMatchObject({
      code: "REQUEST_INVALID",
    });
  });
});
