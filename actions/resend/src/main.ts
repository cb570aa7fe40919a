import * as core from "@actions/core";
import { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { readRegion } from "../../lib/aws";
import { readDeploymentInputs, resolveDeployment } from "../../lib/deployment";
import { errorMessage } from "../../lib/errors";
import { Inputs } from "../../lib/inputs";
import { invokeBridge } from "../../lib/lambda";
import { maskCredentials } from "../../lib/log";
import { resendLines, resendOutcome, resendSummary, type ResendEvent } from "./resend";

const STREAM = /^[A-Za-z0-9][\w.-]*$/;

export async function run(): Promise<void> {
  let lambda: LambdaClient | undefined;
  try {
    maskCredentials((v) => core.setSecret(v), process.env);
    const inputs = new Inputs((name) => core.getInput(name));
    const deploymentInputs = readDeploymentInputs(inputs, { needsConfig: false });
    const stream = inputs.matching("stream", STREAM, "a stream name", { required: true }) ?? "";
    const direction = inputs.choice("direction", ["push", "pull"] as const, "push");
    if (!inputs.optional("direction"))
      inputs.fail("direction", "is required: push (S3 -> SFTP again) or pull (SFTP -> S3 again)");
    const keys = inputs.list("keys");
    const prefix = inputs.optional("prefix");
    const since = isoTime(inputs, "since");
    const until = isoTime(inputs, "until");
    if (since && until && Date.parse(since) > Date.parse(until)) inputs.fail("until", `is before since (${since})`);
    if (!keys.length && prefix === undefined && !since && !until) {
      inputs.fail("keys", "choose what to resend: keys, a prefix, or a since/until window (never everything)");
    }
    const dryRun = inputs.boolean("dry-run", true);
    const region = readRegion(inputs, process.env);
    inputs.finish();

    const deployment = await resolveDeployment(deploymentInputs, () => new CloudFormationClient({ region }));
    lambda = new LambdaClient({ region });
    const event: ResendEvent = {
      action: "resend",
      stream,
      direction,
      ...(keys.length ? { keys } : {}),
      ...(prefix !== undefined ? { prefix } : {}),
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
      dryRun,
    };
    core.info(
      `${dryRun ? "dry run: " : ""}resend ${direction} for stream ${stream} through ${deployment.functionName}`,
    );
    const report = await invokeBridge(lambda, deployment.functionName, event);
    for (const line of resendLines(report, event)) core.info(line);
    const outcome = resendOutcome(report, event);
    core.setOutput("report", JSON.stringify(report));
    core.setOutput("planned", outcome.planned);
    core.setOutput("resent", outcome.resent);
    core.setOutput("skipped", outcome.skipped);
    core.setOutput("failed", outcome.failed);
    if (process.env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(resendSummary(report, event), true).write();
    if (outcome.error) core.setFailed(outcome.error);
    else if (outcome.warning) core.warning(outcome.warning);
  } catch (err) {
    core.setFailed(`resend: ${errorMessage(err)}`);
  } finally {
    lambda?.destroy();
  }
}

function isoTime(inputs: Inputs, name: string): string | undefined {
  const value = inputs.optional(name);
  if (value === undefined) return undefined;
  // Dates only, or date-times with a zone: a time without one would mean the runner's zone, which nobody intends.
  if (
    !/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(value) ||
    Number.isNaN(Date.parse(value))
  ) {
    inputs.fail(
      name,
      `${JSON.stringify(value)} is not an ISO date (2026-11-30) or date-time with a zone (2026-11-30T08:00:00Z)`,
    );
    return undefined;
  }
  return value;
}
