import { randomBytes } from "node:crypto";
import {
  CreateChangeSetCommand,
  DeleteChangeSetCommand,
  DeleteStackCommand,
  DescribeChangeSetCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  ExecuteChangeSetCommand,
  GetTemplateSummaryCommand,
  UpdateTerminationProtectionCommand,
  type Capability,
  type Change,
  type CloudFormationClient,
  type DescribeChangeSetOutput,
  type Parameter,
  type Stack,
  type StackEvent,
} from "@aws-sdk/client-cloudformation";
import type { Logger } from "../../../lambda/bridge/logger";
import { errorMessage } from "../../lib/errors";
import {
  DeployError,
  type ChangeRow,
  type ChangeSetInfo,
  type EventRow,
  type Mode,
  type Outcome,
  type StackResult,
} from "./types";

export type TemplateSource = { body: string } | { url: string };

export interface StackSpec {
  stackName: string;
  /** Required for deploy and plan. */
  template?: TemplateSource;
  parameters: Record<string, string>;
  /**
   * On an update, parameters the stack has and the template still declares, but `parameters` does not give, keep the
   * stack's value (UsePreviousValue) instead of falling back to the template's default.
   */
  keepPreviousParameters?: boolean;
  /** Parameters whose value (given, kept or the template's default) must not be empty. */
  requiredParameters?: string[];
  tags: Record<string, string>;
  capabilities: Capability[];
  roleArn?: string;
  notificationArns: string[];
  /** undefined: leave the stack's setting as it is. */
  terminationProtection?: boolean;
  changeSetName: string;
  /** Shown on the change set in the console: which run made it. */
  description?: string;
}

export interface DeployOptions {
  mode: Mode;
  timeoutMs: number;
  pollIntervalMs: number;
}

export interface DeployDeps {
  cfn: CloudFormationClient;
  logger: Logger;
  /** Milliseconds; injected so tests can run a 30-minute timeout in no time. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

// CloudFormation's words for an empty change set; it reports one as FAILED, but for a deploy it means "up to date".
const EMPTY_CHANGE_SET = [/didn't contain changes/i, /no updates are to be performed/i];
const SUCCESS = new Set(["CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"]);
// States CloudFormation will not update from; someone has to look (or, for UPDATE_ROLLBACK_FAILED, continue the rollback).
const STUCK: Record<string, string> = {
  CREATE_FAILED:
    "the stack was created with rollback disabled and failed; delete it (mode: delete) or fix it in the console",
  ROLLBACK_FAILED: "its rollback failed; delete it in the console (retaining the resources that block deletion)",
  DELETE_FAILED: "a delete failed; see the stack events, remove what blocks deletion, and delete it again",
  UPDATE_ROLLBACK_FAILED:
    "an update rollback failed; run `aws cloudformation continue-update-rollback` (skipping the resources that " +
    "cannot roll back) and deploy again",
  IMPORT_ROLLBACK_FAILED: "an import rollback failed; fix it in the console",
  UPDATE_FAILED: "an update failed with rollback disabled; fix it in the console or roll it back",
};

const isInProgress = (status?: string) =>
  !!status && status.endsWith("_IN_PROGRESS") && status !== "REVIEW_IN_PROGRESS";

/**
 * Rolls a stack out through a change set, or deletes it. The anti-model's gaps are closed here: the change-set name is
 * unique per run, the whole operation has a deadline that fails the step, a stack left in ROLLBACK_COMPLETE is deleted
 * and created again, and an empty change set is success.
 */
export async function runStackOperation(
  deps: DeployDeps,
  spec: StackSpec,
  options: DeployOptions,
): Promise<StackResult> {
  return new StackOperation(deps, spec, options).run();
}

class StackOperation {
  private readonly cfn: CloudFormationClient;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly started: number;
  private readonly deadline: number;
  private readonly seenEvents = new Set<string>();
  private streamed: EventRow[] = [];
  private changeSet?: ChangeSetInfo;
  private recreated = false;
  private readonly notes: string[] = [];

  constructor(
    deps: DeployDeps,
    private readonly spec: StackSpec,
    private readonly options: DeployOptions,
  ) {
    this.cfn = deps.cfn;
    this.log = deps.logger;
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.started = this.now();
    this.deadline = this.started + options.timeoutMs;
  }

