// The `bridge` command: operators' access to the same engine and config the Lambda uses, from a terminal or CI.
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { receiptsCommand, receiptsHelp } from "./receipts";
import { EXIT, UsageError, describeFailure, exitCodeOf, type Globals, type Io } from "./shared";
import { testConnection, testConnectionHelp } from "./test-connection";
import { pullCommand, pullHelp, pushCommand, pushHelp } from "./transfer";
import { validate, validateHelp } from "./validate";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | undefined>;

const GLOBAL_OPTIONS: Options = {
  config: { type: "string", short: "c" },
  debug: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

interface Command {
  summary: string;
  help: string;
  options: Options;
  run(positionals: string[], values: Values, globals: Globals, io: Io): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  validate: {
    summary: "check a config; list every problem by its path",
    help: validateHelp,
    options: { lambda: { type: "boolean" } },
    run: (p, v, g, io) => validate(p, { lambda: v.lambda === true }, g, io),
  },
  "test-connection": {
    summary: "connect to a stream's SFTP server: host key, login, folders, rename",
    help: testConnectionHelp,
    options: {},
    run: (p, _v, g, io) => testConnection(p, g, io),
  },
  push: {
    summary: "push S3 objects (a stream's or given s3:// URIs) to SFTP now",
    help: pushHelp,
    options: { force: { type: "boolean" } },
    run: (p, v, g, io) => pushCommand(p, { force: v.force === true }, g, io),
  },
  pull: {
    summary: "pull a stream's SFTP folder into S3 now",
    help: pullHelp,
    options: {},
    run: (p, _v, g, io) => pullCommand(p, g, io),
  },
  receipts: {
    summary: "list what a stream delivered, and when",
    help: receiptsHelp,
    options: {
      key: { type: "string" },
      since: { type: "string" },
      direction: { type: "string" },
      json: { type: "boolean" },
    },
    run: (p, v, g, io) =>
      receiptsCommand(
        p,
        {
          key: v.key as string | undefined,
          since: v.since as string | undefined,
          direction: v.direction as string | undefined,
          json: v.json === true,
        },
        g,
        io,
      ),
  },
};

const GLOBAL_HELP = `Global options (any command):
  -c, --config <loc>  the stream config: a file, s3://bucket/key or ssm:/parameter
                      (default: $BRIDGE_CONFIG, else ./bridge.config.yaml)
  --debug             engine logs as JSON on stderr, and stack traces with errors
  -h, --help          help for the command`;

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    "Usage: bridge <command> [options]",
    "",
    "Moves files between Amazon S3 and partners' SFTP servers with the same engine and config as the Lambda.",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    GLOBAL_HELP,
    "",
    "Exit codes: 0 success; 1 usage or config problem (bad option, invalid config, unknown stream, unreadable",
    "credentials); 2 a transfer or connection failed (files failed, host key not pinned, login refused).",
    "AWS access uses the standard variables: AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_S3, ...",
    'Run "bridge <command> --help" for a command\'s options.',
  ].join("\n");
}

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

/** The command word and the arguments around it; global options may come before it. */
function splitCommand(argv: string[]): { name?: string; rest: string[] } {
  const { tokens } = parseArgs({
    args: argv,
    options: GLOBAL_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const first = tokens.find((t) => t.kind === "positional");
  if (!first) return { rest: argv };
  return { name: first.value, rest: argv.filter((_, i) => i !== first.index) };
}

function parse(command: string, spec: Command, args: string[]) {
  try {
    return parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...spec.options }, allowPositionals: true, strict: true });
  } catch (err) {
    // Node's wording goes on about positionals that start with "-"; the first sentence is the useful part.
    const first = (err as Error).message.split(/\.\s/)[0]?.replace(/\.$/, "");
    throw new UsageError(`${first}; see "bridge ${command} --help"`);
  }
}

export async function main(argv: string[], io: Io): Promise<number> {
  const debug = argv.includes("--debug");
  try {
    if (argv.length === 1 && argv[0] === "--version") {
      io.out(version());
      return EXIT.ok;
    }
    let { name, rest } = splitCommand(argv);
    if (name === "help") {
      // `bridge help push` is `bridge push --help`.
      ({ name, rest } = splitCommand(rest));
      rest.push("--help");
    }
    if (name === undefined) {
      if (rest.includes("--help") || rest.includes("-h")) {
        io.out(usage());
        return EXIT.ok;
      }
      io.err(usage());
      return EXIT.usage;
    }
    const spec = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!spec) throw new UsageError(`unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(", ")}`);
    const { values, positionals } = parse(name, spec, rest);
    if (values.help) {
      io.out(`${spec.help}\n\n${GLOBAL_HELP}`);
      return EXIT.ok;
    }
    const globals: Globals = { config: values.config as string | undefined, debug: values.debug === true };
    return await spec.run(positionals, values as Values, globals, io);
  } catch (err) {
    for (const line of describeFailure(err, debug)) io.err(line);
    return exitCodeOf(err);
  }
}
