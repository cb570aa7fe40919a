import { SSMClient } from "@aws-sdk/client-ssm";
import { loadConfig } from "../../lambda/bridge";
import { UsageError, cliRuntime, configLocation, plural, type Globals, type Io } from "./shared";

export const validateHelp = `Usage: bridge validate [<config>] [--lambda]

Checks a stream config and lists every problem at once, each with its path in the document (exit 1), or prints
"OK: N streams". <config> is a file, s3://bucket/key or an SSM parameter name (ssm:/name); without it, --config,
BRIDGE_CONFIG or ./bridge.config.yaml.

Options:
  --lambda   check as the Lambda function would: credentials given as local files are refused`;

export async function validate(
  positionals: string[],
  options: { lambda?: boolean },
  globals: Globals,
  io: Io,
): Promise<number> {
  // An "OK" naming only the first of several configs would read as if all of them had been checked.
  if (positionals.length > 1) throw new UsageError('validate takes at most one config; see "bridge validate --help"');
  const location = positionals[0] ?? configLocation(globals, io);
  // The same loader and validator the Lambda runs, so "OK" here means the function will accept it too. SDK clients
  // resolve their region on first use, so a local file needs no AWS setup at all.
  const config = await loadConfig(
    location,
    { s3: cliRuntime(location).s3, ssm: new SSMClient({}) },
    { allowFileCredentials: !options.lambda },
  );
  const names = Object.keys(config.streams);
  io.out(`OK: ${plural(names.length, "stream")}${names.length ? ` (${names.join(", ")})` : ""} in ${location}`);
  return 0;
}
