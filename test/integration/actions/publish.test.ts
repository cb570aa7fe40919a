import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { objectUrlFor, publish, type PublishOptions } from "../../../actions/publish/src/publish";
import { silentLogger } from "../../../lambda/bridge/logger";
import { startLocalS3, type LocalS3 } from "../../../scripts/local/s3-server";
import { runAction } from "./run-action";

// Each test starts Node processes (about 0.2 s each alone); a loaded machine running every suite needs headroom.
jest.setTimeout(60_000);

const BUCKET = "deploy-artifacts";
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

let s3server: LocalS3;
let s3: S3Client;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "publish-test-"));
  s3server = await startLocalS3({ directory: join(work, "s3"), buckets: [BUCKET] });
  s3 = s3server.client();
});

afterAll(async () => {
  s3?.destroy();
  await s3server?.close();
  rmSync(work, { recursive: true, force: true });
});

let n = 0;
/** A fresh build output per test: a zip and two templates with content unique to the test. */
function artifacts(zip = `zip bytes ${++n}`) {
  const dir = join(work, `build-${n}`);
  mkdirSync(join(dir, "templates"), { recursive: true });
  const files = {
    zip: join(dir, "bridge.zip"),
    bridge: join(dir, "templates", "bridge.yaml"),
    sftp: join(dir, "templates", "sftp-server.yaml"),
  };
  writeFileSync(files.zip, zip);
  writeFileSync(files.bridge, `Resources: {} # bridge ${n}\n`);
  writeFileSync(files.sftp, `Resources: {} # sftp ${n}\n`);
  return files;
}

function options(files: ReturnType<typeof artifacts>, extra: Partial<PublishOptions> = {}): PublishOptions {
  return {
    bucket: BUCKET,
    prefix: "bridge/",
    zipPath: files.zip,
    templatePaths: [files.bridge, files.sftp],
    objectUrl: objectUrlFor({
      bucket: BUCKET,
      region: "us-east-1",
      dnsSuffix: "amazonaws.com",
      endpoint: s3server.endpoint,
      forcePathStyle: true,
    }),
    ...extra,
  };
}

async function read(key: string): Promise<{ body: string; lastModified?: Date; metadata?: Record<string, string> }> {
  const out = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return { body: await out.Body!.transformToString(), lastModified: out.LastModified, metadata: out.Metadata };
}

