/**
 * What the engine reads from a foreign error, in one place: the AWS SDK's exception name and HTTP status, and Node's
 * errno code. Endpoints use these to decide how to wrap an error once (missing, denied, retryable).
 */

/** The SDK's exception name (`NoSuchKey`, `ResourceNotFoundException`), or Node's errno code (`ENOENT`) if there is one. */
export function awsErrorName(err: unknown): string {
  const e = err as { name?: string; Code?: string; code?: unknown } | undefined;
  if (typeof e?.code === "string") return e.code;
  return e?.name ?? e?.Code ?? "Error";
}

/** The HTTP status of the response an SDK error came from, when there was one. */
export function httpStatusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}
