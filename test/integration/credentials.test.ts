// The credential resolver against real wire protocols: Secrets Manager and SSM via the local JSON 1.1 endpoint, S3 via
// s3rver, plus local files. No SDK mocks: serialisation, error parsing and the resolver's handling are all exercised.
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { inspect } from "node:util";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { SSMClient } from "@aws-sdk/client-ssm";
import { validateConfig } from "../../lambda/bridge/config";
import type { CredentialsRef } from "../../lambda/bridge/config/schema";
import {
  type CredentialResolver,
  createCredentialResolver,
  parseCredentialContent,
} from "../../lambda/bridge/credentials";
import { BridgeError, CredentialsError } from "../../lambda/bridge/errors";
import { silentLogger } from "../../lambda/bridge/logger";
import { StreamSession } from "../../lambda/bridge/session";
import { connectSftp } from "../../lambda/bridge/sftp";
import { type LocalS3, startLocalS3 } from "../../scripts/local/s3-server";
import { type EmbeddedSftpServer, generateUserKey, startSftpServer } from "../../scripts/local/sftp-server";
import { type LocalAws, startLocalAws } from "../support/local-aws";

jest.setTimeout(60_000);

const BUCKET = "bridge-keys";
const PASSWORD = "correct-horse-battery-staple-7f3a";
const PASSPHRASE = "key-passphrase-91c2";
const PRIVATE_KEY = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();
/** The key the embedded SFTP server below accepts for "partner". */
const USER_KEY = generateUserKey();
/** Every secret value used below; none may ever appear in an error. */
const SECRETS = [
  PASSWORD,
  PASSPHRASE,
  PRIVATE_KEY.split("\n")[1]!,
  USER_KEY.privateKey.split("\n")[1]!,
  "hunter2x",
  "only-a-username-secret",
  "not json but a password",
];

let dir: string;
let localS3: LocalS3;
let s3: S3Client;
let aws: LocalAws;
let secretsManager: SecretsManagerClient;
let ssm: SSMClient;
const errors: unknown[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "credentials-"));
  localS3 = await startLocalS3({ directory: path.join(dir, "s3"), buckets: [BUCKET] });
  s3 = localS3.client();
  aws = await startLocalAws();
  secretsManager = aws.secretsManager();
  ssm = aws.ssm();
});

afterAll(async () => {
  s3?.destroy();
  secretsManager?.destroy();
  ssm?.destroy();
  await localS3?.close();
  await aws?.close();
  await rm(dir, { recursive: true, force: true });
});

function resolver(extra: Parameters<typeof createCredentialResolver>[0] = {}): CredentialResolver {
  return createCredentialResolver({ secretsManager, ssm, s3, ...extra });
}

/** The rejection, kept for the final "no secret in any error" check. */
async function failure(p: Promise<unknown>): Promise<CredentialsError> {
  try {
    await p;
  } catch (err) {
    errors.push(err);
    expect(err).toBeInstanceOf(CredentialsError);
    return err as CredentialsError;
  }
  throw new Error("expected a rejection");
}

describe("Secrets Manager", () => {
  it("resolves a JSON secret with a private key and passphrase", async () => {
    aws.secrets.set(
      "bridge/psp",
      JSON.stringify({ username: "acme", privateKey: PRIVATE_KEY, passphrase: PASSPHRASE, note: "x" }),
    );
    const creds = await resolver().resolve({ secretsManager: "bridge/psp" }, "psp");
    expect(creds).toEqual({ username: "acme", privateKey: PRIVATE_KEY, passphrase: PASSPHRASE });
    expect(aws.callsTo("secretsmanager.GetSecretValue").at(-1)!.body).toEqual({ SecretId: "bridge/psp" });
  });

  it("resolves a bare password, and a key stored as SecretBinary", async () => {
    aws.secrets.set("bridge/plain", `${PASSWORD}\n`);
    expect(await resolver().resolve({ secretsManager: "bridge/plain" }, "psp")).toEqual({ password: PASSWORD });
    aws.secrets.set("bridge/binary", Buffer.from(PRIVATE_KEY));
    expect(await resolver().resolve({ secretsManager: "bridge/binary" }, "psp")).toEqual({ privateKey: PRIVATE_KEY });
  });

  it("names the missing secret and the stream, and says what to do", async () => {
    const err = await failure(resolver().resolve({ secretsManager: "bridge/missing" }, "psp"));
    expect(err.code).toBe("CREDENTIALS_NOT_FOUND");
    expect(err.message).toBe(
      'stream psp: credentials secret "bridge/missing" not found (ResourceNotFoundException); create the secret in this account and region or fix streams.psp.sftp.credentials',
    );
    expect(err.context).toEqual({ stream: "psp", credentials: "secretsManager", reference: "bridge/missing" });
    expect(err.retryable).toBe(false);
  });
});

