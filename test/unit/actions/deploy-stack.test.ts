import {
  CloudFormationClient,
  CloudFormationServiceException,
  CreateChangeSetCommand,
  DeleteChangeSetCommand,
  DeleteStackCommand,
  DescribeChangeSetCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  ExecuteChangeSetCommand,
  GetTemplateSummaryCommand,
  UpdateTerminationProtectionCommand,
  type Stack,
  type StackEvent,
} from "@aws-sdk/client-cloudformation";
import { mockClient } from "aws-sdk-client-mock";
import { changeSetName, runStackOperation, type StackSpec } from "../../../actions/deploy-stack/src/deploy";
import { reportMarkdown } from "../../../actions/deploy-stack/src/report";
import { DeployError, type Mode } from "../../../actions/deploy-stack/src/types";
import type { Logger } from "../../../lambda/bridge/logger";

const NAME = "bridge-pr-7";
const STACK_ID = `arn:aws:cloudformation:eu-west-1:123456789012:stack/${NAME}/0f6b0a00-0000-0000-0000-000000000001`;
const NEW_STACK_ID = `arn:aws:cloudformation:eu-west-1:123456789012:stack/${NAME}/0f6b0a00-0000-0000-0000-000000000002`;
const CS_ID = `arn:aws:cloudformation:eu-west-1:123456789012:changeSet/cs/1`;

const cfnMock = mockClient(CloudFormationClient);
const cfn = new CloudFormationClient({ region: "eu-west-1", credentials: { accessKeyId: "a", secretAccessKey: "b" } });

function notFound(name: string) {
  return new CloudFormationServiceException({
    name: "ValidationError",
    $fault: "client",
    $metadata: { httpStatusCode: 400 },
    message: `Stack with id ${name} does not exist`,
  });
}

function stack(status: string, extra: Partial<Stack> = {}): { Stacks: Stack[] } {
  return {
    Stacks: [
      {
        StackName: NAME,
        StackId: STACK_ID,
        StackStatus: status as Stack["StackStatus"],
        CreationTime: new Date(0),
        ...extra,
      },
    ],
  };
}

let eventSeq = 0;
function event(logicalId: string, status: string, reason?: string, type = "AWS::Lambda::Function"): StackEvent {
  eventSeq += 1;
  return {
    EventId: `e${eventSeq}`,
    StackId: STACK_ID,
    StackName: NAME,
    LogicalResourceId: logicalId,
    ResourceType: logicalId === NAME ? "AWS::CloudFormation::Stack" : type,
    ResourceStatus: status as StackEvent["ResourceStatus"],
    ResourceStatusReason: reason,
    Timestamp: new Date(Date.UTC(2026, 10, 23, 12, 0, eventSeq)),
  };
}

/** DescribeStackEvents answers newest first, each answer the whole history so far, as CloudFormation does. */
function eventHistory(...batches: StackEvent[][]) {
  const answers: { StackEvents: StackEvent[] }[] = [];
  let history: StackEvent[] = [];
  for (const batch of batches) {
    history = [...batch].reverse().concat(history);
    answers.push({ StackEvents: history });
  }
  let chain = cfnMock.on(DescribeStackEventsCommand);
  for (const a of answers.slice(0, -1)) chain = chain.resolvesOnce(a);
  chain.resolves(answers[answers.length - 1]!);
}

function fakeClock() {
  let t = 0;
  const sleeps: number[] = [];
  return {
    now: () => t,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      t += ms;
    },
    sleeps,
  };
}

function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (level: string) => (m: string) => lines.push(`${level} ${m}`);
  return { lines, debug: push("debug"), info: push("info"), warn: push("warn"), error: push("error") };
}