  async run(): Promise<StackResult> {
    if (this.options.mode === "delete") return this.delete();
    return this.deploy();
  }

  private result(outcome: Outcome, stack: Stack | undefined): StackResult {
    return {
      mode: this.options.mode,
      outcome,
      stackName: this.spec.stackName,
      stackId: stack?.StackId,
      status: stack?.StackStatus,
      changeSet: this.changeSet,
      recreated: this.recreated,
      outputs: outputsOf(stack),
      parameters: parametersOf(stack),
      durationMs: this.now() - this.started,
      notes: this.notes,
    };
  }

  private fail(
    code: ConstructorParameters<typeof DeployError>[0],
    message: string,
    extra: { status?: string; cause?: unknown } = {},
  ): DeployError {
    return new DeployError(code, message, {
      stackName: this.spec.stackName,
      status: extra.status,
      failures: this.failures(),
      changeSet: this.changeSet,
      cause: extra.cause,
    });
  }

  private async deploy(): Promise<StackResult> {
    const { stackName } = this.spec;
    if (!this.spec.template) throw this.fail("TEMPLATE_INVALID", `mode ${this.options.mode} needs a template`);
    let stack = await this.describe(stackName);

    if (stack && isInProgress(stack.StackStatus)) {
      this.log.info(`stack ${stackName} is ${stack.StackStatus}; waiting for that operation to finish first`);
      await this.seedEvents(stack.StackId!);
      stack = await this.waitForStack(stack.StackId!, `the ${stack.StackStatus} operation already running`);
      // A delete that was running: the name is free again.
      if (stack?.StackStatus === "DELETE_COMPLETE") stack = undefined;
    }

    // Before the ROLLBACK_COMPLETE recovery deletes anything: a deploy that cannot go ahead must not start.
    if (stack?.StackStatus === "ROLLBACK_COMPLETE") await this.changeSetParameters(undefined);

    if (stack?.StackStatus === "ROLLBACK_COMPLETE") {
      const why = `stack ${stackName} is in ROLLBACK_COMPLETE (its creation failed and was rolled back); CloudFormation cannot update it`;
      this.recreated = true;
      if (this.options.mode === "plan") {
        this.notes.push(`${why}: a deploy will delete it and create it again. No change set was made.`);
        this.log.warn(`${why}; a deploy would delete and recreate it`);
        return this.result("planned", stack);
      }
      this.notes.push(`${why}: it was deleted and created again.`);
      this.log.warn(`${why}; deleting it to create it again`);
      await this.deleteAndWait(stack);
      stack = undefined;
    }

    const stuck = stack?.StackStatus ? STUCK[stack.StackStatus] : undefined;
    if (stuck) {
      throw this.fail("STACK_STATE", `stack ${stackName} is ${stack!.StackStatus}: ${stuck}`, {
        status: stack!.StackStatus,
      });
    }

    const type = !stack || stack.StackStatus === "REVIEW_IN_PROGRESS" ? "CREATE" : "UPDATE";
    const parameters = await this.changeSetParameters(type === "UPDATE" ? stack : undefined);
    const created = await this.createChangeSet(type, parameters);
    if (created === "empty") {
      this.log.info(`no changes: stack ${stackName} already matches the template and parameters`);
      if (this.options.mode === "deploy" && stack) stack = await this.applyTerminationProtection(stack);
      return this.result("no-changes", stack);
    }
    if (this.options.mode === "plan") {
      this.log.info(`plan only: change set ${this.spec.changeSetName} was created and not executed`);
      return this.result("planned", await this.describe(created.stackId));
    }

    await this.seedEvents(created.stackId);
    this.log.info(`executing change set ${this.spec.changeSetName} on ${stackName}`);
    await this.call("execute change set", () =>
      this.cfn.send(
        new ExecuteChangeSetCommand({
          StackName: created.stackId,
          ChangeSetName: this.spec.changeSetName,
          ClientRequestToken: this.spec.changeSetName,
        }),
      ),
    );
    const final = await this.waitForStack(created.stackId, `the ${type === "CREATE" ? "creation" : "update"}`);
    if (!final || !SUCCESS.has(final.StackStatus ?? "")) {
      throw this.fail(
        "STACK_OPERATION_FAILED",
        `stack ${stackName} ${type === "CREATE" ? "creation" : "update"} failed: ${final?.StackStatus ?? "stack gone"}` +
          `${final?.StackStatusReason ? ` (${final.StackStatusReason})` : ""}${this.failureText()}`,
        { status: final?.StackStatus },
      );
    }
    return this.result(type === "CREATE" ? "created" : "updated", await this.applyTerminationProtection(final));
  }