describe("SSM Parameter Store", () => {
  it("decrypts a SecureString password", async () => {
    aws.parameters.set("/bridge/bank/password", { value: PASSWORD, type: "SecureString" });
    const creds = await resolver().resolve({ ssmParameter: "/bridge/bank/password" }, "bank");
    expect(creds).toEqual({ password: PASSWORD });
    expect(aws.callsTo("AmazonSSM.GetParameter").at(-1)!.body).toEqual({
      Name: "/bridge/bank/password",
      WithDecryption: true,
    });
  });

  it("names the missing parameter", async () => {
    const err = await failure(resolver().resolve({ ssmParameter: "/bridge/nope" }, "bank"));
    expect(err.code).toBe("CREDENTIALS_NOT_FOUND");
    expect(err.message).toMatch(
      /^stream bank: credentials SSM parameter "\/bridge\/nope" not found \(ParameterNotFound\); create the parameter/,
    );
    expect(err.message).toContain("fix streams.bank.sftp.credentials");
  });
});

describe("S3 objects", () => {
  it("reads a key object (SSE-KMS objects are decrypted by S3 itself, so the same call serves them)", async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "psp/id_ed25519", Body: PRIVATE_KEY }));
    const creds = await resolver().resolve({ s3Object: `s3://${BUCKET}/psp/id_ed25519` }, "psp");
    expect(creds).toEqual({ privateKey: PRIVATE_KEY });
  });

  it("reads a JSON object", async () => {
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: "bank.json",
        Body: JSON.stringify({ username: "u", password: PASSWORD }),
      }),
    );
    expect(await resolver().resolve({ s3Object: `s3://${BUCKET}/bank.json` }, "bank")).toEqual({
      username: "u",
      password: PASSWORD,
    });
  });

  it("names the missing object", async () => {
    const err = await failure(resolver().resolve({ s3Object: `s3://${BUCKET}/none.pem` }, "psp"));
    expect(err.code).toBe("CREDENTIALS_NOT_FOUND");
    expect(err.message).toMatch(
      /credentials S3 object "s3:\/\/bridge-keys\/none.pem" not found \(NoSuchKey\); upload the object/,
    );
  });
});

describe("local files", () => {
  it("reads a file when allowed, relative to baseDir", async () => {
    await writeFile(path.join(dir, "demo_user"), PRIVATE_KEY);
    const creds = await resolver({ allowFiles: true, baseDir: dir }).resolve({ file: "demo_user" }, "demo");
    expect(creds).toEqual({ privateKey: PRIVATE_KEY });
  });

  it("refuses files unless allowed", async () => {
    const err = await failure(resolver().resolve({ file: path.join(dir, "demo_user") }, "demo"));
    expect(err.code).toBe("CREDENTIALS_INVALID");
    expect(err.message).toMatch(/local credential files are not allowed here/);
  });

  it("names the missing file", async () => {
    const err = await failure(resolver({ allowFiles: true, baseDir: dir }).resolve({ file: "nope" }, "demo"));
    expect(err.code).toBe("CREDENTIALS_NOT_FOUND");
    expect(err.message).toMatch(/stream demo: credentials file "nope" not found \(ENOENT\); create the file/);
  });
});

