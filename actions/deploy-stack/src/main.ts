import { readFile, stat } from "node:fs/promises";
import * as core from "@actions/core";
import * as github from "@actions/github";
import { CloudFormationClient, type Capability } from "@aws-sdk/client-cloudformation";
import { S3Client } from "@aws-sdk/client-s3";
import { readRegion } from "../../lib/aws";
import { errorMessage } from "../../lib/errors";
import { Inputs } from "../../lib/inputs";
import { actionsLogger, maskCredentials } from "../../lib/log";
import { runUrl } from "../../lib/summary";
import { commentMarker, upsertComment, type CommentsApi } from "./comment";
import { deliverConfig, PLACEHOLDER_NAME, prepareConfig, type ConfigDelivery, type ConfigDraft } from "./config";
import { changeSetName, runStackOperation, type StackSpec, type TemplateSource } from "./deploy";
import { loadEnvironmentFile, PARAMETER_KEY, TAG_KEY } from "./parameters";
import { reportMarkdown, type ReportInput } from "./report";
import { DeployError, type Mode, type StackResult } from "./types";

const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/;
const SNS_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$/;
const CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"];
// CloudFormation's limit for TemplateBody; bigger templates must come from S3.
const MAX_TEMPLATE_BODY = 51_200;

export async function run(): Promise<void> {
  // Set once the inputs are valid: from then on a failure is also reported in the summary and the PR comment.
  let report: (Pick<ReportInput, "stackName" | "mode"> & { comment: boolean; token: string }) | undefined;
  let result: StackResult | undefined;
  try {
    const token = core.getInput("github-token");
    maskCredentials((v) => core.setSecret(v), process.env, [token]);
    const inputs = new Inputs((name) => core.getInput(name));
    const stackName =
      inputs.matching("stack-name", STACK_NAME, "a stack name (a letter, then letters, digits, hyphens; max 128)", {
        required: true,
      }) ?? "";
    const mode = inputs.choice<Mode>("mode", ["deploy", "plan", "delete"], "deploy");
    const template =
      mode === "delete"
        ? inputs.optional("template")
        : inputs.required("template", "a file path or an https:// S3 URL");
    const inline = inputs.keyValues("parameters", PARAMETER_KEY);
    const parametersFile = inputs.optional("parameters-file");
    const keepPrevious = inputs.boolean("keep-previous-parameters", true);
    const required = inputs.list("required-parameters");
    for (const k of required) {
      if (!PARAMETER_KEY.test(k)) inputs.fail("required-parameters", `${JSON.stringify(k)} is not a parameter name`);
    }
    const inlineTags = inputs.keyValues("tags", TAG_KEY);
    const configFile = inputs.optional("config-file");
    const configValues = inputs.keyValues("config-values", PLACEHOLDER_NAME);
    if (configFile && mode === "delete") inputs.fail("config-file", "has no use in mode delete");
    if (!configFile && Object.keys(configValues).length)
      inputs.fail("config-values", "fill placeholders of config-file, which is not given");
    const capabilities = inputs.list("capabilities");
    for (const c of capabilities) {
      if (!CAPABILITIES.includes(c))
        inputs.fail("capabilities", `${JSON.stringify(c)} is not one of ${CAPABILITIES.join(", ")}`);
    }
    const roleArn = inputs.matching("role-arn", ROLE_ARN, "an IAM role ARN (arn:aws:iam::<account>:role/<name>)");
    const notificationArns = inputs.list("notification-arns");
    for (const arn of notificationArns) {
      if (!SNS_ARN.test(arn)) inputs.fail("notification-arns", `${JSON.stringify(arn)} is not an SNS topic ARN`);
    }
    if (notificationArns.length > 5) inputs.fail("notification-arns", "CloudFormation accepts at most 5 topics");
    const terminationProtection = inputs.optionalBoolean("termination-protection");
    const timeoutMinutes = inputs.integer("timeout-minutes", { fallback: 60, min: 1, max: 24 * 60 });
    const pollSeconds = inputs.integer("poll-interval-seconds", { fallback: 5, min: 0, max: 300 });
    const comment = inputs.boolean("pr-comment", true);
    const region = readRegion(inputs, process.env);
    inputs.finish();
    report = { stackName, mode, comment, token };

    const fromFile = parametersFile ? await loadEnvironmentFile(parametersFile) : { parameters: {}, tags: {} };
    const spec: StackSpec = {
      stackName,
      template: template === undefined ? undefined : await resolveTemplate(template, process.env),
      // Inline wins: the workflow sets what only it knows (the code key from publish) over the environment's file.
      parameters: { ...fromFile.parameters, ...inline },
      keepPreviousParameters: keepPrevious,
      requiredParameters: required,
      tags: { ...fromFile.tags, ...inlineTags },
      capabilities: capabilities as Capability[],
      roleArn,
      notificationArns,
      terminationProtection,
      changeSetName: changeSetName(process.env),
      description: `${process.env.GITHUB_REPOSITORY ?? "local"} ${runUrl(process.env) ?? ""}`.trim(),
    };
    // Before any AWS call: a config the function would refuse stops the rollout while the stack is as it was.
    const draft: ConfigDraft | undefined = configFile
      ? await prepareConfig({ file: configFile, values: configValues, stackName, parameters: spec.parameters })
      : undefined;
    if (draft) core.info(`config-file ${draft.file}: valid as the function reads it`);

    const logger = actionsLogger(core);
    const cfn = new CloudFormationClient({ region });
    result = await runStackOperation({ cfn, logger }, spec, {
      mode,
      timeoutMs: timeoutMinutes * 60_000,
      pollIntervalMs: pollSeconds * 1000,
    });
    // After the stack: its bucket exists and the function's permissions match the new code; a failed deploy leaves
    // the config as it was.
    let config: ConfigDelivery | undefined;
    if (draft && mode === "deploy") {
      const s3 = new S3Client({ region, forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3) });
      try {
        config = await deliverConfig(s3, draft, result, logger);
      } finally {
        s3.destroy();
      }
      core.setOutput("config-location", config.location);
      core.setOutput("config-result", config.result);
      core.setOutput("config-sha256", config.sha256);
      core.setOutput("config-version-id", config.versionId ?? "");
      result = { ...result, notes: [...result.notes, configNote(config)] };
    }

    core.setOutput("outcome", result.outcome);
    core.setOutput("stack-id", result.stackId ?? "");
    core.setOutput("stack-status", result.status ?? "");
    core.setOutput("change-set-name", result.changeSet?.name ?? "");
    core.setOutput("change-set-id", result.changeSet?.id ?? "");
    core.setOutput("changes", result.changeSet?.changes.length ?? 0);
    core.setOutput("outputs", JSON.stringify(result.outputs));
    // Output keys are alphanumeric, so they never collide with the hyphenated names above.
    for (const [key, value] of Object.entries(result.outputs)) core.setOutput(key, value);
    await publishReport({ ...report, result }, comment, token);
  } catch (err) {
    core.setFailed(errorMessage(err));
    core.setOutput("outcome", "failed");
    if (err instanceof DeployError && err.status) core.setOutput("stack-status", err.status);
    if (report) await publishReport({ ...report, result, error: err }, report.comment, report.token);
  }
}