  private async delete(): Promise<StackResult> {
    const { stackName } = this.spec;
    let stack = await this.describe(stackName);
    if (!stack) {
      this.log.info(`stack ${stackName} does not exist; nothing to delete`);
      return this.result("absent", undefined);
    }
    if (isInProgress(stack.StackStatus) && stack.StackStatus !== "DELETE_IN_PROGRESS") {
      this.log.info(`stack ${stackName} is ${stack.StackStatus}; waiting for that operation to finish first`);
      await this.seedEvents(stack.StackId!);
      stack = await this.waitForStack(stack.StackId!, `the ${stack.StackStatus} operation already running`);
      if (!stack) return this.result("deleted", undefined);
    }
    const last = await this.deleteAndWait(stack);
    // The outputs the stack had: what it leaves behind (a retained bucket, say) can still be found and cleaned up.
    return { ...this.result("deleted", last), outputs: outputsOf(stack) };
  }

  /** Deletes and waits for DELETE_COMPLETE; returns the last view of the stack (found by id once the name is gone). */
  private async deleteAndWait(stack: Stack): Promise<Stack | undefined> {
    const { stackName } = this.spec;
    if (stack.EnableTerminationProtection) {
      throw this.fail(
        "STACK_STATE",
        `stack ${stackName} has termination protection on, so it was not deleted. If it really should go, turn ` +
          `protection off deliberately: aws cloudformation update-termination-protection ` +
          `--no-enable-termination-protection --stack-name ${stackName}`,
        { status: stack.StackStatus },
      );
    }
    const stackId = stack.StackId!;
    await this.seedEvents(stackId);
    if (stack.StackStatus !== "DELETE_IN_PROGRESS") {
      this.log.info(`deleting stack ${stackName}`);
      await this.call("delete stack", () =>
        this.cfn.send(
          new DeleteStackCommand({
            StackName: stackId,
            RoleARN: this.spec.roleArn,
            ClientRequestToken: `${this.spec.changeSetName}-delete`,
          }),
        ),
      );
    }
    const final = await this.waitForStack(stackId, "the deletion");
    if (final && final.StackStatus !== "DELETE_COMPLETE") {
      throw this.fail(
        "STACK_OPERATION_FAILED",
        `stack ${stackName} deletion failed: ${final.StackStatus}${final.StackStatusReason ? ` (${final.StackStatusReason})` : ""}` +
          this.failureText(),
        { status: final.StackStatus },
      );
    }
    return final;
  }

  /**
   * What the change set is given for each parameter: the spec's values, and on an update UsePreviousValue for the ones
   * it omits (CloudFormation would otherwise use the template's default). Checks the required ones on the way.
   */
  private async changeSetParameters(existing: Stack | undefined): Promise<Parameter[]> {
    const { spec } = this;
    const given = spec.parameters;
    const previous: Record<string, string> = {};
    for (const p of existing?.Parameters ?? []) if (p.ParameterKey) previous[p.ParameterKey] = p.ParameterValue ?? "";
    const omitted = spec.keepPreviousParameters ? Object.keys(previous).filter((k) => !Object.hasOwn(given, k)) : [];
    const required = spec.requiredParameters ?? [];
    const declared = omitted.length || required.some((k) => !Object.hasOwn(given, k)) ? await this.declared() : {};
    // A parameter the new template dropped cannot be kept: CloudFormation refuses unknown keys.
    const kept = omitted.filter((k) => Object.hasOwn(declared, k)).sort();
    if (kept.length) {
      this.notes.push(`Parameters not given kept their previous values: ${kept.join(", ")}.`);
      this.log.info(`keeping the stack's values of ${kept.join(", ")} (not given)`);
    }

    const empty = required.filter((k) => {
      const value = Object.hasOwn(given, k) ? given[k] : kept.includes(k) ? previous[k] : declared[k]?.default;
      return !value;
    });
    if (empty.length) {
      throw this.fail(
        "PARAMETERS_INVALID",
        empty
          .map((k) =>
            Object.hasOwn(given, k)
              ? `${k} must not be empty, and it is given empty`
              : `${k} must not be empty: it is not given, and ${kept.includes(k) ? "the stack's value" : "the template's default"} is empty`,
          )
          .join("; ") + ` (required-parameters: ${required.join(", ")}); nothing was changed`,
      );
    }
    const rows: Parameter[] = Object.keys(given).map((k) => ({ ParameterKey: k, ParameterValue: given[k] }));
    for (const k of kept) rows.push({ ParameterKey: k, UsePreviousValue: true });
    return rows.sort((a, b) => (a.ParameterKey! < b.ParameterKey! ? -1 : a.ParameterKey! > b.ParameterKey! ? 1 : 0));
  }

