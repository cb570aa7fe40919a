import type { Inputs } from "./inputs";

const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

/**
 * The region for the SDK clients: the `aws-region` input, else what aws-actions/configure-aws-credentials exported.
 * Checked here because the SDK's own "Region is missing" names neither the input nor the step that should set it.
 */
export function readRegion(inputs: Inputs, env: NodeJS.ProcessEnv): string {
  const given = inputs.matching("aws-region", REGION, "an AWS region name such as eu-west-1");
  if (given) return given;
  const fromEnv = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  if (fromEnv) return fromEnv;
  inputs.fail("aws-region", "is required when AWS_REGION is not set (aws-actions/configure-aws-credentials sets it)");
  return "";
}

/** Optional endpoint override (an S3-compatible store, a local test server); must be an http(s) URL. */
export function readEndpoint(inputs: Inputs, name = "endpoint-url"): string | undefined {
  const value = inputs.optional(name);
  if (value === undefined) return undefined;
  try {
    const url = new URL(value);
    if (url.protocol === "http:" || url.protocol === "https:") return value.replace(/\/+$/, "");
  } catch {
    // reported below
  }
  inputs.fail(name, `${JSON.stringify(value)} is not an http(s) URL`);
  return undefined;
}

/** The DNS suffix of the partition a region belongs to, for URLs CloudFormation accepts as TemplateURL. */
export function partitionDnsSuffix(region: string): string {
  if (region.startsWith("cn-")) return "amazonaws.com.cn";
  if (region.startsWith("eusc-")) return "amazonaws.eu";
  return "amazonaws.com";
}