function spec(extra: Partial<StackSpec> = {}): StackSpec {
  return {
    stackName: NAME,
    template: { url: "https://deploy.s3.eu-west-1.amazonaws.com/templates/abc/bridge.yaml" },
    parameters: { MemorySize: "512", CodeKey: "lambda/abc.zip" },
    tags: { environment: "pr" },
    capabilities: ["CAPABILITY_IAM"],
    notificationArns: [],
    changeSetName: "gha-100-1-abc",
    ...extra,
  };
}

async function run(mode: Mode, overrides: Partial<StackSpec> = {}, timeoutMs = 30 * 60_000) {
  const clock = fakeClock();
  const logger = capture();
  const promise = runStackOperation({ cfn, logger, now: clock.now, sleep: clock.sleep }, spec(overrides), {
    mode,
    timeoutMs,
    pollIntervalMs: 5_000,
  });
  return { promise, clock, logger };
}

const changes = [
  {
    Type: "Resource" as const,
    ResourceChange: { Action: "Add" as const, LogicalResourceId: "Queue", ResourceType: "AWS::SQS::Queue" },
  },
  {
    Type: "Resource" as const,
    ResourceChange: {
      Action: "Modify" as const,
      LogicalResourceId: "Function",
      ResourceType: "AWS::Lambda::Function",
      PhysicalResourceId: "bridge-pr-7-Function",
      Replacement: "False" as const,
      Scope: ["Properties" as const],
    },
  },
];

beforeEach(() => {
  cfnMock.reset();
  eventSeq = 0;
});

