import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import { publish, type PublishOptions } from "../../../actions/publish/src/publish";
import { silentLogger } from "../../../lambda/bridge/logger";

/**
 * What AWS S3 answers and s3rver does not: the object's own SHA-256 checksum on a HEAD with checksum mode on, which S3
 * computed and checked when the object was uploaded. The integration tests cover the download-and-hash path.
 */
const s3Mock = mockClient(S3Client);
const s3 = new S3Client({ region: "eu-west-1", credentials: { accessKeyId: "a", secretAccessKey: "b" } });
const sha = (s: string) => createHash("sha256").update(s).digest();

let dir: string;
let options: PublishOptions;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "publish-checksum-"));
  writeFileSync(join(dir, "bridge.zip"), "the real build");
  writeFileSync(join(dir, "bridge.yaml"), "Resources: {}\n");
  options = {
    bucket: "deploy",
    prefix: "",
    zipPath: join(dir, "bridge.zip"),
    templatePaths: [join(dir, "bridge.yaml")],
    objectUrl: (key) => `https://deploy.s3.eu-west-1.amazonaws.com/${key}`,
  };
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => s3Mock.reset());

const zipKey = `lambda/${sha("the real build").toString("hex")}.zip`;

function stored(body: string, extra: Record<string, unknown> = {}) {
  return {
    ContentLength: Buffer.byteLength(body),
    ETag: '"etag-1"',
    ChecksumSHA256: sha(body).toString("base64"),
    ChecksumType: "FULL_OBJECT" as const,
    ...extra,
  };
}

describe("publish against S3's own checksums", () => {
  it("keeps an object whose S3 checksum is the file's, without downloading it", async () => {
    s3Mock.on(HeadObjectCommand).resolves(stored("the real build", { Metadata: { sha256: "forged" } }));

    const result = await publish(s3, { ...options, templatePaths: [] }, silentLogger);

    expect(result.lambda.uploaded).toBeUndefined();
    expect(s3Mock.commandCalls(GetObjectCommand)).toHaveLength(0);
    expect(s3Mock.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it("replaces an object whose metadata claims the file's SHA-256 but whose S3 checksum does not", async () => {
    s3Mock
      .on(HeadObjectCommand, { Key: zipKey })
      .resolvesOnce(stored("the evil build", { Metadata: { sha256: sha("the real build").toString("hex") } }))
      .resolves(stored("the real build", { ETag: '"etag-2"' }));
    s3Mock.on(PutObjectCommand).resolves({ VersionId: "v2" });

    const result = await publish(s3, { ...options, templatePaths: [] }, silentLogger);

    expect(result.lambda).toMatchObject({ uploaded: "checksum-mismatch", versionId: "v2" });
    const put = s3Mock.commandCalls(PutObjectCommand)[0]!.args[0].input;
    expect(put).toMatchObject({
      Key: zipKey,
      IfMatch: '"etag-1"',
      ChecksumSHA256: sha("the real build").toString("base64"),
    });
  });

  it("writes a missing key only if it is still missing, and checks what S3 then holds", async () => {
    const missing = new S3ServiceException({ name: "NotFound", $fault: "client", $metadata: { httpStatusCode: 404 } });
    s3Mock
      .on(HeadObjectCommand)
      .rejectsOnce(missing)
      .resolvesOnce(stored("the real build"))
      .rejectsOnce(missing)
      .resolves(stored("Resources: {}\n"));
    s3Mock.on(PutObjectCommand).resolves({ VersionId: "v1" });

    const result = await publish(s3, options, silentLogger);

    expect(result.lambda).toMatchObject({ uploaded: "new", versionId: "v1" });
    expect(s3Mock.commandCalls(PutObjectCommand).map((c) => c.args[0].input.IfNoneMatch)).toEqual(["*", "*"]);
  });

  it("does not trust a multipart object's checksum of checksums, and looks at its bytes instead", async () => {
    s3Mock
      .on(HeadObjectCommand)
      .resolves(stored("the real build", { ChecksumSHA256: "c29tZXRoaW5n-2", ChecksumType: "COMPOSITE" }));
    s3Mock.on(GetObjectCommand).callsFake(() => ({
      Body: { transformToByteArray: async () => new Uint8Array(Buffer.from("the real build")) },
    }));

    const result = await publish(s3, { ...options, templatePaths: [] }, silentLogger);

    expect(result.lambda.uploaded).toBeUndefined();
    expect(s3Mock.commandCalls(GetObjectCommand)[0]!.args[0].input).toMatchObject({ Key: zipKey, IfMatch: '"etag-1"' });
  });
});
