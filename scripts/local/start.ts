// `npm start`: the whole bridge on this machine (see stack.ts). Runs until Ctrl-C (SIGINT) or SIGTERM, then stops
// every server and child process it started before exiting.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { BridgeError } from "../../lambda/bridge";
import { startLocalStack, type LocalStack } from "./stack";

export { startLocalStack, localPullInterval, reportOf, type LocalStack, type LocalStackOptions } from "./stack";

const USAGE = `Usage: npm start -- [options]

Runs an embedded S3 (s3rver), an embedded SFTP server and the bridge's Lambda handler on this machine.

Options:
  --config <file>       stream config to run (default examples/local.config.yaml)
  --dir <dir>           state directory: S3 data, SFTP files, keys, logs (default .bridge)
  --s3-port <port>      embedded S3 port (default 4569; 0 = any free port)
  --sftp-port <port>    embedded SFTP port (default 2222; 0 = any free port)
  --lambda-port <port>  Lambda Invoke endpoint port (default 4570; 0 = any free port)
  --pull-every <secs>   pull every stream this often instead of its schedule (0 = never)
  --quiet               print nothing but errors
  -h, --help            this text`;

function port(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`${flag} must be a port number (0-65535), got "${value}"`);
  return n;
}

/** A previous stack still running on the same state directory would share s3rver's files: refuse. */
function assertNotRunning(dir: string): void {
  const file = path.join(dir, "stack.json");
  if (!existsSync(file)) return;
  let pid: number | undefined;
  try {
    pid = (JSON.parse(readFileSync(file, "utf8")) as { pid?: number }).pid;
  } catch {
    return;
  }
  if (!pid || pid === process.pid) return;
  try {
    process.kill(pid, 0);
  } catch {
    return; // Left behind by a stack that was killed: nothing runs there any more.
  }
  throw new Error(`a local stack (pid ${pid}) is already running with ${dir}; stop it first (Ctrl-C in its terminal)`);
}

export async function main(argv: string[]): Promise<void> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: "string" },
        dir: { type: "string" },
        "s3-port": { type: "string" },
        "sftp-port": { type: "string" },
        "lambda-port": { type: "string" },
        "pull-every": { type: "string" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (err) {
    console.error(`error: ${(err as Error).message}\n\n${USAGE}`);
    process.exitCode = 1;
    return;
  }
  if (args.help) {
    console.log(USAGE);
    return;
  }

  let stack: LocalStack;
  try {
    const dir = path.resolve(args.dir ?? ".bridge");
    assertNotRunning(dir);
    const pullEvery = args["pull-every"] === undefined ? undefined : Number(args["pull-every"]);
    if (pullEvery !== undefined && !(pullEvery >= 0))
      throw new Error(`--pull-every must be seconds, got "${args["pull-every"]}"`);
    stack = await startLocalStack({
      dir,
      configPath: args.config ?? "examples/local.config.yaml",
      s3Port: port(args["s3-port"], 4569, "--s3-port"),
      sftpPort: port(args["sftp-port"], 2222, "--sftp-port"),
      lambdaPort: port(args["lambda-port"], 4570, "--lambda-port"),
      pullIntervalMs: pullEvery === undefined ? undefined : pullEvery * 1000,
      quiet: args.quiet,
    });
  } catch (err) {
    // A config with problems lists each of them; anything else is one line.
    console.error(`error: ${err instanceof BridgeError ? err.message : (err as Error).message}`);
    process.exitCode = 1;
    return;
  }

  let signals = 0;
  const shutdown = (signal: string) => {
    signals += 1;
    if (signals > 1) {
      console.error(`${signal} again: exiting without waiting for running transfers`);
      process.exit(130);
    }
    if (!args.quiet) console.log(`\n${signal}: stopping (waiting for running transfers; ${signal} again to force)`);
    stack.stop().then(
      () => {
        if (!args.quiet) console.log("stopped");
        process.exit(0);
      },
      (err: unknown) => {
        console.error(`error while stopping: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

if (require.main === module) void main(process.argv.slice(2));
