import { CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { ActionError } from "./errors";

/** Every output of a stack, by OutputKey: how the smoke test and resend find the bucket and function of a deployment. */
export async function stackOutputs(cfn: CloudFormationClient, stackName: string): Promise<Record<string, string>> {
  let stacks;
  try {
    ({ Stacks: stacks } = await cfn.send(new DescribeStacksCommand({ StackName: stackName })));
  } catch (err) {
    const e = err as { name?: string; message?: string };
    throw new ActionError("STACK_NOT_FOUND", `describe stack ${stackName}: ${e.message ?? e.name ?? err}`, {
      cause: err,
    });
  }
  const stack = stacks?.[0];
  if (!stack) throw new ActionError("STACK_NOT_FOUND", `describe stack ${stackName}: no such stack`);
  const outputs: Record<string, string> = {};
  for (const o of stack.Outputs ?? [])
    if (o.OutputKey && o.OutputValue !== undefined) outputs[o.OutputKey] = o.OutputValue;
  return outputs;
}

/** An output the caller cannot do without, with the input that would replace it in the message. */
export function requireOutput(outputs: Record<string, string>, key: string, stackName: string, input: string): string {
  const value = outputs[key];
  if (!value) {
    throw new ActionError(
      "STACK_OUTPUT_MISSING",
      `stack ${stackName} has no output ${key} (it has: ${Object.keys(outputs).join(", ") || "none"}); set the ${input} input instead`,
    );
  }
  return value;
}
