// What is measured: for each direction and file size, the bridge and its peers moving the same bytes between the same
// two servers, over the same link (direct, or through the latency proxy). Each case prepares its source and an empty
// destination (untimed), runs once (timed), checks what arrived, and cleans up (untimed).
import { rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { BridgeConfigInput, PushItem } from "../../lambda/bridge";
import type { ChildJob } from "./child";
import { BUCKET, LARGE_NAME, RECEIPTS_BUCKET, filesIn, type BenchEnv, type Link } from "./env";
import { measureCommand, measureNodeChild, type Sample } from "./measure";

export type Group = "s3-sftp-large" | "sftp-s3-large" | "s3-sftp-small" | "sftp-s3-small";
export type Tool = "bridge" | "baseline" | "rclone" | "sftp" | "sftp-gcm" | "sdk";

export interface Case {
  id: string;
  group: Group;
  tool: Tool;
  label: string;
  /** Bytes and files one run moves. */
  bytes: number;
  files: number;
  run(index: number): Promise<Sample>;
}

export const GROUPS: Record<Group, string> = {
  "s3-sftp-large": "S3 -> SFTP, 1 large file",
  "sftp-s3-large": "SFTP -> S3, 1 large file",
  "s3-sftp-small": "S3 -> SFTP, small files",
  "sftp-s3-small": "SFTP -> S3, small files",
};

export interface CaseOptions {
  /** The bundled child script (see measure.ts). */
  childScript: string;
  /** The same child built from an earlier version of the engine (--baseline), and that version's name. */
  baseline?: { script: string; ref: string };
  /** Extra node flags for the bridge child (e.g. --cpu-prof). */
  bridgeNodeArgs: string[];
  /** Node binary for the bridge children (default: the one running the bench). */
  bridgeNode?: string;
  /** receipts.enabled for the bridge (default true, as in production). */
  receipts?: boolean;
  /** sftp.concurrency for the bridge's streams; undefined keeps the config default. */
  concurrency?: number;
  /** pull.stableCheckMs for the bridge (the wait before a pull lists again); undefined keeps the config default. */
  stableCheckMs?: number;
  /**
   * Only what the runs over distance compare (large file: bridge, rclone, OpenSSH sftp; small files: bridge and
   * rclone): the SDK upload never touches SFTP, and OpenSSH's `put -r`/`get -r` handle one file at a time, paying a
   * few round trips per file.
   */
  distance?: boolean;
}

async function expectLocal(dir: string, files: number, bytes: number, what: string): Promise<void> {
  const found = await filesIn(dir);
  if (found.count !== files || found.bytes !== bytes) {
    throw new Error(
      `${what}: expected ${files} files / ${bytes} bytes in ${dir}, found ${found.count} / ${found.bytes}`,
    );
  }
}

async function expectS3(env: BenchEnv, prefix: string, files: number, bytes: number, what: string): Promise<void> {
  const found = await env.listPrefix(BUCKET, prefix);
  const total = found.reduce((n, o) => n + (o.Size ?? 0), 0);
  if (found.length !== files || total !== bytes) {
    throw new Error(
      `${what}: expected ${files} objects / ${bytes} bytes under ${prefix}, found ${found.length} / ${total}`,
    );
  }
}

export function bridgeConfig(
  link: Link,
  receiptsPrefix: string,
  concurrency?: number,
  receipts = true,
  stableCheckMs?: number,
): BridgeConfigInput {
  const { server, keyFile } = link.partner;
  const sftp = {
    host: link.host,
    port: link.port,
    username: server.username,
    credentials: { file: keyFile },
    hostKeys: [server.hostKeyFingerprint],
    ...(concurrency === undefined ? {} : { concurrency }),
  };
  const stream = (size: "large" | "small") => ({
    s3: { bucket: BUCKET, prefix: `${size}/` },
    sftp,
    push: { from: "out/", to: link.partner.sftpDir(`bridge-push-${size}`).remote },
    pull: {
      from: link.partner.sftpDir(`bridge-pull-${size}`).remote,
      to: "bridge-in/",
      ...(stableCheckMs === undefined ? {} : { stableCheckMs }),
    },
  });
  return {
    receipts: { enabled: receipts, bucket: RECEIPTS_BUCKET, prefix: receiptsPrefix },
    streams: { large: stream("large"), small: stream("small") },
  };
}

export async function makeCases(env: BenchEnv, link: Link, options: CaseOptions): Promise<Case[]> {
  const { sizes } = env;
  const partner = link.partner;
  const distance = options.distance ?? false;
  const large = { bytes: sizes.largeBytes, files: 1 };
  const small = { bytes: sizes.smallBytes * sizes.smallCount, files: sizes.smallCount };
  const s3Env = { endpoint: env.s3.endpoint, region: env.s3.region, credentials: env.s3.credentials };
  // What S3 notifications would hand the bridge: bucket, key and ETag of each new object.
  const itemsOf = async (prefix: string): Promise<PushItem[]> =>
    (await env.listPrefix(BUCKET, prefix)).map((o) => ({ bucket: BUCKET, key: o.Key as string, eTag: o.ETag }));
  const largeItems = await itemsOf("large/out/");
  const smallItems = await itemsOf("small/out/");

  const rcloneEnv = (): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) {
      // AWS_CA_BUNDLE (set on these machines) makes rclone's S3 backend abort (FIELD-NOTES).
      if (k !== "AWS_CA_BUNDLE" && !k.startsWith("RCLONE_")) e[k] = v;
    }
    return { ...e, ...link.rcloneSftp.env, ...env.rcloneS3.env };
  };
  const rclone = (src: string, dst: string) =>
    measureCommand(env.dir, "rclone", ["--config", "/dev/null", "copy", src, dst], rcloneEnv());

  const sftp = async (batch: string[], cipher?: string) => {
    const batchFile = path.join(env.dir, "sftp.batch");
    await writeFile(batchFile, batch.join("\n") + "\n");
    const args = [
      "-q",
      "-b",
      batchFile,
      "-i",
      partner.keyFile,
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${link.knownHosts}`,
      "-o",
      "BatchMode=yes",
      ...(cipher ? ["-c", cipher] : []),
      "-P",
      String(link.port),
      `${partner.server.username}@${link.host}`,
    ];
    return measureCommand(env.dir, "sftp", args);
  };

  const bridge = async (script: string, index: number, job: (receipts: string) => ChildJob) => {
    const receipts = `run-${index}-${Date.now()}/`;
    try {
      return await measureNodeChild(
        { scratch: env.dir, script, nodeArgs: options.bridgeNodeArgs, node: options.bridgeNode },
        job(receipts),
      );
    } finally {
      await env.emptyPrefix(RECEIPTS_BUCKET, receipts);
    }
  };
  const config = (receipts: string) =>
    bridgeConfig(link, receipts, options.concurrency, options.receipts ?? true, options.stableCheckMs);
  const engines: { tool: Tool; script: string; suffix: string }[] = [
    { tool: "bridge", script: options.childScript, suffix: "" },
    ...(options.baseline
      ? [{ tool: "baseline" as Tool, script: options.baseline.script, suffix: ` @ ${options.baseline.ref}` }]
      : []),
  ];

  const cases: Case[] = [];
  for (const size of ["large", "small"] as const) {
    const amount = size === "large" ? large : small;
    const items = size === "large" ? largeItems : smallItems;
    const up: Group = `s3-sftp-${size}`;
    const down: Group = `sftp-s3-${size}`;

    // ---- S3 -> SFTP
    for (const engine of engines) {
      cases.push({
        id: `${up}/${engine.tool}`,
        group: up,
        tool: engine.tool,
        label: `bridge push${engine.suffix}`,
        ...amount,
        async run(index) {
          const dest = await partner.resetSftpDir(`bridge-push-${size}`);
          const sample = await bridge(engine.script, index, (receipts) => ({
            kind: "bridge-push",
            s3: s3Env,
            config: config(receipts),
            items,
          }));
          await expectLocal(dest.local, amount.files, amount.bytes, this.id);
          await rm(dest.local, { recursive: true, force: true });
          return sample;
        },
      });
    }
    cases.push({
      id: `${up}/rclone`,
      group: up,
      tool: "rclone",
      label: "rclone copy",
      ...amount,
      async run() {
        const dest = await partner.resetSftpDir(`rclone-push-${size}`);
        const sample = await rclone(
          `${env.rcloneS3.name}:${BUCKET}/${size}/out`,
          `${link.rcloneSftp.name}:${dest.remote}`,
        );
        await expectLocal(dest.local, amount.files, amount.bytes, this.id);
        await rm(dest.local, { recursive: true, force: true });
        return sample;
      },
    });
    const ciphers: [Tool, string | undefined, string][] =
      size === "large"
        ? [
            ["sftp", undefined, `OpenSSH sftp put (${partner.defaultCipher}, default)`],
            ["sftp-gcm", "aes128-gcm@openssh.com", "OpenSSH sftp put (aes128-gcm)"],
          ]
        : distance
          ? []
          : [["sftp", undefined, "OpenSSH sftp put -r"]];
    for (const [tool, cipher, label] of ciphers) {
      cases.push({
        id: `${up}/${tool}`,
        group: up,
        tool,
        label,
        ...amount,
        async run() {
          const dest = await partner.resetSftpDir(`${tool}-put-${size}`);
          const batch =
            size === "large"
              ? [`put ${env.localLarge} ${dest.remote}/${LARGE_NAME}`]
              : [`put -r ${env.localSmallDir} ${dest.remote}`];
          const sample = await sftp(batch, cipher);
          await expectLocal(dest.local, amount.files, amount.bytes, this.id);
          await rm(dest.local, { recursive: true, force: true });
          return sample;
        },
      });
    }

    // ---- SFTP -> S3
    for (const engine of engines) {
      cases.push({
        id: `${down}/${engine.tool}`,
        group: down,
        tool: engine.tool,
        label: `bridge pull${engine.suffix}`,
        ...amount,
        async run(index) {
          const prefix = `${size}/bridge-in/`;
          await env.emptyPrefix(BUCKET, prefix);
          await partner.stageSftpSource(`bridge-pull-${size}`, size);
          const sample = await bridge(engine.script, index, (receipts) => ({
            kind: "bridge-pull",
            s3: s3Env,
            config: config(receipts),
            streams: [size],
          }));
          await expectS3(env, prefix, amount.files, amount.bytes, this.id);
          await env.emptyPrefix(BUCKET, prefix);
          await rm(partner.sftpDir(`bridge-pull-${size}`).local, { recursive: true, force: true });
          return sample;
        },
      });
    }
    cases.push({
      id: `${down}/rclone`,
      group: down,
      tool: "rclone",
      label: "rclone copy",
      ...amount,
      async run() {
        const prefix = `${size}/rclone-in/`;
        await env.emptyPrefix(BUCKET, prefix);
        await partner.stageSftpSource(`rclone-pull-${size}`, size);
        const sample = await rclone(
          `${link.rcloneSftp.name}:${partner.sftpDir(`rclone-pull-${size}`).remote}`,
          `${env.rcloneS3.name}:${BUCKET}/${prefix.replace(/\/$/, "")}`,
        );
        await expectS3(env, prefix, amount.files, amount.bytes, this.id);
        await env.emptyPrefix(BUCKET, prefix);
        await rm(partner.sftpDir(`rclone-pull-${size}`).local, { recursive: true, force: true });
        return sample;
      },
    });
    if (size === "large" && !distance) {
      cases.push({
        id: `${down}/sdk`,
        group: down,
        tool: "sdk",
        label: "plain SDK upload (lib-storage, from local disk)",
        ...amount,
        async run() {
          const prefix = "large/sdk-in/";
          await env.emptyPrefix(BUCKET, prefix);
          const sample = await measureNodeChild(
            { scratch: env.dir, script: options.childScript },
            { kind: "sdk-upload", s3: s3Env, bucket: BUCKET, key: `${prefix}${LARGE_NAME}`, file: env.localLarge },
          );
          await expectS3(env, prefix, 1, amount.bytes, this.id);
          await env.emptyPrefix(BUCKET, prefix);
          return sample;
        },
      });
    }
    const getCiphers: [Tool, string | undefined, string][] =
      size === "large"
        ? [
            ["sftp", undefined, `OpenSSH sftp get (${partner.defaultCipher}, default)`],
            ["sftp-gcm", "aes128-gcm@openssh.com", "OpenSSH sftp get (aes128-gcm)"],
          ]
        : distance
          ? []
          : [["sftp", undefined, "OpenSSH sftp get -r"]];
    for (const [tool, cipher, label] of getCiphers) {
      cases.push({
        id: `${down}/${tool}`,
        group: down,
        tool,
        label,
        ...amount,
        async run() {
          await partner.stageSftpSource(`${tool}-get-${size}`, size);
          const remote = partner.sftpDir(`${tool}-get-${size}`).remote;
          const local = path.join(env.dir, `${tool}-get-${size}`);
          await rm(local, { recursive: true, force: true });
          const batch = size === "large" ? [`get ${remote}/${LARGE_NAME} ${local}.bin`] : [`get -r ${remote} ${local}`];
          const sample = await sftp(batch, cipher);
          if (size === "large") {
            const got = (await stat(`${local}.bin`)).size;
            if (got !== amount.bytes) throw new Error(`${this.id}: got ${got} bytes, expected ${amount.bytes}`);
            await rm(`${local}.bin`, { force: true });
          } else {
            await expectLocal(local, amount.files, amount.bytes, this.id);
            await rm(local, { recursive: true, force: true });
          }
          await rm(partner.sftpDir(`${tool}-get-${size}`).local, { recursive: true, force: true });
          return sample;
        },
      });
    }
  }
  return cases;
}
