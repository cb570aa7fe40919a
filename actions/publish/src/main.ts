import * as core from "@actions/core";
import { S3Client } from "@aws-sdk/client-s3";
import { partitionDnsSuffix, readEndpoint, readRegion } from "../../lib/aws";
import { errorMessage } from "../../lib/errors";
import { Inputs } from "../../lib/inputs";
import { actionsLogger, maskCredentials } from "../../lib/log";
import { code, table } from "../../lib/summary";
import { normalisePrefix, objectUrlFor, sdkEndpoint, publish, type PublishResult } from "./publish";

// Bucket naming rules (3-63 chars, lowercase, digits, dots, hyphens); an S3-compatible store may be laxer, never stricter.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export async function run(): Promise<void> {
  try {
    maskCredentials((v) => core.setSecret(v), process.env);
    const inputs = new Inputs((name) => core.getInput(name));
    const bucket = inputs.matching("bucket", BUCKET, "an S3 bucket name", { required: true }) ?? "";
    const zipPath = inputs.required("zip-path", "the Lambda zip, e.g. the zip-path output of ./actions/build-lambda");
    const zipSha256 = inputs.matching("zip-sha256", /^[0-9a-fA-F]{64}$/, "a hex SHA-256 (64 hex digits)");
    const templatePaths = inputs.list("templates");
    if (templatePaths.length === 0) inputs.fail("templates", "lists no template file");
    const prefix = normalisePrefix(inputs.optional("prefix") ?? "");
    if (typeof prefix !== "string") inputs.fail("prefix", prefix.error);
    const region = readRegion(inputs, process.env);
    // The SDK takes AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when no endpoint is given; the template URLs must name the
    // store the objects went to, so they are built from the same endpoint.
    const endpoint = readEndpoint(inputs) ?? sdkEndpoint(process.env);
    const forcePathStyle = inputs.boolean("force-path-style", false);
    const checksums = inputs.choice(
      "checksum-calculation",
      ["when-supported", "when-required"] as const,
      "when-supported",
    );
    inputs.finish();

    const s3 = new S3Client({
      region,
      endpoint,
      forcePathStyle,
      requestChecksumCalculation: checksums === "when-required" ? "WHEN_REQUIRED" : "WHEN_SUPPORTED",
    });
    const objectUrl = objectUrlFor({ bucket, region, dnsSuffix: partitionDnsSuffix(region), endpoint, forcePathStyle });
    const result = await publish(
      s3,
      { bucket, prefix: prefix as string, zipPath, expectedZipSha256: zipSha256, templatePaths, objectUrl },
      actionsLogger(core),
    );

    const [first] = result.templates;
    core.setOutput("lambda-key", result.lambda.key);
    core.setOutput("lambda-sha256", result.lambda.sha256);
    core.setOutput("lambda-version-id", result.lambda.versionId ?? "");
    core.setOutput("template-key", first?.key ?? "");
    core.setOutput("template-url", first?.url ?? "");
    core.setOutput(
      "templates",
      JSON.stringify(result.templates.map(({ file, key, url, sha256 }) => ({ file, key, url, sha256 }))),
    );
    const all = [result.lambda, ...result.templates];
    core.setOutput("uploaded", all.filter((o) => o.uploaded).length);
    core.setOutput("skipped", all.filter((o) => !o.uploaded).length);
    if (process.env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(summaryMarkdown(bucket, result), true).write();
  } catch (err) {
    core.setFailed(errorMessage(err));
  }
}

export function summaryMarkdown(bucket: string, result: PublishResult): string {
  const rows = [result.lambda, ...result.templates].map((o) => [
    code(o.file),
    code(o.key),
    code(o.sha256.slice(0, 12)),
    o.size,
    o.uploaded ? `uploaded (${o.uploaded})` : "already there",
  ]);
  return `### Published to ${code(bucket)}\n\n${table(["File", "Key", "SHA-256", "Bytes", "Result"], rows, { raw: true })}\n`;
}