describe("publish against s3rver", () => {
  it("uploads the zip and templates under content-addressed keys on the first run", async () => {
    const files = artifacts();
    const result = await publish(s3, options(files), silentLogger);

    const zipSha = sha(`zip bytes ${n}`);
    expect(result.lambda).toMatchObject({ key: `bridge/lambda/${zipSha}.zip`, sha256: zipSha, uploaded: "new" });
    const bridgeSha = sha(`Resources: {} # bridge ${n}\n`);
    expect(result.templates.map((t) => t.key)).toEqual([
      `bridge/templates/${bridgeSha}/bridge.yaml`,
      `bridge/templates/${sha(`Resources: {} # sftp ${n}\n`)}/sftp-server.yaml`,
    ]);
    expect(result.templates[0]!.url).toBe(`${s3server.endpoint}/${BUCKET}/bridge/templates/${bridgeSha}/bridge.yaml`);
    // What is stored is the file, with its hash in metadata for the next run's comparison.
    const stored = await read(result.lambda.key);
    expect(stored.body).toBe(`zip bytes ${n}`);
    expect(stored.metadata).toEqual({ sha256: zipSha });
    // The URL is one a client can fetch the template from.
    const fetched = await fetch(result.templates[0]!.url);
    expect(await fetched.text()).toBe(`Resources: {} # bridge ${n}\n`);
  });

  it("skips every upload when the same build is published again", async () => {
    const files = artifacts();
    const first = await publish(s3, options(files), silentLogger);
    const before = await read(first.lambda.key);
    await new Promise((r) => setTimeout(r, 1100)); // s3rver's LastModified has 1 s resolution

    const again = await publish(s3, options(files), silentLogger);

    expect([again.lambda, ...again.templates].map((o) => o.uploaded)).toEqual([undefined, undefined, undefined]);
    expect(again.lambda.key).toBe(first.lambda.key);
    expect((await read(first.lambda.key)).lastModified).toEqual(before.lastModified);
  });

  it("publishes changed content under a new key and leaves the old one in place", async () => {
    const v1 = artifacts("release one");
    const first = await publish(s3, options(v1), silentLogger);
    const v2 = artifacts("release two");
    writeFileSync(v2.bridge, (await read(first.templates[0]!.key)).body); // template unchanged, zip changed

    const second = await publish(s3, options(v2), silentLogger);

    expect(second.lambda.key).not.toBe(first.lambda.key);
    expect(second.lambda.uploaded).toBe("new");
    expect(second.templates[0]!.key).toBe(first.templates[0]!.key);
    expect(second.templates[0]!.uploaded).toBeUndefined();
    expect((await read(first.lambda.key)).body).toBe("release one");
    expect((await read(second.lambda.key)).body).toBe("release two");
  });

  it("replaces an object whose stored content does not match its key", async () => {
    const files = artifacts("the real build");
    const key = `bridge/lambda/${sha("the real build")}.zip`;
    await s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "corrupted", Metadata: { sha256: sha("corrupted") } }),
    );

    const result = await publish(s3, options(files), silentLogger);

    expect(result.lambda.uploaded).toBe("checksum-mismatch");
    expect((await read(key)).body).toBe("the real build");
  });

  it("does not take a planted object with forged metadata and the right size for the artefact", async () => {
    // Same length as the real build, and metadata claiming the real build's SHA-256: only the bytes tell them apart.
    const files = artifacts("the real build");
    const key = `bridge/lambda/${sha("the real build")}.zip`;
    await s3.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: key,
        Body: "the evil build",
        Metadata: { sha256: sha("the real build") },
      }),
    );

    const result = await publish(s3, options(files), silentLogger);

    expect(result.lambda.uploaded).toBe("checksum-mismatch");
    expect((await read(key)).body).toBe("the real build");
  });

  it("writes a new key only where none is: a writer racing it is found out, not overwritten unseen", async () => {
    const files = artifacts("raced build");
    const key = `bridge/lambda/${sha("raced build")}.zip`;
    const puts: Array<{ key: string; ifNoneMatch?: string; ifMatch?: string }> = [];
    // The racer lands its object between publish's look and its write.
    let planted = false;
    const racing = {
      send: async (command: { input: Record<string, unknown>; constructor: { name: string } }) => {
        if (command.constructor.name === "PutObjectCommand") {
          const input = command.input as { Key: string; IfNoneMatch?: string; IfMatch?: string };
          puts.push({ key: input.Key, ifNoneMatch: input.IfNoneMatch, ifMatch: input.IfMatch });
          if (input.Key === key && !planted) {
            planted = true;
            await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: "racer's bytes" }));
          }
        }
        return s3.send(command as never);
      },
    } as unknown as S3Client;

    const result = await publish(racing, options(files), silentLogger);

    expect(puts.filter((p) => p.key === key)).toEqual([
      { key, ifNoneMatch: "*", ifMatch: undefined },
      { key, ifNoneMatch: undefined, ifMatch: expect.stringMatching(/^"?[0-9a-f]+"?$/) as unknown as string },
    ]);
    expect(result.lambda.uploaded).toBe("checksum-mismatch");
    expect((await read(key)).body).toBe("raced build");
  });

  it("refuses a zip that is not the one the build step reported, before uploading anything", async () => {
    const files = artifacts("tampered");
    await expect(
      publish(s3, options(files, { expectedZipSha256: sha("original") }), silentLogger),
    ).rejects.toMatchObject({
      code: "ZIP_CHECKSUM_MISMATCH",
    });
    const head = await s3
      .send(new HeadObjectCommand({ Bucket: BUCKET, Key: `bridge/lambda/${sha("tampered")}.zip` }))
      .catch((e: unknown) => e);
    expect((head as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(404);
  });
});