  /** The new template's parameters and their defaults, as CloudFormation reads them. */
  private async declared(): Promise<Record<string, { default?: string }>> {
    const template = this.spec.template!;
    const out = await this.call("get template summary", () =>
      this.cfn.send(
        new GetTemplateSummaryCommand(
          "url" in template ? { TemplateURL: template.url } : { TemplateBody: template.body },
        ),
      ),
    );
    const declared: Record<string, { default?: string }> = {};
    for (const p of out?.Parameters ?? []) if (p.ParameterKey) declared[p.ParameterKey] = { default: p.DefaultValue };
    return declared;
  }

  private async createChangeSet(
    type: "CREATE" | "UPDATE",
    parameters: Parameter[],
  ): Promise<"empty" | { stackId: string }> {
    const { spec } = this;
    const template = spec.template!;
    const pairs = (o: Record<string, string>) => Object.keys(o).sort();
    this.log.info(`creating ${type} change set ${spec.changeSetName} for stack ${spec.stackName}`);
    const out = await this.call("create change set", () =>
      this.cfn.send(
        new CreateChangeSetCommand({
          StackName: spec.stackName,
          ChangeSetName: spec.changeSetName,
          ChangeSetType: type,
          ...("url" in template ? { TemplateURL: template.url } : { TemplateBody: template.body }),
          Parameters: parameters,
          Tags: pairs(spec.tags).map((k) => ({ Key: k, Value: spec.tags[k] })),
          Capabilities: spec.capabilities,
          RoleARN: spec.roleArn,
          NotificationARNs: spec.notificationArns,
          Description: spec.description?.slice(0, 1024),
          ClientToken: spec.changeSetName,
        }),
      ),
    );
    const stackId = out.StackId ?? spec.stackName;
    this.changeSet = { name: spec.changeSetName, id: out.Id, type, changes: [] };

    let described: DescribeChangeSetOutput;
    for (;;) {
      described = await this.call("describe change set", () =>
        this.cfn.send(new DescribeChangeSetCommand({ StackName: stackId, ChangeSetName: spec.changeSetName })),
      );
      if (described.Status === "CREATE_COMPLETE" || described.Status === "FAILED") break;
      await this.pause(`change set ${spec.changeSetName} to be ready (${described.Status})`, described.Status);
    }

    if (described.Status === "FAILED") {
      const reason = described.StatusReason ?? "no reason given";
      if (EMPTY_CHANGE_SET.some((re) => re.test(reason))) {
        // Nobody can execute it, and a stack collects such leftovers on every no-op run.
        await this.call("delete empty change set", () =>
          this.cfn.send(new DeleteChangeSetCommand({ StackName: stackId, ChangeSetName: spec.changeSetName })),
        );
        this.changeSet.id = undefined;
        return "empty";
      }
      // Kept, not deleted: the console shows it with the reason, which helps whoever looks next.
      throw this.fail("CHANGE_SET_FAILED", `change set ${spec.changeSetName} for ${spec.stackName} failed: ${reason}`);
    }

    const changes: Change[] = [...(described.Changes ?? [])];
    let next = described.NextToken;
    while (next) {
      const token = next;
      const page = await this.call("describe change set", () =>
        this.cfn.send(
          new DescribeChangeSetCommand({ StackName: stackId, ChangeSetName: spec.changeSetName, NextToken: token }),
        ),
      );
      changes.push(...(page.Changes ?? []));
      next = page.NextToken;
    }
    this.changeSet.changes = changes.flatMap(toChangeRow);
    this.changeSet.id = described.ChangeSetId ?? this.changeSet.id;
    this.logChanges(this.changeSet.changes);
    return { stackId: described.StackId ?? stackId };
  }