function configNote(config: ConfigDelivery): string {
  const what = config.result === "uploaded" ? "written to" : "unchanged at";
  const version = config.versionId ? `, version ${config.versionId}` : "";
  return `Stream config ${what} ${config.location} (sha256 ${config.sha256.slice(0, 12)}${version}).`;
}

async function resolveTemplate(value: string, env: NodeJS.ProcessEnv): Promise<TemplateSource> {
  if (/^https:\/\//i.test(value)) return { url: value };
  // A CloudFormation-compatible endpoint of one's own (a local stack) reads from a store that may speak plain HTTP;
  // what publish wrote there is what it names. AWS itself takes https:// only.
  const customEndpoint = env.AWS_ENDPOINT_URL_CLOUDFORMATION || env.AWS_ENDPOINT_URL;
  if (customEndpoint && /^http:\/\//i.test(value)) return { url: value };
  const fail = (message: string, cause?: unknown) =>
    new DeployError("TEMPLATE_INVALID", `template ${value}: ${message}`, { stackName: "", cause });
  if (/^[a-z0-9]+:\/\//i.test(value)) {
    throw fail(
      "CloudFormation reads templates from https:// S3 URLs only (use the template-url output of ./actions/publish)",
    );
  }
  const info = await stat(value).catch((cause: unknown) => {
    throw fail("no such file (paths are relative to the workspace; did the checkout step run?)", cause);
  });
  if (info.size > MAX_TEMPLATE_BODY) {
    throw fail(
      `${info.size} bytes is more than the ${MAX_TEMPLATE_BODY} CloudFormation accepts inline; publish it with ` +
        `./actions/publish and pass its template-url`,
    );
  }
  return { body: await readFile(value, "utf8") };
}

/** Job summary and PR comment. Best effort: a failure to report is a warning, never the step's outcome. */
async function publishReport(input: ReportInput, comment: boolean, token: string): Promise<void> {
  const markdown = reportMarkdown({ ...input, runUrl: runUrl(process.env) });
  if (process.env.GITHUB_STEP_SUMMARY) {
    await core.summary
      .addRaw(markdown, true)
      .write()
      .catch((e: unknown) => core.warning(`job summary not written: ${errorMessage(e)}`));
  }
  const pr = github.context.payload.pull_request?.number;
  if (!comment || typeof pr !== "number") return;
  if (!token) {
    core.warning("no github-token, so no pull-request comment; pass github-token: ${{ github.token }}");
    return;
  }
  const octokit = github.getOctokit(token);
  const { owner, repo } = github.context.repo;
  const api: CommentsApi = {
    list: () => octokit.paginate(octokit.rest.issues.listComments, { owner, repo, issue_number: pr, per_page: 100 }),
    create: async (body) => (await octokit.rest.issues.createComment({ owner, repo, issue_number: pr, body })).data,
    update: async (id, body) => (await octokit.rest.issues.updateComment({ owner, repo, comment_id: id, body })).data,
  };
  await upsertComment(api, commentMarker(input.stackName), markdown).then(
    ({ action, id }) => core.info(`pull-request comment ${id} ${action}`),
    (e: unknown) =>
      core.warning(
        `pull-request comment not posted: ${errorMessage(e)} (the job needs permissions: pull-requests: write)`,
      ),
  );
}
