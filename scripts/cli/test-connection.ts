import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { Readable } from "node:stream";
import { Client } from "ssh2";
import {
  BridgeError,
  HostKeyError,
  SftpError,
  connectSftp,
  doneDirOf,
  fingerprint,
  requireStream,
  type CredentialsRef,
  type ResolvedCredentials,
  type SftpSession,
  type SftpTarget,
  type StreamConfig,
  sftpTargetFor,
} from "../../lambda/bridge";
import { FailedError, cliLogger, openConfig, plural, UsageError, type Globals, type Io } from "./shared";

export const testConnectionHelp = `Usage: bridge test-connection <stream> [--config <file>]

Connects to the stream's SFTP server the way the bridge does and reports, one line each:
  host key   the server's fingerprint (SHA256:...), and whether streams.<stream>.sftp.hostKeys pins it; shown even
             when it is not pinned, so you can confirm it with the partner and pin it. Credentials are only sent
             to a pinned server.
  login      whether the credentials are accepted
  push.to / pull.from
             whether each remote folder exists and is writable (a probe file is written and removed)
  rename     whether the server lets us rename (atomic pushes and moving pulled files to the done folder need it),
             and whether it offers posix-rename (atomic replace)
Exit 0 when everything the stream needs works, 2 when something does not, 1 for config problems.`;

const LABEL = 11;
const row = (label: string, text: string) => `  ${label.padEnd(LABEL)}${text}`;

function describeCredentials(ref: CredentialsRef, creds: ResolvedCredentials): string {
  const what = creds.privateKey ? "private key" : "password";
  if ("file" in ref) return `${what} from file ${ref.file}`;
  if ("secretsManager" in ref) return `${what} from secret ${ref.secretsManager}`;
  if ("ssmParameter" in ref) return `${what} from SSM parameter ${ref.ssmParameter}`;
  return `${what} from ${ref.s3Object}`;
}

/**
 * The server's host key fingerprint without authenticating: the verifier records the key and refuses it, so no
 * credentials are ever sent to a server whose key we have not checked.
 */
function probeHostKey(target: SftpTarget): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const client = new Client();
    let seen: string | undefined;
    const done = (err?: Error) => {
      client.end();
      if (seen) resolve(seen);
      else reject(err ?? new Error("the connection closed before the server showed its host key"));
    };
    client.on("error", (err) => done(err));
    client.on("close", () => done());
    client.connect({
      host: target.host,
      port: target.port,
      username: target.username ?? "probe",
      readyTimeout: target.readyTimeoutMs,
      algorithms: target.algorithms as never,
      hostVerifier: (key: Buffer) => {
        seen = fingerprint(key);
        return false;
      },
    });
  }).catch((err: unknown) => {
    const e = err as NodeJS.ErrnoException & { level?: string };
    const where = `${target.host}:${target.port}`;
    const hint =
      e.code === "ECONNREFUSED"
        ? "connection refused (is the server up, is the port right?)"
        : e.code === "ENOTFOUND"
          ? "no such host"
          : e.level === "client-timeout"
            ? `no SSH answer within ${target.readyTimeoutMs} ms (firewall? allow-listing of our address?)`
            : e.message;
    throw new SftpError("SFTP_CONNECT_FAILED", `sftp connect ${where}: ${hint}`, { cause: err });
  });
}

interface DirCheck {
  ok: boolean;
  writable: boolean;
}

async function checkDir(
  session: SftpSession,
  label: string,
  dir: string,
  missingIsOk: string | undefined,
  io: Io,
  problems: string[],
): Promise<DirCheck> {
  const st = await session.stat(dir);
  if (!st) {
    if (missingIsOk) {
      io.out(row(label, `${dir}: missing (${missingIsOk})`));
      return { ok: true, writable: false };
    }
    io.out(row(label, `${dir}: MISSING`));
    problems.push(`${label} ${dir} does not exist on the server`);
    return { ok: false, writable: false };
  }
  if (st.type !== "dir") {
    io.out(row(label, `${dir}: NOT A DIRECTORY`));
    problems.push(`${label} ${dir} is not a directory`);
    return { ok: false, writable: false };
  }
  const entries = await session.list(dir);
  // A dot name: pulls ignore it (pull.ignore ".*"), and partners' pickup jobs usually skip hidden files.
  const probe = posix.join(dir, `.bridge-probe-${randomBytes(4).toString("hex")}.tmp`);
  try {
    await session.write(probe, Readable.from([Buffer.from("bridge test-connection probe\n")]), {
      atomic: false,
      tempSuffix: ".part",
    });
    await session.remove(probe);
    io.out(row(label, `${dir}: exists (${plural(entries.length, "entry", "entries")}), writable`));
    return { ok: true, writable: true };
  } catch (err) {
    io.out(
      row(
        label,
        `${dir}: exists (${plural(entries.length, "entry", "entries")}), NOT WRITABLE: ${(err as Error).message}`,
      ),
    );
    problems.push(`${label} ${dir} is not writable`);
    return { ok: false, writable: false };
  }
}

