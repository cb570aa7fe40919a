/**
 * The client half of bench-native.ts. It is bundled by esbuild exactly as the Lambda bundle treats ssh2 (native
 * addons external), so dropping sshcrypto.node next to the bundle switches ssh2 to its binding without changing a byte
 * of JavaScript. Reads one JSON argument, prints one JSON line.
 */
import { readFileSync } from "node:fs";
import { Client, type ConnectConfig, type SFTPWrapper } from "ssh2";

interface BenchArgs {
  host: string;
  port: number;
  username: string;
  privateKeyPath: string;
  cipher: string;
  localFile: string;
  remoteFile: string;
  runs: number;
}

// Not in ssh2's typings: whether the native crypto binding loaded (decides the cipher implementations).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { bindingAvailable } = require("ssh2/lib/protocol/crypto.js") as { bindingAvailable: boolean };

function connect(args: BenchArgs): Promise<{ client: Client; sftp: SFTPWrapper; cipher: string }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let cipher = "?";
    client.on("handshake", (negotiated) => (cipher = negotiated.cs.cipher));
    client.on("error", reject);
    client.on("ready", () => {
      // docs/field-notes.md: without TCP_NODELAY ssh2 is ten times slower on loopback; the engine sets it too.
      client.setNoDelay(true);
      client.sftp((err, sftp) => (err ? reject(err) : resolve({ client, sftp, cipher })));
    });
    const config: ConnectConfig = {
      host: args.host,
      port: args.port,
      username: args.username,
      privateKey: readFileSync(args.privateKeyPath),
      algorithms: { cipher: [args.cipher as never] },
      readyTimeout: 20_000,
    };
    client.connect(config);
  });
}

/** Wall-clock and CPU seconds (this process, user + system) of one transfer. CPU time barely moves when other work
 * shares the machine, so it is the steadier measure of what the crypto costs; Lambda's CPU share is fixed by memory. */
const timed = async (fn: () => Promise<void>): Promise<{ wall: number; cpu: number }> => {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(cpu);
  return { wall: Number(process.hrtime.bigint() - start) / 1e9, cpu: (used.user + used.system) / 1e6 };
};

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? "{}") as BenchArgs;
  const { client, sftp, cipher } = await connect(args);
  const bytes = readFileSync(args.localFile).length;
  const put: { wall: number; cpu: number }[] = [];
  const get: { wall: number; cpu: number }[] = [];
  for (let i = 0; i < args.runs; i++) {
    put.push(
      await timed(
        () => new Promise((res, rej) => sftp.fastPut(args.localFile, args.remoteFile, (e) => (e ? rej(e) : res()))),
      ),
    );
    get.push(
      await timed(
        () =>
          new Promise((res, rej) =>
            sftp.fastGet(args.remoteFile, `${args.localFile}.back`, (e) => (e ? rej(e) : res())),
          ),
      ),
    );
  }
  client.end();
  // MB per second of wall clock, and MB per CPU-second.
  const rates = (xs: { wall: number; cpu: number }[]) =>
    xs.map((x) => ({ wall: bytes / 1e6 / x.wall, cpu: bytes / 1e6 / x.cpu }));
  process.stdout.write(`${JSON.stringify({ bindingAvailable, cipher, bytes, put: rates(put), get: rates(get) })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-client: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
