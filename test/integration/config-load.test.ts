// loadConfig against real wire protocols: a local file, s3rver (S3 HTTP API) and the local SSM endpoint.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { SSMClient } from "@aws-sdk/client-ssm";
import { loadConfig } from "../../lambda/bridge/config";
import { BridgeError, ConfigError, ConfigNotFoundError } from "../../lambda/bridge/errors";
import { type LocalS3, startLocalS3 } from "../../scripts/local/s3-server";
import { type LocalAws, startLocalAws } from "../support/local-aws";

jest.setTimeout(60_000);

const KEY = "SHA256:pUlCyONl83hPOLjUN/nXCCkNtgc4sAzc+5NMMtG+l/M";
const CONFIG_YAML = `
streams:
  psp:
    s3: { bucket: acme-sftp, prefix: psp/ }
    sftp: { host: sftp.example, credentials: { secretsManager: bridge/psp }, hostKeys: ["${KEY}"] }
    push: { from: outbound/, to: /IN }
`;
const BUCKET = "bridge-config";

let dir: string;
let localS3: LocalS3;
let s3: S3Client;
let aws: LocalAws;
let ssm: SSMClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "config-load-"));
  localS3 = await startLocalS3({ directory: path.join(dir, "s3"), buckets: [BUCKET] });
  s3 = localS3.client();
  aws = await startLocalAws();
  ssm = aws.ssm();
});

afterAll(async () => {
  s3?.destroy();
  ssm?.destroy();
  await localS3?.close();
  await aws?.close();
  await rm(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<BridgeError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BridgeError);
    return err as BridgeError;
  }
  throw new Error("expected a rejection");
}

describe("from a local file", () => {
  it("loads and validates YAML", async () => {
    const file = path.join(dir, "bridge.config.yaml");
    await writeFile(file, CONFIG_YAML);
    const config = await loadConfig(file, {});
    expect(config.streams.psp!.push!.to).toBe("/IN");
  });

  it("loads JSON, with a BOM, through file:", async () => {
    const file = path.join(dir, "bridge.json");
    await writeFile(
      file,
      "\uFEFF" +
        JSON.stringify({
          streams: {
            psp: {
              s3: { bucket: "acme-sftp", prefix: "psp/" },
              sftp: { host: "h", credentials: { ssmParameter: "/p" }, hostKeys: [KEY] },
              pull: { from: "/OUT" },
            },
          },
        }),
    );
    const config = await loadConfig(`file:${file}`);
    expect(config.streams.psp!.pull!.from).toBe("/OUT");
  });

  it("says which file is missing and how to fix it", async () => {
    const err = await rejection(loadConfig(path.join(dir, "missing.yaml")));
    expect(err).toBeInstanceOf(ConfigNotFoundError);
    expect(err.code).toBe("CONFIG_NOT_FOUND");
    expect(err.message).toContain(`no file at ${path.join(dir, "missing.yaml")}`);
    expect(err.message).toMatch(/create it .* or pass a path, s3:\/\/bucket\/key or ssm:/);
  });

  it("reports a directory and an invalid document distinctly", async () => {
    expect((await rejection(loadConfig(`file:${dir}`))).message).toMatch(/is a directory/);
    const file = path.join(dir, "invalid.yaml");
    await writeFile(file, "streams:\n  psp: { s3: { bucket: acme-sftp } }\n");
    const err = await rejection(loadConfig(file));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues.map((i) => i.path)).toEqual(["streams.psp.sftp"]);
    expect(err.message).toContain(`config ${file} has 1 problem(s)`);
  });

  it("applies the caller's file-credentials policy", async () => {
    const file = path.join(dir, "local.yaml");
    await writeFile(file, CONFIG_YAML.replace("{ secretsManager: bridge/psp }", "{ file: keys/psp }"));
    await expect(loadConfig(file, {}, { allowFileCredentials: false })).rejects.toThrow(/credentials\.file/);
    await expect(loadConfig(file, {}, { allowFileCredentials: true })).resolves.toBeDefined();
  });
});

describe("from S3", () => {
  it("loads s3://bucket/key", async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "prod/bridge.config.yaml", Body: CONFIG_YAML }));
    const config = await loadConfig(`s3://${BUCKET}/prod/bridge.config.yaml`, { s3 });
    expect(Object.keys(config.streams)).toEqual(["psp"]);
  });

  it("says which object is missing", async () => {
    const err = await rejection(loadConfig(`s3://${BUCKET}/nope.yaml`, { s3 }));
    expect(err).toBeInstanceOf(ConfigNotFoundError);
    expect(err.message).toBe(
      `config s3://${BUCKET}/nope.yaml: no object nope.yaml in bucket ${BUCKET}; upload the config there or point the bridge at its real location`,
    );
  });

  it("says which bucket is missing", async () => {
    const err = await rejection(loadConfig("s3://no-such-bucket/bridge.yaml", { s3 }));
    expect(err).toBeInstanceOf(ConfigNotFoundError);
    expect(err.message).toMatch(/bucket no-such-bucket does not exist/);
  });

  it("needs an S3 client", async () => {
    await expect(loadConfig(`s3://${BUCKET}/x.yaml`, {})).rejects.toThrow(/needs an S3 client/);
  });
});

describe("from SSM", () => {
  it("loads /name and ssm:name, asking for decryption", async () => {
    aws.parameters.set("/bridge/config", { value: CONFIG_YAML, type: "SecureString" });
    const before = aws.callsTo("AmazonSSM.GetParameter").length;
    const config = await loadConfig("/bridge/config", { ssm });
    expect(config.streams.psp!.sftp.host).toBe("sftp.example");
    await expect(loadConfig("ssm:/bridge/config", { ssm })).resolves.toEqual(config);
    const calls = aws.callsTo("AmazonSSM.GetParameter").slice(before);
    expect(calls.map((c) => c.body)).toEqual([
      { Name: "/bridge/config", WithDecryption: true },
      { Name: "/bridge/config", WithDecryption: true },
    ]);
  });

  it("says which parameter is missing and how to create it", async () => {
    const err = await rejection(loadConfig("ssm:/bridge/missing", { ssm }));
    expect(err).toBeInstanceOf(ConfigNotFoundError);
    expect(err.message).toMatch(/^config ssm:\/bridge\/missing: SSM parameter \/bridge\/missing does not exist/);
    expect(err.message).toContain("aws ssm put-parameter --name /bridge/missing");
  });

  it("reports an unreachable endpoint as retryable, not as missing", async () => {
    const { SSMClient: Client } = await import("@aws-sdk/client-ssm");
    const dead = new Client({
      endpoint: "http://127.0.0.1:9",
      region: "us-east-1",
      maxAttempts: 1,
      credentials: { accessKeyId: "a", secretAccessKey: "b" },
    });
    try {
      const err = await rejection(loadConfig("/bridge/config", { ssm: dead }));
      expect(err).not.toBeInstanceOf(ConfigNotFoundError);
      expect(err.code).toBe("CONFIG_NOT_FOUND");
      expect(err.retryable).toBe(true);
      expect(err.message).toMatch(/could not be read/);
    } finally {
      dead.destroy();
    }
  });
});
