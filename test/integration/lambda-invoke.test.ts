import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { InvokeCommand, LambdaClient, type InvokeCommandOutput } from "@aws-sdk/client-lambda";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import type { RunReport } from "../../lambda/bridge";
import { startLocalStack, type LocalStack } from "../../scripts/local/start";
import { waitFor } from "../support/wait";

/**
 * The local Lambda Invoke endpoint, called with the real @aws-sdk/client-lambda: the same request the smoke test and
 * resend actions send to AWS, answered as the Lambda API answers (status codes, FunctionError, LogResult, errors).
 */
const CONFIG = path.resolve(__dirname, "..", "..", "examples", "local.config.yaml");
const credentials = { accessKeyId: "AKIDLOCAL", secretAccessKey: "local-secret" };

describe("local Lambda Invoke endpoint", () => {
  let dir: string;
  let stack: LocalStack;
  let lambda: LambdaClient;

  const json = (payload: unknown) => Buffer.from(JSON.stringify(payload));
  const decode = <T>(out: InvokeCommandOutput) => JSON.parse(Buffer.from(out.Payload ?? []).toString("utf8")) as T;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "lambda-invoke-"));
    // No scheduled pulls: every run here is one the test invoked.
    stack = await startLocalStack({ dir, configPath: CONFIG, pullIntervalMs: 0, quiet: true });
    lambda = new LambdaClient({ endpoint: stack.lambda.url, region: "us-east-1", credentials });
  });
  afterAll(async () => {
    lambda?.destroy();
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("runs a pull synchronously and returns the run report, as RequestResponse does", async () => {
    await writeFile(path.join(stack.sftp.root, "outbound", "invoice.xml"), "<invoice/>");
    const out = await lambda.send(new InvokeCommand({ FunctionName: "bridge", Payload: json({ streams: ["demo"] }) }));
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBeUndefined();
    expect(out.ExecutedVersion).toBe("$LATEST");
    expect(out.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const report = decode<RunReport>(out);
    expect(report.ok).toBe(true);
    expect(report.streams[0]).toMatchObject({ stream: "demo", direction: "pull", files: 1 });
    expect(report.streams[0]?.moved[0]?.destination).toBe("s3://bridge-local/demo/inbound/invoice.xml");
  });

  it("is found through AWS_ENDPOINT_URL_LAMBDA by a client given no endpoint, by name, ARN or $LATEST", async () => {
    const s3 = stack.s3.client();
    await s3.send(new PutObjectCommand({ Bucket: "bridge-local", Key: "demo/outbound/direct.txt", Body: "direct" }));
    s3.destroy();
    const saved = process.env.AWS_ENDPOINT_URL_LAMBDA;
    process.env.AWS_ENDPOINT_URL_LAMBDA = stack.lambda.url;
    const client = new LambdaClient({ region: "us-east-1", credentials });
    try {
      const keys = ["s3://bridge-local/demo/outbound/direct.txt"];
      const first = await client.send(
        new InvokeCommand({ FunctionName: stack.lambda.functionArn, Payload: json({ action: "push", keys }) }),
      );
      expect(decode<RunReport>(first).streams[0]).toMatchObject({ files: 1 });
      expect(existsSync(path.join(stack.sftp.root, "inbound", "direct.txt"))).toBe(true);
      // Same object again: its receipt makes it a duplicate, whichever way the function is named.
      for (const name of ["bridge:$LATEST", "000000000000:function:bridge"]) {
        const again = await client.send(
          new InvokeCommand({ FunctionName: name, Payload: json({ action: "push", keys }) }),
        );
        expect(decode<RunReport>(again).streams[0]?.skipped).toEqual([
          expect.objectContaining({ reason: "duplicate" }),
        ]);
      }
      const qualified = await client.send(
        new InvokeCommand({
          FunctionName: "bridge",
          Qualifier: "$LATEST",
          Payload: json({ action: "push", keys, force: true }),
        }),
      );
      expect(decode<RunReport>(qualified).streams[0]).toMatchObject({ files: 1 });
    } finally {
      client.destroy();
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_LAMBDA;
      else process.env.AWS_ENDPOINT_URL_LAMBDA = saved;
    }
  });

  it("answers a handler error with FunctionError Unhandled and the runtime's error payload", async () => {
    const out = await lambda.send(
      new InvokeCommand({ FunctionName: "bridge", Payload: json({ action: "pull", streams: ["ghost"] }) }),
    );
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBe("Unhandled");
    const error = decode<{ errorType: string; errorMessage: string; trace: string[] }>(out);
    expect(error.errorType).toBe("UnknownStreamError");
    expect(error.errorMessage).toBe('unknown stream "ghost"; the config defines: demo');
    expect(error.trace[0]).toContain("UnknownStreamError");
  });

  it("returns the tail of the function's log with LogType Tail", async () => {
    const out = await lambda.send(
      new InvokeCommand({ FunctionName: "bridge", LogType: "Tail", Payload: json({ streams: ["demo"] }) }),
    );
    const log = Buffer.from(out.LogResult ?? "", "base64").toString("utf8");
    expect(log).toContain(`END RequestId: ${out.$metadata.requestId}`);
    expect(log).toContain("[demo]: Moved 0 files from SFTP to S3");
    expect(Buffer.from(out.LogResult ?? "", "base64").length).toBeLessThanOrEqual(4096);
  });

  it("accepts an Event invocation with 202 and runs it afterwards; DryRun answers 204 and runs nothing", async () => {
    await writeFile(path.join(stack.sftp.root, "outbound", "later.csv"), "later\n");
    const dry = await lambda.send(
      new InvokeCommand({ FunctionName: "bridge", InvocationType: "DryRun", Payload: json({ streams: ["demo"] }) }),
    );
    expect(dry.StatusCode).toBe(204);
    expect(existsSync(path.join(stack.sftp.root, "outbound", "later.csv"))).toBe(true);

    const queued = await lambda.send(
      new InvokeCommand({ FunctionName: "bridge", InvocationType: "Event", Payload: json({ streams: ["demo"] }) }),
    );
    expect(queued.StatusCode).toBe(202);
    expect(Buffer.from(queued.Payload ?? []).length).toBe(0);
    await waitFor("the asynchronous pull to archive later.csv", () =>
      existsSync(path.join(stack.sftp.root, "outbound", ".done", "later.csv")),
    );
  });

  it("refuses an unknown function, an unknown qualifier and a payload that is not JSON, as the API does", async () => {
    const failure = (command: InvokeCommand) =>
      lambda.send(command).then(
        () => undefined,
        (err: { name: string; message: string; $metadata: { httpStatusCode?: number } }) => err,
      );
    const missing = await failure(new InvokeCommand({ FunctionName: "nope", Payload: json({}) }));
    expect(missing).toMatchObject({ name: "ResourceNotFoundException", $metadata: { httpStatusCode: 404 } });
    expect(missing?.message).toBe("Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope");

    const version = await failure(new InvokeCommand({ FunctionName: "bridge", Qualifier: "7", Payload: json({}) }));
    expect(version).toMatchObject({ name: "ResourceNotFoundException", $metadata: { httpStatusCode: 404 } });

    const garbled = await failure(new InvokeCommand({ FunctionName: "bridge", Payload: Buffer.from("{not json") }));
    expect(garbled).toMatchObject({ name: "InvalidRequestContentException", $metadata: { httpStatusCode: 400 } });
    expect(garbled?.message).toMatch(/^Could not parse request body into json/);
  });

  it("sends the X-Amz-Function-Error header on the wire, not only through the SDK's mapping", async () => {
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request(
        `${stack.lambda.url}/2015-03-31/functions/bridge/invocations`,
        { method: "POST" },
        resolve,
      );
      req.on("error", reject);
      req.end(JSON.stringify({ what: "ever" }));
    });
    response.resume();
    expect(response.statusCode).toBe(200);
    expect(response.headers["x-amz-function-error"]).toBe("Unhandled");
    expect(response.headers["x-amz-executed-version"]).toBe("$LATEST");
  });
});
