import { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import type { Inputs } from "./inputs";
import { requireOutput, stackOutputs } from "./stack";

/**
 * Which deployed bridge an action talks to: a stack name (its outputs name the function, the bucket and the config
 * location, as templates/bridge.yaml declares them), or the same three given directly, which also win over the
 * stack's. Local and non-CloudFormation deployments give them directly.
 */
export interface DeploymentInputs {
  stackName?: string;
  functionName?: string;
  bucket?: string;
  config?: string;
}

export interface Deployment {
  functionName: string;
  /** Undefined when neither the input nor the stack names it; the stream's own bucket is used then. */
  bucket?: string;
  configLocation?: string;
}

const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;
// A function name, a partial or full ARN, optionally with a version or alias.
const FUNCTION = /^(arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:)?[\w-]{1,64}(:(\$LATEST|[\w-]+))?$/;

export function readDeploymentInputs(inputs: Inputs, options: { needsConfig: boolean }): DeploymentInputs {
  const d: DeploymentInputs = {
    stackName: inputs.matching("stack-name", STACK_NAME, "a CloudFormation stack name"),
    functionName: inputs.matching("function-name", FUNCTION, "a Lambda function name or ARN"),
    bucket: inputs.optional("bucket"),
    config: inputs.optional("config"),
  };
  if (!d.stackName && !d.functionName) {
    inputs.fail(
      "stack-name",
      "give stack-name (the bridge stack) or function-name (and bucket/config) to find the bridge",
    );
  }
  if (options.needsConfig && !d.stackName && !d.config) {
    inputs.fail(
      "config",
      "is required without stack-name: the bridge's config location (file, s3://bucket/key or SSM name)",
    );
  }
  return d;
}

export async function resolveDeployment(d: DeploymentInputs, cfn: () => CloudFormationClient): Promise<Deployment> {
  if (!d.stackName) return { functionName: d.functionName!, bucket: d.bucket, configLocation: d.config };
  const client = cfn();
  try {
    const outputs = await stackOutputs(client, d.stackName);
    return {
      functionName: d.functionName ?? requireOutput(outputs, "FunctionName", d.stackName, "function-name"),
      bucket: d.bucket ?? outputs.BucketName,
      configLocation: d.config ?? outputs.ConfigLocation,
    };
  } finally {
    client.destroy();
  }
}