describe("deploy mode", () => {
  it("creates a missing stack through a CREATE change set, streams its events and returns its outputs", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: NAME }).rejects(notFound(NAME));
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock
      .on(DescribeChangeSetCommand)
      .resolvesOnce({ Status: "CREATE_IN_PROGRESS" })
      .resolves({
        Status: "CREATE_COMPLETE",
        ExecutionStatus: "AVAILABLE",
        Changes: [changes[0]!],
        StackId: STACK_ID,
        ChangeSetId: CS_ID,
      });
    const review = [event(NAME, "REVIEW_IN_PROGRESS", "User Initiated")];
    const start = [event(NAME, "CREATE_IN_PROGRESS"), event("Queue", "CREATE_IN_PROGRESS")];
    const done = [event("Queue", "CREATE_COMPLETE"), event(NAME, "CREATE_COMPLETE")];
    eventHistory(review, start, done);
    cfnMock
      .on(DescribeStacksCommand, { StackName: STACK_ID })
      .resolvesOnce(stack("CREATE_IN_PROGRESS"))
      .resolves(
        stack("CREATE_COMPLETE", { Outputs: [{ OutputKey: "BucketName", OutputValue: "bridge-pr-7-bucket" }] }),
      );
    cfnMock.on(ExecuteChangeSetCommand).resolves({});

    const { promise, logger } = await run("deploy");
    const result = await promise;

    expect(result).toMatchObject({
      outcome: "created",
      stackId: STACK_ID,
      status: "CREATE_COMPLETE",
      recreated: false,
    });
    expect(result.outputs).toEqual({ BucketName: "bridge-pr-7-bucket" });
    expect(result.changeSet).toMatchObject({ name: "gha-100-1-abc", type: "CREATE", id: CS_ID });
    const create = cfnMock.commandCalls(CreateChangeSetCommand)[0]!.args[0].input;
    expect(create).toMatchObject({
      StackName: NAME,
      ChangeSetName: "gha-100-1-abc",
      ChangeSetType: "CREATE",
      TemplateURL: "https://deploy.s3.eu-west-1.amazonaws.com/templates/abc/bridge.yaml",
      Capabilities: ["CAPABILITY_IAM"],
      Tags: [{ Key: "environment", Value: "pr" }],
      ClientToken: "gha-100-1-abc",
    });
    // Sorted, so the same inputs always make the same request.
    expect(create.Parameters).toEqual([
      { ParameterKey: "CodeKey", ParameterValue: "lambda/abc.zip" },
      { ParameterKey: "MemorySize", ParameterValue: "512" },
    ]);
    expect(cfnMock.commandCalls(ExecuteChangeSetCommand)[0]!.args[0].input).toMatchObject({
      ChangeSetName: "gha-100-1-abc",
      StackName: STACK_ID,
    });
    // Each event of this operation once, oldest first; the REVIEW_IN_PROGRESS from before the execution not at all.
    const streamed = logger.lines.filter((l) => /\d{4}-\d\d-\d\dT/.test(l));
    expect(streamed.map((l) => l.replace(/^info \S+ /, "").replace(/\s+/g, " "))).toEqual([
      `CREATE_IN_PROGRESS ${NAME} (AWS::CloudFormation::Stack)`,
      "CREATE_IN_PROGRESS Queue (AWS::Lambda::Function)",
      "CREATE_COMPLETE Queue (AWS::Lambda::Function)",
      `CREATE_COMPLETE ${NAME} (AWS::CloudFormation::Stack)`,
    ]);
  });

  it("updates an existing stack through an UPDATE change set", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: NAME }).resolves(stack("UPDATE_COMPLETE"));
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock
      .on(DescribeChangeSetCommand)
      .resolvesOnce({ Status: "CREATE_COMPLETE", Changes: [changes[0]!], NextToken: "page2", StackId: STACK_ID })
      .resolves({ Status: "CREATE_COMPLETE", Changes: [changes[1]!], StackId: STACK_ID });
    eventHistory([event(NAME, "UPDATE_COMPLETE")], [event(NAME, "UPDATE_IN_PROGRESS"), event(NAME, "UPDATE_COMPLETE")]);
    cfnMock.on(DescribeStacksCommand, { StackName: STACK_ID }).resolves(stack("UPDATE_COMPLETE"));
    cfnMock.on(ExecuteChangeSetCommand).resolves({});

    const { promise } = await run("deploy");
    const result = await promise;

    expect(result.outcome).toBe("updated");
    expect(cfnMock.commandCalls(CreateChangeSetCommand)[0]!.args[0].input.ChangeSetType).toBe("UPDATE");
    // Both pages of changes, in order.
    expect(result.changeSet?.changes.map((c) => `${c.action} ${c.logicalId}`)).toEqual([
      "Add Queue",
      "Modify Function",
    ]);
    expect(cfnMock.commandCalls(DescribeChangeSetCommand)[1]!.args[0].input.NextToken).toBe("page2");
  });

  it("treats an empty change set as success: no execution, the change set deleted", async () => {
    cfnMock
      .on(DescribeStacksCommand, { StackName: NAME })
      .resolves(stack("UPDATE_COMPLETE", { Outputs: [{ OutputKey: "QueueUrl", OutputValue: "https://sqs/q" }] }));
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock.on(DescribeChangeSetCommand).resolves({
      Status: "FAILED",
      StatusReason:
        "The submitted information didn't contain changes. Submit different information to create a change set.",
    });
    cfnMock.on(DeleteChangeSetCommand).resolves({});

    const { promise } = await run("deploy");
    const result = await promise;

    expect(result.outcome).toBe("no-changes");
    expect(result.outputs).toEqual({ QueueUrl: "https://sqs/q" });
    expect(cfnMock.commandCalls(ExecuteChangeSetCommand)).toHaveLength(0);
    expect(cfnMock.commandCalls(DeleteChangeSetCommand)[0]!.args[0].input).toEqual({
      StackName: STACK_ID,
      ChangeSetName: "gha-100-1-abc",
    });
  });

  it("keeps the stack's value of an omitted parameter only while the new template still declares it", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: NAME }).resolves(
      stack("UPDATE_COMPLETE", {
        Parameters: [
          { ParameterKey: "LogLevel", ParameterValue: "DEBUG" },
          { ParameterKey: "Dropped", ParameterValue: "x" },
          { ParameterKey: "MemorySize", ParameterValue: "2048" },
        ],
      }),
    );
    cfnMock.on(GetTemplateSummaryCommand).resolves({
      Parameters: [
        { ParameterKey: "LogLevel", DefaultValue: "INFO" },
        { ParameterKey: "MemorySize", DefaultValue: "1024" },
        { ParameterKey: "CodeKey" },
      ],
    });
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock.on(DescribeChangeSetCommand).resolves({
      Status: "FAILED",
      StatusReason: "The submitted information didn't contain changes.",
    });

    const result = await (await run("deploy", { keepPreviousParameters: true })).promise;

    expect(result.outcome).toBe("no-changes");
    expect(cfnMock.commandCalls(GetTemplateSummaryCommand)[0]!.args[0].input).toEqual({
      TemplateURL: "https://deploy.s3.eu-west-1.amazonaws.com/templates/abc/bridge.yaml",
    });
    expect(cfnMock.commandCalls(CreateChangeSetCommand)[0]!.args[0].input.Parameters).toEqual([
      { ParameterKey: "CodeKey", ParameterValue: "lambda/abc.zip" },
      { ParameterKey: "LogLevel", UsePreviousValue: true },
      { ParameterKey: "MemorySize", ParameterValue: "512" },
    ]);
    expect(result.notes).toEqual(["Parameters not given kept their previous values: LogLevel."]);
  });

  it("asks for the template's parameters only when something is omitted or required", async () => {
    cfnMock
      .on(DescribeStacksCommand, { StackName: NAME })
      .resolves(stack("UPDATE_COMPLETE", { Parameters: [{ ParameterKey: "MemorySize", ParameterValue: "1" }] }));
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock
      .on(DescribeChangeSetCommand)
      .resolves({ Status: "FAILED", StatusReason: "No updates are to be performed." });

    await (
      await run("deploy", { keepPreviousParameters: true, requiredParameters: ["CodeKey"] })
    ).promise;

    expect(cfnMock.commandCalls(GetTemplateSummaryCommand)).toHaveLength(0);
  });

  it("fails with the failing resources and their reasons when the update rolls back", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: NAME }).resolves(stack("UPDATE_COMPLETE"));
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock.on(DescribeChangeSetCommand).resolves({ Status: "CREATE_COMPLETE", Changes: changes, StackId: STACK_ID });
    cfnMock.on(ExecuteChangeSetCommand).resolves({});
    eventHistory(
      [event(NAME, "UPDATE_COMPLETE")],
      [
        event(NAME, "UPDATE_IN_PROGRESS"),
        event("Function", "UPDATE_FAILED", 'Resource handler returned message: "Memory size 99 is below 128"'),
        event("Queue", "CREATE_FAILED", "Resource creation cancelled", "AWS::SQS::Queue"),
        event(NAME, "UPDATE_ROLLBACK_IN_PROGRESS", "The following resource(s) failed to update: [Function]."),
        event(NAME, "UPDATE_ROLLBACK_COMPLETE"),
      ],
    );
    cfnMock.on(DescribeStacksCommand, { StackName: STACK_ID }).resolves(stack("UPDATE_ROLLBACK_COMPLETE"));

    const { promise, logger } = await run("deploy");
    const err = await promise.catch((e: unknown) => e);

    expect(err).toBeInstanceOf(DeployError);
    const e = err as DeployError;
    expect(e.code).toBe("STACK_OPERATION_FAILED");
    expect(e.status).toBe("UPDATE_ROLLBACK_COMPLETE");
    // The cancelled Queue is a consequence, not a cause: only Function is blamed.
    expect(e.failures.map((f) => f.logicalId)).toEqual(["Function"]);
    expect(e.message).toContain("stack bridge-pr-7 update failed: UPDATE_ROLLBACK_COMPLETE");
    expect(e.message).toContain(
      'Function (AWS::Lambda::Function) UPDATE_FAILED: Resource handler returned message: "Memory size 99 is below 128"',
    );
    expect(logger.lines.some((l) => l.startsWith("error ") && l.includes("UPDATE_FAILED"))).toBe(true);
    // The summary/comment markdown shows the same failure as a table.
    const md = reportMarkdown({ stackName: NAME, mode: "deploy", error: e });
    expect(md).toContain("❌ failed");
    expect(md).toContain(
      '| Function | AWS::Lambda::Function | UPDATE_FAILED | Resource handler returned message: "Memory size 99 is below 128" |',
    );
  });

  it("deletes a stack stuck in ROLLBACK_COMPLETE and creates it again", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: NAME }).resolves(stack("ROLLBACK_COMPLETE"));
    cfnMock.on(DeleteStackCommand).resolves({});
    cfnMock
      .on(DescribeStacksCommand, { StackName: STACK_ID })
      .resolvesOnce(stack("DELETE_IN_PROGRESS"))
      .resolves(stack("DELETE_COMPLETE"));
    cfnMock.on(DescribeStacksCommand, { StackName: NEW_STACK_ID }).resolves({
      Stacks: [{ StackName: NAME, StackId: NEW_STACK_ID, StackStatus: "CREATE_COMPLETE", CreationTime: new Date(0) }],
    });
    cfnMock.on(DescribeStackEventsCommand).resolves({ StackEvents: [] });
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: NEW_STACK_ID });
    cfnMock
      .on(DescribeChangeSetCommand)
      .resolves({ Status: "CREATE_COMPLETE", Changes: [changes[0]!], StackId: NEW_STACK_ID });
    cfnMock.on(ExecuteChangeSetCommand).resolves({});

    const { promise, logger } = await run("deploy");
    const result = await promise;

    expect(result).toMatchObject({ outcome: "created", recreated: true, stackId: NEW_STACK_ID });
    expect(cfnMock.commandCalls(DeleteStackCommand)[0]!.args[0].input.StackName).toBe(STACK_ID);
    expect(cfnMock.commandCalls(CreateChangeSetCommand)[0]!.args[0].input.ChangeSetType).toBe("CREATE");
    expect(result.notes[0]).toMatch(/ROLLBACK_COMPLETE.*deleted and created again/);
    expect(logger.lines.some((l) => l.startsWith("warn ") && l.includes("ROLLBACK_COMPLETE"))).toBe(true);
  });

  it("never deletes a protected stack in ROLLBACK_COMPLETE", async () => {
    cfnMock
      .on(DescribeStacksCommand, { StackName: NAME })
      .resolves(stack("ROLLBACK_COMPLETE", { EnableTerminationProtection: true }));

    const { promise } = await run("deploy");
    await expect(promise).rejects.toMatchObject({
      code: "STACK_STATE",
      message: expect.stringMatching(/termination protection/),
    });
    expect(cfnMock.commandCalls(DeleteStackCommand)).toHaveLength(0);
  });

  it("fails the step at the timeout, naming the status the stack is still in", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: NAME }).resolves(stack("UPDATE_COMPLETE"));
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock.on(DescribeChangeSetCommand).resolves({ Status: "CREATE_COMPLETE", Changes: changes, StackId: STACK_ID });
    cfnMock.on(ExecuteChangeSetCommand).resolves({});
    cfnMock.on(DescribeStackEventsCommand).resolves({ StackEvents: [] });
    cfnMock.on(DescribeStacksCommand, { StackName: STACK_ID }).resolves(stack("UPDATE_IN_PROGRESS"));

    const { promise, clock } = await run("deploy", {}, 30 * 60_000);
    const err = (await promise.catch((e: unknown) => e)) as DeployError;

    expect(err).toBeInstanceOf(DeployError);
    expect(err.code).toBe("TIMEOUT");
    expect(err.status).toBe("UPDATE_IN_PROGRESS");
    expect(err.message).toMatch(
      /timed out after 30 minute\(s\) waiting for the update on stack bridge-pr-7 \(still UPDATE_IN_PROGRESS\)/,
    );
    // It waited the whole 30 minutes and not a poll longer.
    expect(clock.now()).toBe(30 * 60_000);
    expect(Math.max(...clock.sleeps)).toBeLessThanOrEqual(5_000);
    expect(reportMarkdown({ stackName: NAME, mode: "deploy", error: err })).toContain("⏱️ timed out");
  });

  it("waits for an operation already running before creating its change set", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: NAME }).resolves(stack("UPDATE_IN_PROGRESS"));
    cfnMock
      .on(DescribeStacksCommand, { StackName: STACK_ID })
      .resolvesOnce(stack("UPDATE_IN_PROGRESS"))
      .resolves(stack("UPDATE_COMPLETE"));
    cfnMock.on(DescribeStackEventsCommand).resolves({ StackEvents: [] });
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock
      .on(DescribeChangeSetCommand)
      .resolves({ Status: "FAILED", StatusReason: "No updates are to be performed." });
    cfnMock.on(DeleteChangeSetCommand).resolves({});

    const { promise, clock } = await run("deploy");
    expect((await promise).outcome).toBe("no-changes");
    expect(clock.sleeps).toEqual([5_000]);
    expect(cfnMock.commandCalls(CreateChangeSetCommand)[0]!.args[0].input.ChangeSetType).toBe("UPDATE");
  });

  it("keeps a change set that failed for a real reason and reports it", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: NAME }).resolves(stack("UPDATE_COMPLETE"));
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock
      .on(DescribeChangeSetCommand)
      .resolves({ Status: "FAILED", StatusReason: "Parameters: [Nope] do not exist in the template" });

    const { promise } = await run("deploy");
    await expect(promise).rejects.toMatchObject({
      code: "CHANGE_SET_FAILED",
      message: "change set gha-100-1-abc for bridge-pr-7 failed: Parameters: [Nope] do not exist in the template",
    });
    expect(cfnMock.commandCalls(DeleteChangeSetCommand)).toHaveLength(0);
  });

  it("turns termination protection on when asked, and leaves it alone when not", async () => {
    const setUp = () => {
      cfnMock.on(DescribeStacksCommand, { StackName: NAME }).resolves(stack("UPDATE_COMPLETE"));
      cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
      cfnMock
        .on(DescribeChangeSetCommand)
        .resolves({ Status: "FAILED", StatusReason: "No updates are to be performed." });
      cfnMock.on(DeleteChangeSetCommand).resolves({});
      cfnMock.on(UpdateTerminationProtectionCommand).resolves({});
    };
    setUp();
    await (
      await run("deploy", { terminationProtection: true })
    ).promise;
    expect(cfnMock.commandCalls(UpdateTerminationProtectionCommand)[0]!.args[0].input).toEqual({
      StackName: STACK_ID,
      EnableTerminationProtection: true,
    });
    cfnMock.reset();
    setUp();
    await (
      await run("deploy")
    ).promise;
    expect(cfnMock.commandCalls(UpdateTerminationProtectionCommand)).toHaveLength(0);
  });
});

