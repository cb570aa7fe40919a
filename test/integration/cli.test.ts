import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo, type Socket } from "node:net";
import path from "node:path";
import { stringify } from "yaml";
import type { BridgeConfigInput } from "../../lambda/bridge";
import { generateUserKey } from "../../scripts/local/sftp-server";
import { startBridgeEnv, type BridgeEnv } from "../support/bridge-env";

/**
 * The `bridge` command as an operator runs it: the real bin script in its own process, against s3rver and the
 * embedded SFTP server, judged by its output and exit code (0 ok, 1 usage/config, 2 transfer failed).
 */
jest.setTimeout(60_000);

const ROOT = path.resolve(__dirname, "..", "..");
const BIN = path.join(ROOT, "scripts", "bridge.js");
const NODE = path.join(ROOT, "node_modules", ".bin", "node");
const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe("bridge CLI", () => {
  let env: BridgeEnv;
  let childEnv: NodeJS.ProcessEnv;
  const file = (name: string) => path.join(env.dir, name);

  function bridge(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
    return new Promise((resolve) => {
      execFile(NODE, [BIN, ...args], { env: { ...childEnv, ...extraEnv }, cwd: env.dir }, (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? -1) : 0;
        resolve({ code: typeof code === "number" ? code : -1, stdout, stderr });
      });
    });
  }

  async function writeConfig(name: string, change?: (doc: BridgeConfigInput) => void): Promise<string> {
    await writeFile(file(name), stringify(env.configDoc(change)));
    return file(name);
  }

  beforeAll(async () => {
    env = await startBridgeEnv("bridge-cli");
    const good = await writeConfig("bridge.config.yaml");
    await mkdir(env.local("/OUT"), { recursive: true });
    childEnv = {
      PATH: process.env.PATH,
      HOME: env.dir,
      AWS_ENDPOINT_URL_S3: env.s3.endpoint,
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: "S3RVER",
      AWS_REGION: "us-east-1",
      AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED",
      BRIDGE_CONFIG: good,
    };
  });
  afterAll(async () => {
    await env?.close();
  });

  it("prints help for the tool and for every command, and exits 0", async () => {
    const runs = await Promise.all([
      bridge(["--help"]),
      ...["validate", "test-connection", "push", "pull", "receipts"].map((c) => bridge([c, "--help"])),
      bridge(["help", "receipts"]),
    ]);
    for (const run of runs) expect(run).toMatchObject({ code: 0, stderr: "" });
    expect(runs[0]?.stdout).toMatch(
      /Commands:\n {2}validate .*\n {2}test-connection .*\n {2}push .*\n {2}pull .*\n {2}receipts /,
    );
    expect(runs[0]?.stdout).toContain("Exit codes: 0 success; 1 usage or config problem");
    expect(runs[1]?.stdout).toMatch(/^Usage: bridge validate/);
    expect(runs[2]?.stdout).toMatch(/^Usage: bridge test-connection <stream>/);
    expect(runs[3]?.stdout).toContain("--force");
    expect(runs[5]?.stdout).toContain("--since <T>");
    expect(runs[6]?.stdout).toBe(runs[5]?.stdout);
    for (const run of runs.slice(1)) expect(run.stdout).toContain("-c, --config <loc>");
  });

  it("refuses an unknown command or option with one line and exit 1", async () => {
    const [command, option, none] = await Promise.all([
      bridge(["frobnicate"]),
      bridge(["push", "--frob", "psp"]),
      bridge([]),
    ]);
    expect(command).toMatchObject({ code: 1, stdout: "" });
    expect(command.stderr).toBe(
      'error: unknown command "frobnicate"; commands: validate, test-connection, push, pull, receipts\n',
    );
    expect(option.code).toBe(1);
    expect(option.stderr).toBe(`error: Unknown option '--frob'; see "bridge push --help"\n`);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("Usage: bridge <command>");
  });

  it("validate: OK with the stream count, or every problem by its path and exit 1", async () => {
    const ok = await bridge(["validate", file("bridge.config.yaml")]);
    expect(ok).toMatchObject({ code: 0, stderr: "" });
    expect(ok.stdout).toBe(`OK: 1 stream (psp) in ${file("bridge.config.yaml")}\n`);

    await writeFile(
      file("bad.yaml"),
      stringify({
        streams: {
          good: {
            s3: { bucket: "shared-bucket", prefix: "good/" },
            sftp: { host: "h", username: "u", credentials: { file: "k" }, hostKeys: [env.sftp.hostKeyFingerprint] },
            // A pulled file would land where push picks files up, and be sent straight back.
            push: { from: "out/", to: "/IN" },
            pull: { from: "/OUT", to: "out/pulled/" },
          },
          "bad.name": {
            s3: { bucket: "b" },
            sftp: { host: "h", password: "hunter2", credentials: {}, hostKeys: ["SHA256:short"], port: 70000 },
            push: { to: "/x/../../etc", colour: "red" },
          },
        },
      }),
    );
    const bad = await bridge(["validate", file("bad.yaml")]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe("");
    const lines = bad.stderr.trim().split("\n");
    expect(lines[0]).toMatch(/^error: config .*bad\.yaml has \d+ problem\(s\):$/);
    for (const problem of [
      'streams["bad.name"]: stream names are letters',
      'streams["bad.name"].s3.bucket:',
      'streams["bad.name"].sftp.password: inline secrets are not allowed',
      'streams["bad.name"].sftp.credentials: credentials must be exactly one reference',
      'streams["bad.name"].sftp.hostKeys[0]: must be an OpenSSH SHA256 fingerprint',
      'streams["bad.name"].sftp.port:',
      'streams["bad.name"].push.colour: unknown field "colour"',
      "streams.good.pull.to:",
    ]) {
      expect(lines.some((l) => l.startsWith(`  ${problem}`))).toBe(true);
    }
    expect(lines.length).toBeGreaterThanOrEqual(9);

    const [lambda, missing] = await Promise.all([
      bridge(["validate", "--lambda", file("bridge.config.yaml")]),
      bridge(["validate", file("nothere.yaml")]),
    ]);
    expect(lambda.code).toBe(1);
    expect(lambda.stderr).toMatch(/streams\.psp\.sftp\.credentials.*file/);
    expect(missing).toMatchObject({ code: 1, stdout: "" });
    expect(missing.stderr).toBe(
      `error: config ${file("nothere.yaml")}: no file at ${file("nothere.yaml")}; create it (see examples/bridge.config.yaml) or pass a path, s3://bucket/key or ssm:/parameter/name\n`,
    );
  });

  it("test-connection: fingerprint, login, folders, rename", async () => {
    const run = await bridge(["test-connection", "psp"]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    expect(run.stdout.split("\n")).toEqual([
      `Stream psp: sftp://partner@${env.sftp.host}:${env.sftp.port}`,
      `  host key   ${env.sftp.hostKeyFingerprint}  pinned`,
      `  login      OK as partner (private key from file ${env.keyPath})`,
      "  push.to    /IN: missing (the first push creates it)",
      "  pull.from  /OUT: exists (0 entries), writable",
      "  done dir   /OUT/.done: missing (the first pull creates it)",
      "  rename     OK; posix-rename@openssh.com offered: a push replaces an existing file atomically",
      "OK: stream psp can connect, push, pull",
      "",
    ]);
    // The probe files are gone again, and the push folder was not created by the check.
    expect(await readdir(env.local("/OUT"))).toEqual([]);
    expect(existsSync(env.local("/IN"))).toBe(false);
  });

  it("test-connection shows the server's fingerprint when it is not pinned, sends no credentials, exits 2", async () => {
    const wrong = await writeConfig("wrong-key.yaml", (doc) => {
      doc.streams.psp!.sftp.hostKeys = ["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"];
    });
    env.sftp.resetStats();
    const run = await bridge(["test-connection", "psp", "--config", wrong]);
    expect(run.code).toBe(2);
    expect(run.stdout).toContain(
      `  host key   ${env.sftp.hostKeyFingerprint}  NOT PINNED (pinned: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA)`,
    );
    expect(run.stdout).not.toContain("login");
    expect(run.stderr).toBe(
      `error: sftp connect ${env.sftp.host}:${env.sftp.port}: host key ${env.sftp.hostKeyFingerprint} is not pinned for this stream (pinned: SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA). If the partner rotated its key, confirm the new fingerprint with them out of band and add it to sftp.hostKeys.\n`,
    );
    expect(env.sftp.stats.sessionsOpened + env.sftp.stats.authFailures).toBe(0);
  });

  it("test-connection reports a refused login (exit 2) and unreadable credentials (exit 1)", async () => {
    const otherKey = file("not-authorised");
    await writeFile(otherKey, generateUserKey().privateKey, { mode: 0o600 });
    const refused = await writeConfig("refused.yaml", (doc) => {
      doc.streams.psp!.sftp.credentials = { file: otherKey };
    });
    const missing = await writeConfig("no-credentials.yaml", (doc) => {
      doc.streams.psp!.sftp.credentials = { file: file("no-such-key") };
    });
    const [login, creds] = await Promise.all([
      bridge(["test-connection", "psp", "-c", refused]),
      bridge(["test-connection", "psp", "-c", missing]),
    ]);
    expect(login.code).toBe(2);
    expect(login.stdout).toContain("  login      REFUSED for user partner");
    expect(login.stderr).toMatch(/^error: sftp connect .*: authentication failed for user "partner"/);
    expect(creds).toMatchObject({ code: 1, stdout: "" });
    expect(creds.stderr).toBe(
      `error: stream psp: credentials file "${file("no-such-key")}" not found (ENOENT); create the file or fix streams.psp.sftp.credentials\n`,
    );
    // The same for a transfer: the setup problem is named once, before anything moves.
    const pull = await bridge(["pull", "psp", "-c", missing]);
    expect(pull).toMatchObject({ code: 1, stdout: "" });
    expect(pull.stderr).toBe(creds.stderr);
  });

  it("test-connection: a missing pull folder, or a folder that is a file, is named on stderr (exit 2)", async () => {
    await mkdir(env.local("/tc-shape"), { recursive: true });
    await writeFile(env.local("/tc-shape/a-file"), "not a folder\n");
    const configs = await Promise.all([
      writeConfig("tc-missing.yaml", (doc) => {
        doc.streams.psp!.pull!.from = "/tc-shape/nope";
      }),
      writeConfig("tc-pull-file.yaml", (doc) => {
        doc.streams.psp!.pull!.from = "/tc-shape/a-file";
      }),
      writeConfig("tc-push-file.yaml", (doc) => {
        doc.streams.psp!.push!.to = "/tc-shape/a-file";
        doc.streams.psp!.pull!.from = "/tc-shape";
      }),
    ]);
    const [missing, pullFile, pushFile] = (await Promise.all(
      configs.map((config) => bridge(["test-connection", "psp", "-c", config])),
    )) as [Run, Run, Run];

    expect(missing.code).toBe(2);
    expect(missing.stdout).toContain("  pull.from  /tc-shape/nope: MISSING\n");
    expect(missing.stdout).toContain("  rename     not tested: no writable folder\n");
    expect(missing.stdout).not.toContain("OK: stream");
    expect(missing.stderr).toBe("error: stream psp: pull.from /tc-shape/nope does not exist on the server\n");

    expect(pullFile.code).toBe(2);
    expect(pullFile.stdout).toContain("  pull.from  /tc-shape/a-file: NOT A DIRECTORY\n");
    expect(pullFile.stderr).toBe("error: stream psp: pull.from /tc-shape/a-file is not a directory\n");

    // Unlike a missing push folder (the first push creates it), a file in its place is a problem.
    expect(pushFile.code).toBe(2);
    expect(pushFile.stdout).toContain("  push.to    /tc-shape/a-file: NOT A DIRECTORY\n");
    expect(pushFile.stdout).toContain("  pull.from  /tc-shape: exists (1 entry), writable\n");
    expect(pushFile.stderr).toBe("error: stream psp: push.to /tc-shape/a-file is not a directory\n");
    expect(await readdir(env.local("/tc-shape"))).toEqual(["a-file"]);
  });

  it("test-connection: a folder we cannot write in is named on stderr (exit 2)", async () => {
    const dir = env.local("/tc-readonly");
    await mkdir(dir, { recursive: true });
    const config = await writeConfig("tc-readonly.yaml", (doc) => {
      doc.streams.psp!.push!.to = "/tc-readonly/missing";
      doc.streams.psp!.pull!.from = "/tc-readonly";
    });
    // Root writes through any mode bits, so as root the server refuses the probe's bytes instead.
    const root = process.getuid?.() === 0;
    if (root) env.sftp.faults.failWriteAfterBytes = 0;
    else await chmod(dir, 0o555);
    let run: Run;
    try {
      run = await bridge(["test-connection", "psp", "-c", config]);
    } finally {
      if (root) env.sftp.faults.failWriteAfterBytes = undefined;
      else await chmod(dir, 0o755);
    }
    expect(run.code).toBe(2);
    const probe = "(/tc-readonly/\\.bridge-probe-[0-9a-f]{8}\\.tmp)";
    // The mode bits stop the OPEN; the fault lets the OPEN through and fails the first WRITE.
    const reason = root
      ? `sftp put ${probe}: write \\1: refused past 0 bytes \\(injected fault\\)`
      : `sftp open ${probe}: permission denied`;
    expect(run.stdout).toMatch(
      new RegExp(`\n {2}pull\\.from {2}/tc-readonly: exists \\(0 entries\\), NOT WRITABLE: ${reason}\n`),
    );
    expect(run.stdout).toContain("  rename     not tested: no writable folder\n");
    expect(run.stderr).toBe("error: stream psp: pull.from /tc-readonly is not writable\n");
    expect(await readdir(dir)).toEqual([]);
  });

  it("test-connection: refused rename fails a stream that needs it (exit 2), and only notes it otherwise", async () => {
    await mkdir(env.local("/tc-rename"), { recursive: true });
    const [needs, needsNot] = await Promise.all([
      writeConfig("tc-rename.yaml", (doc) => {
        doc.streams.psp!.push!.to = "/tc-rename";
        doc.streams.psp!.pull!.from = "/tc-rename";
      }),
      writeConfig("tc-rename-unneeded.yaml", (doc) => {
        doc.streams.psp!.push = { from: "outbound/", to: "/tc-rename", atomic: false };
        doc.streams.psp!.pull = { from: "/tc-rename", to: "inbound/", after: "delete" };
      }),
    ]);
    env.sftp.faults.refuseRename = true;
    let runs: Run[];
    try {
      runs = await Promise.all([
        bridge(["test-connection", "psp", "-c", needs]),
        bridge(["test-connection", "psp", "-c", needsNot]),
      ]);
    } finally {
      env.sftp.faults.refuseRename = false;
    }
    const [refused, fine] = runs as [Run, Run];
    const row = (fix: string) =>
      new RegExp(
        `\n {2}rename {5}REFUSED: sftp rename (/tc-rename/\\.bridge-probe-[0-9a-f]{8}\\.part) -> \\1\\.renamed: permission denied${fix}\n`,
      );
    expect(refused.code).toBe(2);
    expect(refused.stdout).toMatch(
      row("; push\\.atomic and pull\\.after: move need it: set push\\.atomic: false / pull\\.after: delete"),
    );
    expect(refused.stderr).toBe(
      "error: stream psp: the server refuses rename, which push.atomic and pull.after: move need\n",
    );
    expect(fine).toMatchObject({ code: 0, stderr: "" });
    expect(fine.stdout).toMatch(row(""));
    expect(fine.stdout).toContain("OK: stream psp can connect, push, pull\n");
    // The probe that could not be renamed was removed again.
    expect(await readdir(env.local("/tc-rename"))).toEqual([]);
  });

  it("test-connection: a closed port or a server that never answers is one line and exit 2", async () => {
    const closed = await closedPort();
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const [refusedConfig, timeoutConfig] = await Promise.all([
        writeConfig("tc-closed.yaml", (doc) => {
          doc.streams.psp!.sftp.port = closed;
        }),
        writeConfig("tc-silent.yaml", (doc) => {
          doc.streams.psp!.sftp.port = (silent.address() as AddressInfo).port;
          doc.streams.psp!.sftp.readyTimeoutMs = 500;
        }),
      ]);
      const [refused, timeout, debug] = await Promise.all([
        bridge(["test-connection", "psp", "-c", refusedConfig]),
        bridge(["test-connection", "psp", "-c", timeoutConfig]),
        bridge(["test-connection", "psp", "-c", refusedConfig, "--debug"]),
      ]);
      expect(refused).toMatchObject({
        code: 2,
        stdout: `Stream psp: sftp://partner@127.0.0.1:${closed}\n`,
        stderr: `error: sftp connect 127.0.0.1:${closed}: connection refused (is the server up, is the port right?)\n`,
      });
      const port = (silent.address() as AddressInfo).port;
      expect(timeout).toMatchObject({
        code: 2,
        stdout: `Stream psp: sftp://partner@127.0.0.1:${port}\n`,
        stderr: `error: sftp connect 127.0.0.1:${port}: no SSH answer within 500 ms (firewall? allow-listing of our address?)\n`,
      });
      expect(sockets.size).toBeGreaterThan(0);
      // The same line first, then the stack and the socket error underneath it.
      expect(debug.code).toBe(2);
      expect(debug.stderr.split("\n")[0]).toBe(refused.stderr.trimEnd());
      expect(debug.stderr).toMatch(/\n\s+at .*scripts\/cli\/test-connection\.ts:\d+/);
      expect(debug.stderr).toMatch(/\ncaused by:\nError: connect ECONNREFUSED /);

      // A transfer reports the connection as the stream's failure, then the one summary line on stderr.
      const pull = await bridge(["pull", "psp", "-c", refusedConfig]);
      expect(pull.code).toBe(2);
      expect(pull.stdout).toBe(
        `  FAILED  sftp://127.0.0.1/OUT: sftp connect 127.0.0.1:${closed}: connect ECONNREFUSED 127.0.0.1:${closed}\n` +
          "psp pull: 0 files moved (0 B), 0 skipped, 1 failed\n",
      );
      expect(pull.stderr).toBe("error: 1 file failed (listed above)\n");
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("wrong argument counts, a stream without the section asked for, a bad --direction, receipts off: one line, exit 1", async () => {
    const split = await writeConfig("split.yaml", (doc) => {
      const psp = doc.streams.psp!;
      doc.streams.outonly = { s3: { bucket: psp.s3.bucket, prefix: "outonly/" }, sftp: psp.sftp, push: psp.push };
      doc.streams.inonly = { s3: { bucket: psp.s3.bucket, prefix: "inonly/" }, sftp: psp.sftp, pull: psp.pull };
      doc.receipts = { enabled: false };
    });
    const cases: [string[], string][] = [
      [["push"], 'push needs a stream name or an s3:// URI; see "bridge push --help"'],
      [["pull"], 'pull needs at least one stream name; see "bridge pull --help"'],
      [["test-connection"], 'test-connection takes one stream name; see "bridge test-connection --help"'],
      [["test-connection", "psp", "psp"], 'test-connection takes one stream name; see "bridge test-connection --help"'],
      [["validate", "a.yaml", "b.yaml"], 'validate takes at most one config; see "bridge validate --help"'],
      [["receipts"], 'receipts takes one stream name; see "bridge receipts --help"'],
      [["receipts", "psp", "inonly"], 'receipts takes one stream name; see "bridge receipts --help"'],
      [["receipts", "psp", "--direction", "up"], '--direction must be push or pull, not "up"'],
      [["receipts", "psp", "--key"], `Option '--key <value>' argument missing; see "bridge receipts --help"`],
      [["push", "inonly", "-c", split], "stream inonly has no push section; nothing to push"],
      [["pull", "outonly", "-c", split], "stream outonly has no pull section; nothing to pull"],
      // Checked before any stream is pulled, so the one with a pull section is not half done.
      [["pull", "inonly", "outonly", "-c", split], "stream outonly has no pull section; nothing to pull"],
      [["push", "ghost", "-c", split], 'unknown stream "ghost"; the config defines: inonly, outonly, psp'],
      [
        ["receipts", "outonly", "-c", split],
        `receipts are turned off in ${split} (receipts.enabled: false); nothing was recorded`,
      ],
    ];
    const runs = await Promise.all(cases.map(([args]) => bridge(args)));
    runs.forEach((run, i) => {
      const [args, message] = cases[i]!;
      expect({ args, ...run }).toEqual({ args, code: 1, stdout: "", stderr: `error: ${message}\n` });
    });
  });

  it("receipts with S3 unreachable is one line and exit 2", async () => {
    const port = await closedPort();
    const run = await bridge(["receipts", "psp"], { AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${port}` });
    expect(run).toMatchObject({ code: 2, stdout: "" });
    expect(run.stderr).toMatch(
      new RegExp(
        `^error: s3 ListBucket s3://bridge-cli/_bridge/receipts/psp/push/: .*ECONNREFUSED 127\\.0\\.0\\.1:${port}\n$`,
      ),
    );
  });

  it("names the streams the config defines when given an unknown one, for every command (exit 1)", async () => {
    const runs = await Promise.all([
      bridge(["test-connection", "ghost"]),
      bridge(["push", "ghost"]),
      bridge(["pull", "ghost"]),
      bridge(["receipts", "ghost"]),
    ]);
    for (const run of runs) {
      expect(run).toMatchObject({ code: 1, stdout: "" });
      expect(run.stderr).toBe('error: unknown stream "ghost"; the config defines: psp\n');
    }
  });

  it("push: a line per file and a summary; duplicates skipped; --force re-sends; a failure exits 2", async () => {
    await env.put("psp/outbound/a.xml", "<a/>");
    await env.put("psp/outbound/sub/b.xml", "<b>bee</b>");
    const first = await bridge(["push", "psp"]);
    expect(first).toMatchObject({ code: 0, stderr: "" });
    expect(first.stdout).toContain("pushing 2 objects\n");
    expect(first.stdout).toContain("  pushed  s3://bridge-cli/psp/outbound/a.xml -> /IN/a.xml  (4 B)\n");
    expect(first.stdout).toContain("  pushed  s3://bridge-cli/psp/outbound/sub/b.xml -> /IN/sub/b.xml  (10 B)\n");
    expect(first.stdout).toContain("psp push: 2 files moved (14 B), 0 skipped, 0 failed\n");
    expect(await readFile(env.local("/IN/sub/b.xml"), "utf8")).toBe("<b>bee</b>");

    const again = await bridge(["push", "s3://bridge-cli/psp/outbound/a.xml"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/ {2}skipped s3:\/\/bridge-cli\/psp\/outbound\/a\.xml: duplicate \(already delivered/);
    expect(again.stdout).toContain("psp push: 0 files moved (0 B), 1 skipped, 0 failed");

    const forced = await bridge(["push", "--force", "s3://bridge-cli/psp/outbound/"]);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain("pushing 2 objects (forced past receipts)");
    expect(forced.stdout).toContain("psp push: 2 files moved (14 B), 0 skipped, 0 failed");

    const unclaimed = await bridge(["push", "s3://bridge-cli/elsewhere/x.xml"]);
    expect(unclaimed).toMatchObject({ code: 1, stdout: "" });
    expect(unclaimed.stderr).toBe(
      "error: no stream pushes s3://bridge-cli/elsewhere/x.xml: its key must be under a stream's s3.prefix + push.from in bucket bridge-cli\n",
    );

    env.sftp.faults.refuseRename = true;
    env.sftp.faults.refusePosixRename = true;
    try {
      await env.put("psp/outbound/c.xml", "<c/>");
      const failed = await bridge(["push", "s3://bridge-cli/psp/outbound/c.xml"]);
      expect(failed.code).toBe(2);
      expect(failed.stdout).toMatch(
        / {2}FAILED {2}s3:\/\/bridge-cli\/psp\/outbound\/c\.xml: sftp rename .*permission denied/,
      );
      expect(failed.stdout).toContain("psp push: 0 files moved (0 B), 0 skipped, 1 failed");
      expect(failed.stderr).toBe("error: 1 file failed (listed above)\n");
    } finally {
      env.sftp.faults.refuseRename = false;
      env.sftp.faults.refusePosixRename = false;
    }
  });

  it("push with a host key that is not pinned fails the files with the fingerprint in the message (exit 2)", async () => {
    const wrong = await writeConfig("wrong-key-push.yaml", (doc) => {
      doc.streams.psp!.sftp.hostKeys = ["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"];
    });
    const run = await bridge(["push", "-c", wrong, "--force", "s3://bridge-cli/psp/outbound/a.xml"]);
    expect(run.code).toBe(2);
    expect(run.stdout).toContain(`host key ${env.sftp.hostKeyFingerprint} is not pinned for this stream`);
  });

  it("pull: a line per file with where the original went, and a summary", async () => {
    await writeFile(env.local("/OUT/settle.csv"), "s,1\n");
    const run = await bridge(["pull", "psp"]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    expect(run.stdout).toBe(
      "  pulled  /OUT/settle.csv -> s3://bridge-cli/psp/inbound/settle.csv  (4 B; original moved to /OUT/.done/settle.csv)\n" +
        "psp pull: 1 file moved (4 B), 0 skipped, 0 failed\n",
    );
    expect((await env.get("psp/inbound/settle.csv"))?.toString()).toBe("s,1\n");
    expect(existsSync(env.local("/OUT/.done/settle.csv"))).toBe(true);
  });

  // Reads the receipts the push and pull tests above left behind.
  it("receipts: what was delivered and when, one file by key, a time window, JSON", async () => {
    const all = await bridge(["receipts", "psp"]);
    expect(all).toMatchObject({ code: 0, stderr: "" });
    const lines = all.stdout.trim().split("\n");
    // a.xml and b.xml pushed by the CLI, both forced again, and the pull; the refused c.xml left none.
    expect(lines.at(-1)).toBe("5 receipts for stream psp");
    expect(lines.filter((l) => l.includes("  push  ")).map((l) => l.split("  ").at(-1))).toEqual([
      "invoke",
      "invoke",
      "force",
      "force",
    ]);
    expect(
      lines.some((l) =>
        l.includes(`  pull  ${env.sftp.host}:/OUT/settle.csv -> s3://bridge-cli/psp/inbound/settle.csv`),
      ),
    ).toBe(true);

    // By S3 key, remote path or relative path: the same file, with its full SHA-256.
    const byKey = await Promise.all(
      ["s3://bridge-cli/psp/outbound/sub/b.xml", "psp/outbound/sub/b.xml", "/IN/sub/b.xml", "sub/b.xml"].map((k) =>
        bridge(["receipts", "psp", "--key", k]),
      ),
    );
    for (const run of byKey) {
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`sha256 ${sha256("<b>bee</b>")}`);
      expect(run.stdout.trim().split("\n").at(-1)).toMatch(/^2 receipts for stream psp for /);
    }

    const [future, json, pulls, badSince] = await Promise.all([
      bridge(["receipts", "psp", "--since", "2999-01-01"]),
      bridge(["receipts", "psp", "--key", "/OUT/settle.csv", "--json"]),
      bridge(["receipts", "psp", "--since", "1h", "--direction", "pull"]),
      bridge(["receipts", "psp", "--since", "last tuesday"]),
    ]);
    expect(future.stdout).toBe("0 receipts for stream psp since 2999-01-01T00:00:00.000Z\n");
    const parsed = JSON.parse(json.stdout) as { sha256: string; direction: string; source: { path: string } }[];
    expect(parsed).toEqual([
      expect.objectContaining({
        direction: "pull",
        sha256: sha256("s,1\n"),
        source: expect.objectContaining({ path: "/OUT/settle.csv" }),
      }),
    ]);
    expect(pulls.stdout.trim().split("\n").at(-1)).toMatch(/^1 receipt for stream psp since /);
    expect(badSince).toMatchObject({ code: 1, stdout: "" });
    expect(badSince.stderr).toBe('error: --since "last tuesday": give an ISO date/time or an age like 24h\n');
  });

  it("shows stack traces only with --debug", async () => {
    const [plain, debug] = await Promise.all([bridge(["pull", "ghost"]), bridge(["pull", "ghost", "--debug"])]);
    expect(plain.stderr).not.toMatch(/\n\s+at /);
    expect(debug.code).toBe(1);
    expect(debug.stderr.split("\n")[0]).toBe('error: unknown stream "ghost"; the config defines: psp');
    // Source-mapped: the trace names the TypeScript file that threw.
    expect(debug.stderr).toMatch(/\n\s+at .*lambda\/bridge\/routing\.ts:\d+/);
  });

  it("pull: a file name the bridge refuses is a summary line of its own, on one line, and the rest still moves", async () => {
    await mkdir(env.local("/ODD"), { recursive: true });
    await writeFile(env.local("/ODD/ok.csv"), "ok\n");
    await writeFile(env.local("/ODD/bad\nname.csv"), "bad\n");
    const config = await writeConfig("odd.config.yaml", (doc) => {
      doc.streams.psp!.pull = { from: "/ODD", to: "odd/", minAgeSeconds: 0, stableCheckMs: 0 };
    });
    const run = await bridge(["pull", "psp", "-c", config]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    const lines = run.stdout.split("\n");
    expect(lines).toContain(
      "  skipped /ODD/bad\\x0aname.csv: unsafe-name (it contains a control character; left on the server, rename it there to pull it)",
    );
    expect(lines).toContain("psp pull: 1 file moved (3 B), 1 skipped, 0 failed");
    expect((await env.get("psp/odd/ok.csv"))?.toString()).toBe("ok\n");
  });
});