async function checkRename(session: SftpSession, dir: string, stream: StreamConfig, io: Io, problems: string[]) {
  const needs = [
    ...(stream.push?.atomic ? ["push.atomic"] : []),
    ...(stream.pull?.after === "move" ? ["pull.after: move"] : []),
  ];
  const posixNote = session.supportsPosixRename
    ? "posix-rename@openssh.com offered: a push replaces an existing file atomically"
    : "no posix-rename: replacing an existing file removes it first";
  const from = posix.join(dir, `.bridge-probe-${randomBytes(4).toString("hex")}.part`);
  const to = `${from}.renamed`;
  try {
    await session.write(from, Readable.from([Buffer.from("probe\n")]), { atomic: false, tempSuffix: ".part" });
  } catch {
    io.out(row("rename", `not tested (cannot write in ${dir}); ${posixNote}`));
    return;
  }
  try {
    await session.rename(from, to, false);
    await session.remove(to);
    io.out(row("rename", `OK; ${posixNote}`));
  } catch (err) {
    await session.remove(from).catch(() => undefined);
    const fix = needs.length ? `; ${needs.join(" and ")} need it: set push.atomic: false / pull.after: delete` : "";
    io.out(row("rename", `REFUSED: ${(err as Error).message}${fix}`));
    if (needs.length) problems.push(`the server refuses rename, which ${needs.join(" and ")} need`);
  }
}

export async function testConnection(positionals: string[], globals: Globals, io: Io): Promise<number> {
  if (positionals.length !== 1)
    throw new UsageError('test-connection takes one stream name; see "bridge test-connection --help"');
  const name = positionals[0] as string;
  const opened = await openConfig(globals, io);
  const stream = requireStream(opened.config, name);
  const sftp = stream.sftp;
  const credentials = await opened.runtime.credentials.resolve(sftp.credentials, name);
  const target = sftpTargetFor(name, sftp, credentials);
  const username = sftp.username ?? credentials.username ?? "(no username)";
  io.out(`Stream ${name}: sftp://${username}@${sftp.host}:${sftp.port}`);

  const seen = await probeHostKey(target);
  if (!sftp.hostKeys.includes(seen)) {
    io.out(row("host key", `${seen}  NOT PINNED (pinned: ${sftp.hostKeys.join(", ")})`));
    throw new HostKeyError(sftp.host, sftp.port, seen, sftp.hostKeys);
  }
  io.out(row("host key", `${seen}  pinned`));

  let session: SftpSession;
  try {
    session = await connectSftp(target, cliLogger(io, globals.debug));
  } catch (err) {
    const code = err instanceof BridgeError ? err.code : "";
    io.out(row("login", code === "SFTP_AUTH_FAILED" ? `REFUSED for user ${username}` : "FAILED"));
    throw err;
  }
  const problems: string[] = [];
  try {
    io.out(row("login", `OK as ${username} (${describeCredentials(sftp.credentials, credentials)})`));
    const writable: string[] = [];
    if (stream.push) {
      const r = await checkDir(session, "push.to", stream.push.to, "the first push creates it", io, problems);
      if (r.writable) writable.push(stream.push.to);
    }
    if (stream.pull) {
      const r = await checkDir(session, "pull.from", stream.pull.from, undefined, io, problems);
      if (r.writable) writable.push(stream.pull.from);
      if (r.ok && stream.pull.after === "move") {
        const done = doneDirOf(stream.pull);
        const exists = await session.stat(done);
        io.out(row("done dir", `${done}: ${exists ? "exists" : "missing (the first pull creates it)"}`));
      }
    }
    if (writable.length) await checkRename(session, writable[0] as string, stream, io, problems);
    else io.out(row("rename", "not tested: no writable folder"));
  } finally {
    await session.close();
  }
  if (problems.length) {
    throw new FailedError(`stream ${name}: ${problems.join("; ")}`);
  }
  io.out(`OK: stream ${name} can connect${stream.push ? ", push" : ""}${stream.pull ? ", pull" : ""}`);
  return 0;
}
