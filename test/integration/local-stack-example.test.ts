import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { startLocalStack, type LocalStack } from "../../scripts/local/start";
import { waitFor } from "../support/wait";

/**
 * `npm start -- --config examples/bridge.config.yaml`: the annotated reference config (several streams, Secrets
 * Manager and SSM credentials, two SFTP users) runs on the local stack as it is, its SFTP sides pointed at the
 * embedded server, so a user can try their own config before any AWS account is involved.
 */
const CONFIG = path.resolve(__dirname, "..", "..", "examples", "bridge.config.yaml");

describe("local stack with examples/bridge.config.yaml", () => {
  let dir: string;
  let stack: LocalStack;
  const lines: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "local-stack-example-"));
    stack = await startLocalStack({ dir, configPath: CONFIG, pullIntervalMs: 0, output: (l) => lines.push(l) });
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves every stream and pushes an object of the first through S3 events to the embedded SFTP server", async () => {
    expect(stack.streams.map((s) => s.name)).toEqual(["psp-merchants", "bank-payroll"]);
    const text = lines.join("\n");
    expect(text).toContain('Stream "psp-merchants"');
    expect(text).toContain('Stream "bank-payroll"');
    const s3 = stack.s3.client();
    try {
      await s3.send(
        new PutObjectCommand({
          Bucket: "acme-payments-sftp",
          Key: "psp-merchants/outbound/2026/settlement.xml",
          Body: "<settlement/>",
        }),
      );
    } finally {
      s3.destroy();
    }
    const delivered = path.join(stack.sftp.root, "IN", "2026", "settlement.xml");
    await waitFor("settlement.xml on the SFTP server", () => existsSync(delivered), 20_000);
    expect(readFileSync(delivered, "utf8")).toBe("<settlement/>");
  });
});