describe("content rules", () => {
  it.each<[string, object]>([
    [PASSWORD, { password: PASSWORD }],
    [`${PASSWORD}\r\n`, { password: PASSWORD }],
    [` ${PASSWORD} `, { password: ` ${PASSWORD} ` }],
    [PRIVATE_KEY, { privateKey: PRIVATE_KEY }],
    [
      "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
      { privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n" },
    ],
    [
      "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none",
      { privateKey: "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n" },
    ],
    [JSON.stringify({ password: PASSWORD }), { password: PASSWORD }],
    [
      JSON.stringify({ privateKey: "-----BEGIN KEY-----\\nAB\\n-----END KEY-----" }),
      { privateKey: "-----BEGIN KEY-----\nAB\n-----END KEY-----" },
    ],
  ])("%j", (raw, expected) => {
    expect(parseCredentialContent(raw, "here")).toEqual(expected);
  });

  it.each([
    ["", /the value is empty/],
    ["\n", /the value is empty/],
    [
      JSON.stringify({ username: "only-a-username-secret" }),
      /neither "password" nor "privateKey" \(fields present: username\)/,
    ],
    [JSON.stringify({ password: 42 }), /JSON field "password" must be a string/],
    ['{"password": hunter2x}', /starts with "\{" but is not valid JSON/],
    ["{not json but a password", /starts with "\{" but is not valid JSON/],
    [
      JSON.stringify({ username: "acme", privateKey: PRIVATE_KEY }).slice(0, -1),
      /starts with "\{" but is not valid JSON/,
    ],
    [`key:\n${PRIVATE_KEY}`, /looks like a private key but is not a well-formed PEM\/OpenSSH\/PuTTY key/],
    [PRIVATE_KEY.slice(0, 60), /looks like a private key but is not a well-formed PEM\/OpenSSH\/PuTTY key/],
    [JSON.stringify({ password: PRIVATE_KEY }), /JSON field "password" holds a private key/],
    ["[1]", undefined],
  ])("refuses %j", async (raw, why) => {
    aws.secrets.set("bridge/bad", raw);
    if (why === undefined) {
      // Not an object, not a key: it is a password, however odd.
      expect(await resolver().resolve({ secretsManager: "bridge/bad" }, "psp")).toEqual({ password: "[1]" });
      return;
    }
    const err = await failure(resolver().resolve({ secretsManager: "bridge/bad" }, "psp"));
    expect(err.code).toBe("CREDENTIALS_INVALID");
    expect(err.message).toMatch(/^stream psp: credentials secret "bridge\/bad": /);
    expect(err.message).toMatch(why);
    // The JSON parser's SyntaxError quotes the input, so it must not travel as the cause.
    expect(err.cause).toBeUndefined();
  });
});

describe("against the embedded SFTP server: a broken credential never reaches the partner", () => {
  let sftp: EmbeddedSftpServer;
  /**
   * The server's own log: one "connected from" line per SSH connection, one line per rejected password. "partner" has
   * no password, so every password attempt is a rejected one and shows up here.
   */
  let serverLog: string[] = [];
  const connections = () => serverLog.filter((l) => /: connected from /.test(l)).length;
  const passwordAttempts = () => serverLog.filter((l) => /: password authentication failed/.test(l)).length;

  beforeAll(async () => {
    sftp = await startSftpServer({
      root: path.join(dir, "sftp"),
      users: [{ username: "partner", publicKey: USER_KEY.publicKey }],
      logger: (line) => serverLog.push(line),
    });
  });
  beforeEach(() => {
    serverLog = [];
  });
  afterAll(async () => {
    await sftp?.close();
  });

  /** The engine's own way in: resolve the stream's credentials, then connect with them. */
  async function open(secret: string): Promise<void> {
    aws.secrets.set("bridge/partner", secret);
    const config = validateConfig(
      {
        streams: {
          psp: {
            s3: { bucket: BUCKET, prefix: "psp/" },
            sftp: {
              host: sftp.host,
              port: sftp.port,
              // Set here, not only in the secret, so that a secret taken for a bare password would still connect.
              username: "partner",
              credentials: { secretsManager: "bridge/partner" },
              hostKeys: [sftp.hostKeyFingerprint],
            },
            push: { from: "outbound/", to: "/IN" },
          },
        },
      },
      "test",
    );
    const session = new StreamSession("psp", config.streams.psp!, resolver(), connectSftp, silentLogger);
    try {
      await session.get();
    } finally {
      await session.close();
    }
  }

  async function openFailure(secret: string): Promise<BridgeError> {
    try {
      await open(secret);
    } catch (err) {
      errors.push(err);
      expect(err).toBeInstanceOf(BridgeError);
      return err as BridgeError;
    }
    throw new Error("expected the connection to fail");
  }

  it("connects with a well-formed secret (so the counters below do see connections)", async () => {
    await open(JSON.stringify({ username: "partner", privateKey: USER_KEY.privateKey }));
    expect(connections()).toBe(1);
    expect(passwordAttempts()).toBe(0);
  });

  it.each([
    [
      "a JSON secret missing its closing brace",
      JSON.stringify({ username: "partner", privateKey: USER_KEY.privateKey }).slice(0, -1),
    ],
    ["a key with leading junk", `partner key:\n${USER_KEY.privateKey}`],
    ["a truncated key", USER_KEY.privateKey.slice(0, 120)],
  ])("%s fails as CREDENTIALS_INVALID before any connection", async (_name, secret) => {
    const err = await openFailure(secret);
    expect(err.code).toBe("CREDENTIALS_INVALID");
    expect(err.message).toMatch(/^stream psp: credentials secret "bridge\/partner": /);
    expect(connections()).toBe(0);
    expect(passwordAttempts()).toBe(0);
  });

  it("an empty JSON password is not sent as a password attempt", async () => {
    await open(JSON.stringify({ username: "partner", privateKey: USER_KEY.privateKey, password: "" }));
    expect(connections()).toBe(1);
    expect(passwordAttempts()).toBe(0);
  });
});

describe("caching", () => {
  const ref: CredentialsRef = { secretsManager: "bridge/cached" };
  const calls = () =>
    aws.callsTo("secretsmanager.GetSecretValue").filter((c) => c.body.SecretId === "bridge/cached").length;

  it("reuses a value within the TTL and refetches after it", async () => {
    aws.secrets.set("bridge/cached", PASSWORD);
    let now = 1_000_000;
    const r = resolver({ ttlMs: 60_000, clock: () => now });
    const start = calls();
    await r.resolve(ref, "a");
    now += 59_999;
    expect(await r.resolve(ref, "b")).toEqual({ password: PASSWORD }); // another stream, same reference: shared
    expect(calls() - start).toBe(1);
    aws.secrets.set("bridge/cached", "rotated-password");
    now += 1;
    expect(await r.resolve(ref, "a")).toEqual({ password: "rotated-password" });
    expect(calls() - start).toBe(2);
  });

  it("shares one request between concurrent resolves, and clear() forgets", async () => {
    aws.secrets.set("bridge/cached", PASSWORD);
    const r = resolver();
    const start = calls();
    await Promise.all([r.resolve(ref, "a"), r.resolve(ref, "a"), r.resolve(ref, "b")]);
    expect(calls() - start).toBe(1);
    r.clear();
    await r.resolve(ref, "a");
    expect(calls() - start).toBe(2);
  });

  it("does not cache failures: a secret created after a failed run is found by the next", async () => {
    const r = resolver({ ttlMs: 60_000 });
    await failure(r.resolve({ secretsManager: "bridge/late" }, "psp"));
    aws.secrets.set("bridge/late", PASSWORD);
    expect(await r.resolve({ secretsManager: "bridge/late" }, "psp")).toEqual({ password: PASSWORD });
  });

  it("with ttlMs 0 fetches every time", async () => {
    aws.secrets.set("bridge/cached", PASSWORD);
    const r = resolver({ ttlMs: 0 });
    const start = calls();
    await r.resolve(ref, "a");
    await r.resolve(ref, "a");
    expect(calls() - start).toBe(2);
  });

  it("hands out copies: a caller changing its object does not change the cache", async () => {
    aws.secrets.set("bridge/cached", PASSWORD);
    const r = resolver();
    const first = await r.resolve(ref, "a");
    first.password = "tampered";
    expect(await r.resolve(ref, "a")).toEqual({ password: PASSWORD });
  });
});

describe("secrets never leak", () => {
  it("resolved credentials are redacted in JSON and console output", async () => {
    aws.secrets.set("bridge/leak", JSON.stringify({ username: "acme", password: PASSWORD, passphrase: PASSPHRASE }));
    const creds = await resolver().resolve({ secretsManager: "bridge/leak" }, "psp");
    expect(creds.password).toBe(PASSWORD); // usable
    expect(JSON.stringify({ creds })).toBe('{"creds":{"username":"acme","password":"***","passphrase":"***"}}');
    expect(inspect(creds)).not.toContain(PASSWORD);
    expect(`${inspect({ creds })}`).not.toContain(PASSPHRASE);
  });

  it("no error raised in this file contains a secret value", () => {
    expect(errors.length).toBeGreaterThanOrEqual(10);
    for (const err of errors) {
      const e = err as CredentialsError;
      const text = [
        e.message,
        JSON.stringify(e),
        inspect(e, { depth: 10 }),
        String(e.cause),
        inspect(e.cause, { depth: 10 }),
      ].join("\n");
      for (const secret of SECRETS) expect(text).not.toContain(secret);
    }
  });
});