  private logChanges(changes: ChangeRow[]): void {
    if (changes.length === 0) {
      this.log.info("the change set changes no resources (outputs or metadata only)");
      return;
    }
    this.log.info(`the change set has ${changes.length} change(s):`);
    for (const c of changes) {
      const replace =
        c.replacement === "True" ? " [REPLACES]" : c.replacement === "Conditional" ? " [may replace]" : "";
      this.log.info(`  ${c.action.padEnd(6)} ${c.logicalId} (${c.resourceType})${replace}`);
    }
  }

  private async applyTerminationProtection(stack: Stack): Promise<Stack> {
    const want = this.spec.terminationProtection;
    if (want === undefined || !!stack.EnableTerminationProtection === want) return stack;
    this.log.info(`turning termination protection ${want ? "on" : "off"} for ${this.spec.stackName}`);
    await this.call("update termination protection", () =>
      this.cfn.send(
        new UpdateTerminationProtectionCommand({ StackName: stack.StackId, EnableTerminationProtection: want }),
      ),
    );
    return { ...stack, EnableTerminationProtection: want };
  }

  /** Polls until the stack leaves *_IN_PROGRESS, streaming its events; undefined when it no longer exists. */
  private async waitForStack(stackId: string, what: string): Promise<Stack | undefined> {
    for (;;) {
      const stack = await this.describe(stackId);
      await this.streamEvents(stackId);
      if (!stack || !isInProgress(stack.StackStatus)) return stack;
      await this.pause(what, stack.StackStatus);
    }
  }

  /** Sleeps one poll interval, or fails the step when the deadline has passed. */
  private async pause(what: string, status?: string): Promise<void> {
    const left = this.deadline - this.now();
    if (left <= 0) {
      const minutes = Math.round(this.options.timeoutMs / 60_000);
      throw this.fail(
        "TIMEOUT",
        `timed out after ${minutes} minute(s) waiting for ${what} on stack ${this.spec.stackName}` +
          `${status ? ` (still ${status})` : ""}. CloudFormation carries on regardless: check the stack in the ` +
          `console; the next run waits for the operation to finish before starting its own.${this.failureText()}`,
        { status },
      );
    }
    await this.sleep(Math.min(this.options.pollIntervalMs, left));
  }

  private async describe(nameOrId: string): Promise<Stack | undefined> {
    try {
      const out = await this.cfn.send(new DescribeStacksCommand({ StackName: nameOrId }));
      return out.Stacks?.[0];
    } catch (err) {
      if (isStackMissing(err)) return undefined;
      throw this.fail("AWS_CALL_FAILED", `describe stack ${nameOrId}: ${describeAwsError(err)}`, { cause: err });
    }
  }

  /** Marks the events that exist before our operation as seen, so only its own events are streamed and judged. */
  private async seedEvents(stackId: string): Promise<void> {
    const out = await this.call("describe stack events", () =>
      this.cfn.send(new DescribeStackEventsCommand({ StackName: stackId })),
    );
    for (const e of out.StackEvents ?? []) if (e.EventId) this.seenEvents.add(e.EventId);
  }