describe("stack states and event paging", () => {
  it("creates (not updates) a stack a plan left in REVIEW_IN_PROGRESS", async () => {
    cfnMock.on(DescribeStacksCommand).resolves(stack("REVIEW_IN_PROGRESS"));
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock
      .on(DescribeChangeSetCommand)
      .resolves({ Status: "CREATE_COMPLETE", Changes: [changes[0]!], StackId: STACK_ID });

    const { promise } = await run("plan");
    expect((await promise).changeSet?.type).toBe("CREATE");
    expect(cfnMock.commandCalls(CreateChangeSetCommand)[0]!.args[0].input.ChangeSetType).toBe("CREATE");
  });

  it("pages back through events until it reaches the ones it has already seen", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: NAME }).resolves(stack("UPDATE_COMPLETE"));
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock.on(DescribeChangeSetCommand).resolves({ Status: "CREATE_COMPLETE", Changes: changes, StackId: STACK_ID });
    cfnMock.on(ExecuteChangeSetCommand).resolves({});
    cfnMock.on(DescribeStacksCommand, { StackName: STACK_ID }).resolves(stack("UPDATE_COMPLETE"));
    const old = event(NAME, "UPDATE_COMPLETE");
    const [e1, e2, e3] = [
      event(NAME, "UPDATE_IN_PROGRESS"),
      event("Function", "UPDATE_COMPLETE"),
      event(NAME, "UPDATE_COMPLETE"),
    ];
    cfnMock
      .on(DescribeStackEventsCommand)
      .resolvesOnce({ StackEvents: [old] })
      .resolvesOnce({ StackEvents: [e3!, e2!], NextToken: "older" })
      .resolvesOnce({ StackEvents: [e1!, old] })
      .resolves({ StackEvents: [] });

    const { promise, logger } = await run("deploy");
    await promise;

    const streamed = logger.lines
      .filter((l) => /\d{4}-\d\d-\d\dT/.test(l))
      .map((l) => l.split(/\s+/).slice(2, 4).join(" "));
    expect(streamed).toEqual([`UPDATE_IN_PROGRESS ${NAME}`, "UPDATE_COMPLETE Function", `UPDATE_COMPLETE ${NAME}`]);
    expect(cfnMock.commandCalls(DescribeStackEventsCommand)[2]!.args[0].input.NextToken).toBe("older");
  });
});

