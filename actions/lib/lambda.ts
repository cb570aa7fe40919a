import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import type { RunReport } from "../../lambda/bridge/report";
import { ActionError } from "./errors";

/**
 * One synchronous invoke of the bridge function with a direct-invoke event (`{action: ...}`), answered with the
 * engine's run report. The Lambda API reports a function that threw as HTTP 200 with `FunctionError` set and the
 * error in the payload: that, and any payload that is not a report, become one ActionError naming the function.
 */
export async function invokeBridge(lambda: LambdaClient, functionName: string, event: unknown): Promise<RunReport> {
  let out;
  try {
    out = await lambda.send(
      new InvokeCommand({ FunctionName: functionName, Payload: Buffer.from(JSON.stringify(event)) }),
    );
  } catch (err) {
    const e = err as { name?: string; message?: string };
    throw new ActionError("INVOKE_FAILED", `lambda invoke ${functionName}: ${e.name ?? "Error"}: ${e.message ?? err}`, {
      cause: err,
    });
  }
  const text = Buffer.from(out.Payload ?? []).toString("utf8");
  let payload: unknown;
  try {
    payload = text === "" ? undefined : JSON.parse(text);
  } catch {
    payload = text;
  }
  if (out.FunctionError) {
    const p = (payload ?? {}) as { errorType?: string; errorMessage?: string };
    throw new ActionError(
      "FUNCTION_ERROR",
      `lambda invoke ${functionName}: the function failed (${p.errorType ?? out.FunctionError}): ${p.errorMessage ?? text}`,
    );
  }
  if (!isRunReport(payload)) {
    throw new ActionError(
      "UNEXPECTED_PAYLOAD",
      `lambda invoke ${functionName}: expected the bridge's run report, got ${text.slice(0, 200) || "nothing"}`,
    );
  }
  return payload;
}

function isRunReport(value: unknown): value is RunReport {
  const v = value as Partial<RunReport> | undefined;
  return typeof v === "object" && v !== null && Array.isArray(v.streams) && typeof v.ok === "boolean";
}