  private async streamEvents(stackId: string): Promise<void> {
    const fresh: StackEvent[] = [];
    let token: string | undefined;
    // Newest first: page back only until an event we have already seen.
    pages: do {
      const t = token;
      const out = await this.call("describe stack events", () =>
        this.cfn.send(new DescribeStackEventsCommand({ StackName: stackId, NextToken: t })),
      );
      for (const e of out.StackEvents ?? []) {
        if (!e.EventId || this.seenEvents.has(e.EventId)) break pages;
        fresh.push(e);
      }
      token = out.NextToken;
    } while (token);
    for (const e of fresh.reverse()) {
      this.seenEvents.add(e.EventId!);
      const row: EventRow = {
        id: e.EventId!,
        timestamp: e.Timestamp ?? new Date(0),
        logicalId: e.LogicalResourceId ?? "?",
        resourceType: e.ResourceType ?? "?",
        status: e.ResourceStatus ?? "?",
        reason: e.ResourceStatusReason,
      };
      this.streamed.push(row);
      const line = `${row.timestamp.toISOString()} ${row.status.padEnd(20)} ${row.logicalId} (${row.resourceType})${row.reason ? `: ${row.reason}` : ""}`;
      if (row.status.endsWith("_FAILED")) this.log.error(line);
      else this.log.info(line);
    }
  }

  /**
   * The failed resources of this operation, root causes first: "Resource creation cancelled" rows are consequences of
   * another failure and only listed when nothing else failed.
   */
  failures(): EventRow[] {
    const failed = this.streamed.filter((e) => e.status.endsWith("_FAILED") && e.logicalId !== this.spec.stackName);
    const causes = failed.filter((e) => !/cancelled/i.test(e.reason ?? ""));
    return causes.length ? causes : failed;
  }

  private failureText(): string {
    const failed = this.failures();
    if (!failed.length) return "";
    return `\nfailed resources:\n${failed.map((e) => `  ${e.logicalId} (${e.resourceType}) ${e.status}: ${e.reason ?? "no reason given"}`).join("\n")}`;
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.fail("AWS_CALL_FAILED", `${what} on stack ${this.spec.stackName}: ${describeAwsError(err)}`, {
        cause: err,
      });
    }
  }
}

function outputsOf(stack: Stack | undefined): Record<string, string> {
  const outputs: Record<string, string> = {};
  for (const o of stack?.Outputs ?? []) if (o.OutputKey) outputs[o.OutputKey] = o.OutputValue ?? "";
  return outputs;
}

function parametersOf(stack: Stack | undefined): Record<string, string> {
  const parameters: Record<string, string> = {};
  for (const p of stack?.Parameters ?? []) if (p.ParameterKey) parameters[p.ParameterKey] = p.ParameterValue ?? "";
  return parameters;
}

function toChangeRow(change: Change): ChangeRow[] {
  const rc = change.ResourceChange;
  if (!rc) return [];
  return [
    {
      action: rc.Action ?? "?",
      logicalId: rc.LogicalResourceId ?? "?",
      resourceType: rc.ResourceType ?? "?",
      physicalId: rc.PhysicalResourceId,
      replacement: rc.Action === "Modify" ? rc.Replacement : undefined,
      scope: rc.Scope ?? [],
    },
  ];
}

function isStackMissing(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  return e?.name === "ValidationError" && /does not exist/i.test(e.message ?? "");
}

function describeAwsError(err: unknown): string {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  const message = errorMessage(err);
  if (e?.name === "AccessDenied" || e?.name === "AccessDeniedException" || e?.$metadata?.httpStatusCode === 403) {
    return `${message} (the role from configure-aws-credentials lacks this CloudFormation permission, or the role-arn cannot be passed: it needs iam:PassRole)`;
  }
  if (e?.name === "InsufficientCapabilitiesException") {
    return `${message} (add the named capability to the capabilities input)`;
  }
  return e?.name && e.name !== "Error" && !message.startsWith(e.name) ? `${e.name}: ${message}` : message;
}

/**
 * Unique per run, attempt and call, and readable in the console: `<prefix>-<run id>-<attempt>-<time><random>`.
 * CloudFormation names: a letter first, then letters, digits and hyphens, at most 128 characters.
 */
export function changeSetName(
  env: NodeJS.ProcessEnv,
  now: number = Date.now(),
  random: string = randomBytes(3).toString("hex"),
): string {
  const runId = env.GITHUB_RUN_ID?.replace(/[^0-9]/g, "");
  const attempt = env.GITHUB_RUN_ATTEMPT?.replace(/[^0-9]/g, "") || "1";
  const stamp = `${now.toString(36)}${random}`;
  return (runId ? `gha-${runId}-${attempt}-${stamp}` : `local-${stamp}`).slice(0, 128);
}