describe("plan mode", () => {
  it("creates the change set and never executes it", async () => {
    cfnMock.on(DescribeStacksCommand).resolves(stack("UPDATE_COMPLETE"));
    cfnMock.on(CreateChangeSetCommand).resolves({ Id: CS_ID, StackId: STACK_ID });
    cfnMock
      .on(DescribeChangeSetCommand)
      .resolves({ Status: "CREATE_COMPLETE", Changes: changes, StackId: STACK_ID, ChangeSetId: CS_ID });

    const { promise } = await run("plan");
    const result = await promise;

    expect(result.outcome).toBe("planned");
    expect(result.changeSet?.changes).toHaveLength(2);
    expect(cfnMock.commandCalls(ExecuteChangeSetCommand)).toHaveLength(0);
    expect(cfnMock.commandCalls(DeleteChangeSetCommand)).toHaveLength(0);
    const md = reportMarkdown({ stackName: NAME, mode: "plan", result });
    expect(md).toContain("📋 planned");
    expect(md).toContain("**Changes** (2 resource(s) would change)");
    expect(md).toContain("| ➕ Add | Queue | AWS::SQS::Queue | - | - |");
    expect(md).toContain("| 🔄 Modify | Function | AWS::Lambda::Function | bridge-pr-7-Function | Properties |");
  });

  it("on a stack in ROLLBACK_COMPLETE, says a deploy would recreate it and touches nothing", async () => {
    cfnMock.on(DescribeStacksCommand).resolves(stack("ROLLBACK_COMPLETE"));

    const { promise } = await run("plan");
    const result = await promise;

    expect(result).toMatchObject({ outcome: "planned", recreated: true });
    expect(result.notes[0]).toMatch(/a deploy will delete it and create it again/);
    expect(cfnMock.commandCalls(DeleteStackCommand)).toHaveLength(0);
    expect(cfnMock.commandCalls(CreateChangeSetCommand)).toHaveLength(0);
  });
});

