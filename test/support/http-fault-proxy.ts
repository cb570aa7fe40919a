import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";

/**
 * An HTTP proxy in front of s3rver that answers chosen requests with an S3 error instead of forwarding them: 500/503
 * to exercise the SDK's retries, 403 to exercise a clear, non-retried failure. Everything else passes through, with
 * `extraHeaders` added to the answer: what S3 says that s3rver cannot (a version id of a versioned bucket).
 */
export interface HttpFault {
  method?: string;
  /** Matched against the request path (decoded), e.g. /bucket/psp/outbound/x.xml */
  path: RegExp;
  status: number;
  code: string;
  /** How many matching requests fail before the fault stops firing; Infinity for always. */
  times: number;
}

export interface HttpFaultProxy {
  endpoint: string;
  faults: HttpFault[];
  /** Requests answered with an injected error, by S3 error code. */
  injected: Record<string, number>;
  /** Headers added to a passed-through answer, by request; none by default. */
  extraHeaders?: (method: string, path: string) => Record<string, string> | undefined;
  close(): Promise<void>;
}

export async function startHttpFaultProxy(target: string): Promise<HttpFaultProxy> {
  const url = new URL(target);
  const proxy: HttpFaultProxy = {
    endpoint: "",
    faults: [],
    injected: {},
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent((req.url ?? "/").split("?")[0] ?? "/");
    const fault = proxy.faults.find((f) => f.times > 0 && (!f.method || f.method === req.method) && f.path.test(path));
    if (fault) {
      fault.times--;
      proxy.injected[fault.code] = (proxy.injected[fault.code] ?? 0) + 1;
      req.resume();
      res.writeHead(fault.status, { "content-type": "application/xml", connection: "close" });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault.code}</Code><Message>injected by the test</Message></Error>`,
      );
      return;
    }
    const upstream = request(
      { host: url.hostname, port: url.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        const extra = proxy.extraHeaders?.(req.method ?? "GET", path) ?? {};
        res.writeHead(answer.statusCode ?? 502, { ...answer.headers, ...extra });
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return proxy;
}