describe("publish as the runner runs it (node actions/publish/dist/index.js)", () => {
  const env = () => ({
    AWS_ACCESS_KEY_ID: s3server.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3server.credentials.secretAccessKey,
    AWS_REGION: s3server.region,
  });

  it("publishes, sets outputs and a summary, then skips the same build on a second run", async () => {
    const files = artifacts("process build");
    const inputs = {
      bucket: BUCKET,
      "zip-path": files.zip,
      "zip-sha256": sha("process build"),
      templates: `${files.bridge}\n${files.sftp}`,
      "endpoint-url": s3server.endpoint,
      "force-path-style": "true",
      "checksum-calculation": "when-required",
    };

    const first = await runAction("publish", inputs, env());
    expect(first.errors).toEqual([]);
    expect(first.code).toBe(0);
    const bridgeSha = sha(`Resources: {} # bridge ${n}\n`);
    expect(first.outputs).toMatchObject({
      "lambda-key": `lambda/${sha("process build")}.zip`,
      "lambda-sha256": sha("process build"),
      "template-key": `templates/${bridgeSha}/bridge.yaml`,
      "template-url": `${s3server.endpoint}/${BUCKET}/templates/${bridgeSha}/bridge.yaml`,
      uploaded: "3",
      skipped: "0",
    });
    expect(JSON.parse(first.outputs.templates!)).toHaveLength(2);
    expect(first.summary).toContain("### Published to `deploy-artifacts`");
    expect(first.summary).toContain("uploaded (new)");
    // The credentials the step could see are masked for the rest of the job.
    expect(first.stdout).toContain(`::add-mask::${s3server.credentials.secretAccessKey}`);

    const second = await runAction("publish", inputs, env());
    expect(second.code).toBe(0);
    expect(second.outputs).toMatchObject({ uploaded: "0", skipped: "3", "lambda-key": first.outputs["lambda-key"] });
    expect(second.summary).toContain("already there");
  });

  it("names the store the SDK wrote to when the endpoint comes from AWS_ENDPOINT_URL_S3, not AWS", async () => {
    const files = artifacts("endpoint from the environment");
    const run = await runAction(
      "publish",
      {
        bucket: BUCKET,
        "zip-path": files.zip,
        "zip-sha256": sha("endpoint from the environment"),
        templates: files.bridge,
        "checksum-calculation": "when-required",
      },
      { ...env(), AWS_ENDPOINT_URL_S3: s3server.endpoint },
    );
    expect(run.errors).toEqual([]);
    // An IP address cannot carry the bucket as a subdomain: path style, as the SDK itself addressed it.
    expect(run.outputs["template-url"]).toBe(`${s3server.endpoint}/${BUCKET}/${run.outputs["template-key"]}`);
    const template = await fetch(run.outputs["template-url"]!);
    expect(template.status).toBe(200);
  });

  it("fails with every invalid input named, and uploads nothing", async () => {
    const run = await runAction(
      "publish",
      { bucket: "Not_A_Bucket", "zip-path": "", "force-path-style": "sometimes", prefix: "../up" },
      { AWS_REGION: "us-east-1" },
    );
    expect(run.code).toBe(1);
    expect(run.errors).toHaveLength(1);
    expect(run.errors[0]!.split("\n")).toEqual([
      "4 invalid input(s):",
      '  bucket: "Not_A_Bucket" is not an S3 bucket name',
      "  zip-path: is required: the Lambda zip, e.g. the zip-path output of ./actions/build-lambda",
      '  prefix: "../up" must be relative, without empty, "." or ".." segments',
      '  force-path-style: "sometimes" is not a boolean; use true or false',
    ]);
  });
});
