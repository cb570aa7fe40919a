// The plain-words text the local stack prints at start: what each stream moves where, the endpoints and credentials,
// and commands to try that move something.
import path from "node:path";
import { matchesPatterns } from "../../lambda/bridge";
import type { LocalStack } from "./stack";

function shortPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith("..") ? rel : p;
}

export function instructions(stack: LocalStack): string {
  const { s3, sftp, lambda } = stack;
  const onDisk = (remote: string) => shortPath(path.join(sftp.root, remote));
  const lines: string[] = [];
  const say = (text = "") => lines.push(text);
  say(
    `s3-sftp-bridge local stack is running: state in ${shortPath(stack.dir)}, config ${shortPath(stack.sourceConfigPath)}`,
  );
  say(
    `(the handler reads ${shortPath(stack.configPath)}: the same streams, their SFTP side pointed at the embedded server).`,
  );
  for (const s of stack.streams) {
    say();
    say(`Stream "${s.name}"`);
    if (s.push) {
      say(`  S3 -> SFTP: put a file${matching(s.push.patterns)} under s3://${s.bucket}/${s.push.source}`);
      say(`              it arrives on the SFTP server in ${s.push.to} (on disk: ${onDisk(s.push.to)})`);
    }
    if (s.pull) {
      const files = s.pull.minAgeSeconds ? `files at least ${s.pull.minAgeSeconds} s old` : "new files";
      const when = s.pull.everyMs > 0 ? `every ${s.pull.everyMs / 1000} s` : "on each pull (no schedule: invoke it)";
      const after = {
        move: `the originals moved to ${s.pull.doneDir}`,
        delete: "the originals deleted",
        leave: "the originals left in place (taken again only when they change)",
      }[s.pull.after];
      say(
        `  SFTP -> S3: put a file${matching(s.pull.patterns)} in the SFTP folder ${s.pull.from} (on disk: ${onDisk(s.pull.from)})`,
      );
      say(`              ${when}, ${files} are copied to s3://${s.bucket}/${s.pull.dest} and ${after}`);
    }
  }
  const first = stack.streams[0];
  say();
  say(
    `Embedded S3     ${s3.endpoint}  (access key ${s3.credentials.accessKeyId}, secret ${s3.credentials.secretAccessKey}, region ${s3.region}, path-style)`,
  );
  say(`Embedded SFTP   ${sftp.host} port ${sftp.port}  host key ${sftp.hostKeyFingerprint}`);
  for (const user of new Map(stack.streams.map((s) => [s.username, s.keyPath]))) {
    say(`                user ${user[0]}, private key ${shortPath(user[1])}`);
  }
  say(`Lambda Invoke   ${lambda.url}  function "${lambda.functionName}" (set AWS_ENDPOINT_URL_LAMBDA to it)`);
  say(`Lambda logs     ${shortPath(path.join(stack.dir, "logs", "lambda.log"))}`);
  say();
  say(
    `Try it (". ${shortPath(path.join(stack.dir, "env"))}" sets the endpoint and credential variables in your shell):`,
  );
  if (first?.push) {
    const name = exampleName(first.push.patterns);
    say(`  echo hello > ${name} && aws s3 cp ${name} s3://${first.bucket}/${first.push.source}${name}`);
  }
  if (first) {
    const name = first.pull ? exampleName(first.pull.patterns) : "";
    const put = first.pull ? ` <<< 'put ${name} ${first.pull.from}/'` : "";
    say(
      `  sftp -P ${sftp.port} -i ${shortPath(first.keyPath)} -o UserKnownHostsFile=${shortPath(stack.knownHostsPath)} ${first.username}@${sftp.host}${put}`,
    );
  }
  say(
    `  aws lambda invoke --function-name ${lambda.functionName} --cli-binary-format raw-in-base64-out --payload '{"streams":["${first?.name ?? "demo"}"]}' /dev/stdout`,
  );
  if (first) say(`  npx bridge test-connection ${first.name}     npx bridge receipts ${first.name}`);
  say();
  say("Each file moved is listed below. Ctrl-C stops everything.");
  return lines.join("\n");
}

function matching(patterns: string[]): string {
  return patterns.length === 1 && patterns[0] === "**" ? "" : ` matching ${patterns.join(" or ")}`;
}

/** A file name the stream's patterns accept, so the example commands move something. */
export function exampleName(patterns: string[]): string {
  for (const candidate of ["hello.txt", ...patterns.map((p) => p.replace(/\*+/g, "hello").replace(/\?/g, "x"))]) {
    if (!candidate.includes("/") && matchesPatterns(candidate, patterns)) return candidate;
  }
  return "hello.txt";
}