describe("delete mode", () => {
  it("deletes the stack and waits until it is gone", async () => {
    cfnMock
      .on(DescribeStacksCommand, { StackName: NAME })
      .resolves(stack("UPDATE_COMPLETE", { Outputs: [{ OutputKey: "BucketName", OutputValue: "retained-bucket" }] }));
    cfnMock.on(DeleteStackCommand).resolves({});
    eventHistory(
      [event(NAME, "UPDATE_COMPLETE")],
      [event(NAME, "DELETE_IN_PROGRESS")],
      [event(NAME, "DELETE_COMPLETE")],
    );
    cfnMock
      .on(DescribeStacksCommand, { StackName: STACK_ID })
      .resolvesOnce(stack("DELETE_IN_PROGRESS"))
      .resolves(stack("DELETE_COMPLETE"));

    const { promise, logger } = await run("delete", {
      template: undefined,
      roleArn: "arn:aws:iam::123456789012:role/cfn",
    });
    const result = await promise;

    expect(result).toMatchObject({ outcome: "deleted", status: "DELETE_COMPLETE" });
    // The outputs from before the deletion, so a workflow can clean up what the stack retains.
    expect(result.outputs).toEqual({ BucketName: "retained-bucket" });
    expect(cfnMock.commandCalls(DeleteStackCommand)[0]!.args[0].input).toMatchObject({
      StackName: STACK_ID,
      RoleARN: "arn:aws:iam::123456789012:role/cfn",
    });
    expect(logger.lines.filter((l) => l.includes("DELETE_COMPLETE"))).toHaveLength(1);
  });

  it("succeeds without doing anything when the stack does not exist", async () => {
    cfnMock.on(DescribeStacksCommand).rejects(notFound(NAME));
    const { promise } = await run("delete", { template: undefined });
    expect((await promise).outcome).toBe("absent");
    expect(cfnMock.commandCalls(DeleteStackCommand)).toHaveLength(0);
  });

  it("fails with the resources that blocked the deletion", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: NAME }).resolves(stack("CREATE_COMPLETE"));
    cfnMock.on(DeleteStackCommand).resolves({});
    eventHistory(
      [event(NAME, "CREATE_COMPLETE")],
      [
        event(NAME, "DELETE_IN_PROGRESS"),
        event("Bucket", "DELETE_FAILED", "The bucket you tried to delete is not empty", "AWS::S3::Bucket"),
        event(NAME, "DELETE_FAILED", "The following resource(s) failed to delete: [Bucket]."),
      ],
    );
    cfnMock.on(DescribeStacksCommand, { StackName: STACK_ID }).resolves(stack("DELETE_FAILED"));

    const { promise } = await run("delete", { template: undefined });
    const err = (await promise.catch((e: unknown) => e)) as DeployError;
    expect(err.code).toBe("STACK_OPERATION_FAILED");
    expect(err.failures).toEqual([
      expect.objectContaining({ logicalId: "Bucket", reason: "The bucket you tried to delete is not empty" }),
    ]);
  });

  it("refuses to delete a stack with termination protection", async () => {
    cfnMock.on(DescribeStacksCommand).resolves(stack("UPDATE_COMPLETE", { EnableTerminationProtection: true }));
    const { promise } = await run("delete", { template: undefined });
    await expect(promise).rejects.toMatchObject({
      code: "STACK_STATE",
      message: expect.stringContaining(
        "update-termination-protection --no-enable-termination-protection --stack-name bridge-pr-7",
      ),
    });
    expect(cfnMock.commandCalls(DeleteStackCommand)).toHaveLength(0);
  });
});

describe("changeSetName", () => {
  const VALID = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;

  it("is unique per run, attempt and call, and a valid CloudFormation name", () => {
    const env = { GITHUB_RUN_ID: "123456789", GITHUB_RUN_ATTEMPT: "2" };
    const a = changeSetName(env, 1_700_000_000_000);
    const b = changeSetName(env, 1_700_000_000_000);
    expect(a).toMatch(/^gha-123456789-2-[a-z0-9]+$/);
    expect(a).not.toBe(b);
    expect(changeSetName({ ...env, GITHUB_RUN_ATTEMPT: "3" }, 1, "r")).not.toBe(changeSetName(env, 1, "r"));
    expect(changeSetName({}, 1, "r")).toMatch(VALID);
    expect(a).toMatch(VALID);
  });
});
