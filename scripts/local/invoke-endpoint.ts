// The Invoke route of the Lambda API (POST /2015-03-31/functions/{name}/invocations) on loopback, so
// @aws-sdk/client-lambda, the AWS CLI or a GitHub Action pointed at it with AWS_ENDPOINT_URL_LAMBDA invoke the bridge
// as they would in AWS: same headers, same status codes, same error shapes. Signatures are not checked.
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Invocation, InvokeOptions } from "./lambda-runtime";

export interface LocalFunctionTarget {
  /** arn:aws:lambda:REGION:ACCOUNT:function:NAME */
  functionArn: string;
  invoke(event: unknown, options: InvokeOptions): Promise<Invocation>;
}

export interface InvokeEndpointOptions {
  /** The function of that name, or undefined for none (the local stack serves one; a test's account one per stack). */
  functions(name: string): LocalFunctionTarget | undefined;
  /** arn:aws:lambda:REGION:ACCOUNT:function: for naming a function that is not there, as the API does. */
  arnPrefix: string;
  host?: string;
  /** 0 or absent: any free port. */
  port?: number;
}

/** The options' lookup for an endpoint that serves one function. */
export function onlyFunction(name: string, target: LocalFunctionTarget): InvokeEndpointOptions["functions"] {
  return (asked) => (asked === name ? target : undefined);
}

export interface InvokeEndpoint {
  /** http://127.0.0.1:PORT, the value for AWS_ENDPOINT_URL_LAMBDA. */
  url: string;
  port: number;
  /** Stops accepting requests; resolves once open connections are closed. */
  close(): Promise<void>;
}

// The Lambda API's payload limits: 6 MB for synchronous invocations, 1 MB for asynchronous ones.
const SYNC_LIMIT = 6 * 1024 * 1024;
const ASYNC_LIMIT = 1024 * 1024;
const LOG_TAIL_BYTES = 4096;
const ROUTE = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export function startInvokeEndpoint(options: InvokeEndpointOptions): Promise<InvokeEndpoint> {
  const server = http.createServer((req, res) => {
    void handle(req, res, options).catch((err: unknown) => {
      const e = err instanceof ApiError ? err : new ApiError(500, "ServiceException", (err as Error).message);
      sendError(res, e);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://${options.host ?? "127.0.0.1"}:${port}`,
        port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Keep-alive sockets from SDK clients would hold close() open until they time out.
            server.closeIdleConnections();
            setTimeout(() => server.closeAllConnections(), 1000).unref();
          }),
      });
    });
  });
}

/** NAME, NAME:QUALIFIER, ACCOUNT:function:NAME[:QUALIFIER] or the full ARN, as the API accepts them. */
function resolveTarget(
  raw: string,
  options: InvokeEndpointOptions,
): { target: LocalFunctionTarget; qualifier: string } | undefined {
  const arn = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:(.+)$/.exec(raw);
  const partial = /^\d{12}:function:(.+)$/.exec(raw);
  const rest = arn?.[1] ?? partial?.[1] ?? raw;
  const [name, qualifier, ...extra] = rest.split(":");
  if (!name || extra.length) return undefined;
  const target = options.functions(name);
  return target && { target, qualifier: qualifier ?? "" };
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, options: InvokeEndpointOptions) {
  const url = new URL(req.url ?? "/", "http://localhost");
  const route = ROUTE.exec(url.pathname);
  if (!route || req.method !== "POST") {
    req.resume();
    throw new ApiError(404, "UnknownOperationException", `Unknown operation ${req.method} ${url.pathname}`);
  }
  const requested = decodeURIComponent(route[1] as string);
  const resolved = resolveTarget(requested, options);
  const qualifier = url.searchParams.get("Qualifier") ?? resolved?.qualifier;
  if (!resolved || !["", "$LATEST"].includes(qualifier ?? "")) {
    req.resume();
    const shown = requested.startsWith("arn:") ? requested : `${options.arnPrefix}${requested}`;
    throw new ApiError(404, "ResourceNotFoundException", `Function not found: ${shown}`);
  }

  const type = header(req, "x-amz-invocation-type") ?? "RequestResponse";
  if (!["RequestResponse", "Event", "DryRun"].includes(type)) {
    req.resume();
    throw new ApiError(
      400,
      "InvalidParameterValueException",
      `1 validation error detected: Value '${type}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]`,
    );
  }
  const body = await readBody(req, type === "Event" ? ASYNC_LIMIT : SYNC_LIMIT);
  let event: unknown = {};
  if (body.length) {
    try {
      event = JSON.parse(body.toString("utf8"));
    } catch (err) {
      throw new ApiError(
        400,
        "InvalidRequestContentException",
        `Could not parse request body into json: Could not parse payload into json: ${(err as Error).message}`,
      );
    }
  }
  const clientContext = parseClientContext(header(req, "x-amz-client-context"));
  const requestId = randomUUID();
  const common = { "x-amzn-RequestId": requestId, "X-Amz-Executed-Version": "$LATEST" };

  if (type === "DryRun") {
    res.writeHead(204, { "x-amzn-RequestId": requestId }).end();
    return;
  }
  if (type === "Event") {
    // Accepted now, run later: errors surface only in the function's logs, as with the real asynchronous invoke.
    void resolved.target.invoke(event, { requestId, clientContext });
    res.writeHead(202, { ...common, "Content-Length": "0" }).end();
    return;
  }

  const invocation = await resolved.target.invoke(event, { requestId, clientContext });
  const payload = Buffer.from(JSON.stringify(invocation.error ?? invocation.result ?? null));
  const headers: http.OutgoingHttpHeaders = {
    ...common,
    "Content-Type": "application/json",
    "Content-Length": String(payload.length),
  };
  if (invocation.error) headers["X-Amz-Function-Error"] = "Unhandled";
  if (header(req, "x-amz-log-type") === "Tail") {
    const logs = Buffer.from(invocation.logs.join("\n") + "\n");
    headers["X-Amz-Log-Result"] = logs.subarray(Math.max(0, logs.length - LOG_TAIL_BYTES)).toString("base64");
  }
  res.writeHead(200, headers).end(payload);
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseClientContext(raw: string | undefined): unknown {
  if (!raw) return undefined;
  try {
    return JSON.parse(Buffer.from(raw, "base64").toString("utf8"));
  } catch {
    throw new ApiError(400, "InvalidRequestContentException", "Client context must be a base64-encoded JSON object");
  }
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on("end", () => {
      if (tooLarge) {
        reject(
          new ApiError(
            413,
            "RequestTooLargeException",
            `Request must be smaller than ${limit} bytes for the InvokeFunction operation`,
          ),
        );
      } else resolve(Buffer.concat(chunks));
    });
    req.on("error", reject);
  });
}

function sendError(res: http.ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ Type: err.status >= 500 ? "Service" : "User", Message: err.message });
  res
    .writeHead(err.status, {
      "Content-Type": "application/json",
      "x-amzn-ErrorType": err.type,
      "x-amzn-RequestId": randomUUID(),
      "Content-Length": String(Buffer.byteLength(body)),
    })
    .end(body);
}
