import { CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { mockClient } from "aws-sdk-client-mock";
import type { RunReport, StreamReport } from "../../../lambda/bridge";
import { readDeploymentInputs, resolveDeployment } from "../../../actions/lib/deployment";
import { Inputs, inputsFromRecord } from "../../../actions/lib/inputs";
import { fileOutcome, smokeName } from "../../../actions/smoke-test/src/smoke";
import { resendOutcome, type ResendEvent } from "../../../actions/resend/src/resend";

/** The pure parts of the smoke-test and resend actions; the actions themselves run against the local stack. */
const cfnMock = mockClient(CloudFormationClient);

const stream = (over: Partial<StreamReport>): StreamReport => ({
  stream: "psp",
  direction: "pull",
  moved: [],
  skipped: [],
  failed: [],
  files: 0,
  bytes: 0,
  durationMs: 1,
  ...over,
});
const report = (...streams: StreamReport[]): RunReport => ({
  startedAt: "2026-12-01T00:00:00Z",
  finishedAt: "2026-12-01T00:00:01Z",
  streams,
  unrouted: [],
  ok: streams.every((s) => s.failed.length === 0),
});

describe("smokeName", () => {
  it("picks a unique name that the stream's patterns accept", () => {
    expect(smokeName("R1", "push", ["**"])).toBe("bridge-smoke-push-R1.txt");
    expect(smokeName("R1", "pull", ["*.xml"])).toBe("bridge-smoke-pull-R1.xml");
    expect(smokeName("R1", "push", ["PAY_*.csv", "*.CSV"])).toBe("PAY_bridge-smoke-push-R1.csv");
  });

  it("says what to change when no simple name can match", () => {
    expect(() => smokeName("R1", "push", ["invoices/2026-??-??.xml"])).toThrow(
      /no file name of the form bridge-smoke-push-R1\.<ext> matches the stream's patterns \(invoices\/2026-\?\?-\?\?\.xml\)/,
    );
  });
});

describe("fileOutcome", () => {
  const source = "/OUT/bridge-smoke-pull-R1.txt";
  it("finds the file moved, failed or skipped, and a failure of the whole stream", () => {
    const moved = { source, destination: "s3://b/in/x", bytes: 3, durationMs: 1 };
    expect(fileOutcome(report(stream({ moved: [moved] })), "pull", source)).toMatchObject({ moved: true });
    const failed = { source, code: "S3_ACCESS_DENIED", message: "s3 put b/in/x: access denied" };
    expect(fileOutcome(report(stream({ failed: [failed] })), "pull", source)).toEqual({
      moved: false,
      failed: true,
      detail: "the bridge failed it: S3_ACCESS_DENIED: s3 put b/in/x: access denied",
    });
    // Too young is worth waiting for; a pattern skip never ends by itself.
    const young = { source, reason: "too-young" as const, detail: "modified 2 s ago" };
    expect(fileOutcome(report(stream({ skipped: [young] })), "pull", source)).toMatchObject({ failed: false });
    const pattern = { source, reason: "pattern" as const };
    expect(fileOutcome(report(stream({ skipped: [pattern] })), "pull", source)).toMatchObject({ failed: true });
    const login = { source: "sftp://h/OUT", code: "SFTP_AUTH_FAILED", message: "sftp connect h:22: login refused" };
    expect(fileOutcome(report(stream({ failed: [login] })), "pull", source).detail).toBe(
      "the bridge failed: SFTP_AUTH_FAILED: sftp connect h:22: login refused",
    );
    expect(fileOutcome(report(stream({})), "pull", source)).toEqual({
      moved: false,
      failed: false,
      detail: "the bridge's report does not mention it",
    });
  });
});

describe("resendOutcome", () => {
  const event: ResendEvent = { action: "resend", stream: "psp", direction: "push", keys: ["a.xml"], dryRun: false };
  it("fails a real run that resent nothing, warns on an empty dry run, fails on any failed file", () => {
    expect(resendOutcome(report(stream({ direction: "push" })), event).error).toBe(
      "nothing was resent: nothing matches keys a.xml in stream psp",
    );
    expect(resendOutcome(report(stream({ direction: "push", planned: [] })), { ...event, dryRun: true })).toMatchObject(
      {
        warning: "nothing matches keys a.xml in stream psp",
      },
    );
    const failed = { source: "s3://b/a.xml", code: "SFTP_OPERATION_FAILED", message: "sftp write /IN/a.xml: failure" };
    expect(resendOutcome(report(stream({ direction: "push", failed: [failed] })), event).error).toBe(
      "1 file(s) failed, first s3://b/a.xml: SFTP_OPERATION_FAILED: sftp write /IN/a.xml: failure",
    );
  });
});

describe("deployment inputs", () => {
  beforeEach(() => cfnMock.reset());

  it("reads function, bucket and config from the stack's outputs; direct inputs win", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: "bridge-staging" }).resolves({
      Stacks: [
        {
          StackName: "bridge-staging",
          CreationTime: new Date(),
          StackStatus: "UPDATE_COMPLETE",
          Outputs: [
            { OutputKey: "FunctionName", OutputValue: "bridge-staging-Function-1" },
            { OutputKey: "BucketName", OutputValue: "bridge-staging-bucket" },
            { OutputKey: "ConfigLocation", OutputValue: "ssm:/bridge/staging/config" },
          ],
        },
      ],
    });
    const cfn = () => new CloudFormationClient({ region: "eu-west-1" });
    const inputs = new Inputs(inputsFromRecord({ "stack-name": "bridge-staging" }));
    const d = readDeploymentInputs(inputs, { needsConfig: true });
    inputs.finish();
    await expect(resolveDeployment(d, cfn)).resolves.toEqual({
      functionName: "bridge-staging-Function-1",
      bucket: "bridge-staging-bucket",
      configLocation: "ssm:/bridge/staging/config",
    });
    await expect(resolveDeployment({ ...d, config: "s3://cfg/bridge.yaml" }, cfn)).resolves.toMatchObject({
      configLocation: "s3://cfg/bridge.yaml",
    });
  });

  it("names the missing output and the input that replaces it; a missing stack says so", async () => {
    cfnMock
      .on(DescribeStacksCommand, { StackName: "half" })
      .resolves({ Stacks: [{ StackName: "half", CreationTime: new Date(), StackStatus: "CREATE_COMPLETE" }] });
    const error = Object.assign(new Error("Stack with id gone does not exist"), { name: "ValidationError" });
    cfnMock.on(DescribeStacksCommand, { StackName: "gone" }).rejects(error);
    const cfn = () => new CloudFormationClient({ region: "eu-west-1" });
    await expect(resolveDeployment({ stackName: "half" }, cfn)).rejects.toThrow(
      "stack half has no output FunctionName (it has: none); set the function-name input instead",
    );
    await expect(resolveDeployment({ stackName: "gone" }, cfn)).rejects.toThrow(
      "describe stack gone: Stack with id gone does not exist",
    );
  });

  it("needs a stack or a function, and a config location without a stack", () => {
    const inputs = new Inputs(inputsFromRecord({ "function-name": "not a name!" }));
    readDeploymentInputs(inputs, { needsConfig: true });
    expect(() => inputs.finish()).toThrow(
      [
        "3 invalid input(s):",
        '  function-name: "not a name!" is not a Lambda function name or ARN',
        "  stack-name: give stack-name (the bridge stack) or function-name (and bucket/config) to find the bridge",
        "  config: is required without stack-name: the bridge's config location (file, s3://bucket/key or SSM name)",
      ].join("\n"),
    );
  });
});
