// A real S3 HTTP API on loopback (s3rver in a child process) for the local stack and the integration tests.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import type { S3EventRecord } from "aws-lambda";

export interface LocalS3 {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  port: number;
  /** The s3rver child's process id (to prove it is gone after close). */
  pid: number;
  region: string;
  credentials: { accessKeyId: "S3RVER"; secretAccessKey: "S3RVER" };
  /**
   * Every object created or removed, as AWS would deliver it in a notification (keys URL-encoded the AWS way).
   * Records arrive asynchronously, usually just after the S3 response: wait for them, do not expect them on return.
   * Returns a function that removes the listener.
   */
  onEvent(listener: (record: S3EventRecord) => void): () => void;
  /** A new client for this server, or for a proxy in front of it (`via`); the caller owns it (destroy() when done). */
  client(via?: string): S3Client;
  createBucket(name: string): Promise<void>;
  /** Stops the server; resolves once the child process has exited. Objects stay in `directory`. */
  close(): Promise<void>;
}

export interface LocalS3Options {
  /** Where s3rver keeps buckets and objects (created if missing, kept after close). */
  directory: string;
  /** 0 or absent: any free port. */
  port?: number;
  buckets?: string[];
  /** s3rver's request log; true (quiet) unless set to false. */
  silent?: boolean;
}

type ChildMessage =
  { type: "ready"; port: number } | { type: "record"; record: S3EventRecord } | { type: "error"; message: string };

const CHILD_SCRIPT = path.join(__dirname, "s3rver-child.js");
const REGION = "us-east-1";
const CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;
const STARTUP_TIMEOUT_MS = 15_000;

export function startLocalS3(options: LocalS3Options): Promise<LocalS3> {
  const childOptions = {
    directory: path.resolve(options.directory),
    port: options.port ?? 0,
    buckets: options.buckets ?? [],
    silent: options.silent ?? true,
  };
  // process.execPath: the same Node that runs us (24 in tests), with the one flag s3rver's paging needs.
  const child = spawn(process.execPath, ["--openssl-legacy-provider", CHILD_SCRIPT, JSON.stringify(childOptions)], {
    stdio: ["ignore", "inherit", "pipe", "ipc"],
  });

  // stderr is passed through, and its tail kept so a failed start can say why.
  let stderrTail = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    process.stderr.write(chunk);
    stderrTail = (stderrTail + chunk.toString("utf8")).slice(-4000);
  });

  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  const listeners = new Set<(record: S3EventRecord) => void>();

  return new Promise<LocalS3>((resolve, reject) => {
    const timer = setTimeout(() => {
      fail(new Error(`s3rver did not start within ${STARTUP_TIMEOUT_MS} ms`));
      child.kill("SIGKILL");
    }, STARTUP_TIMEOUT_MS);
    let started = false;
    const fail = (error: Error) => {
      if (started) return;
      started = true;
      clearTimeout(timer);
      reject(error);
    };

    child.once("error", (error) => fail(new Error(`cannot start s3rver: ${error.message}`, { cause: error })));
    child.once("exit", (code, signal) => {
      const detail = stderrTail.trim() ? `\n${stderrTail.trim()}` : "";
      fail(new Error(`s3rver exited before it was ready (code ${code}, signal ${signal})${detail}`));
    });

    child.on("message", (message: ChildMessage) => {
      switch (message.type) {
        case "record":
          for (const listener of listeners) listener(message.record);
          break;
        case "error":
          if (!started) fail(new Error(`s3rver failed to start: ${message.message}`));
          else process.stderr.write(`local S3: ${message.message}\n`);
          break;
        case "ready": {
          started = true;
          clearTimeout(timer);
          resolve(makeLocalS3(child, message.port, listeners, exited));
          break;
        }
      }
    });
  });
}

function makeLocalS3(
  child: ChildProcess,
  port: number,
  listeners: Set<(record: S3EventRecord) => void>,
  exited: Promise<void>,
): LocalS3 {
  const endpoint = `http://127.0.0.1:${port}`;
  const client = (via?: string) =>
    new S3Client({
      endpoint: via ?? endpoint,
      region: REGION,
      credentials: CREDENTIALS,
      // `localhost` or virtual-host style would send requests to bucket.127.0.0.1.
      forcePathStyle: true,
      // s3rver stores the SDK's aws-chunked framing inside streamed bodies under the default (docs/field-notes.md).
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  let closing: Promise<void> | undefined;
  // A server that dies on its own must not go unnoticed in the local stack; requests would just be refused.
  child.once("exit", (code, signal) => {
    if (!closing) process.stderr.write(`local S3: s3rver exited unexpectedly (code ${code}, signal ${signal})\n`);
  });

  return {
    endpoint,
    port,
    pid: child.pid ?? -1,
    region: REGION,
    credentials: { ...CREDENTIALS },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    client,
    async createBucket(name) {
      const s3 = client();
      try {
        await s3.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        s3.destroy();
      }
    },
    close() {
      closing ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          if (child.connected) child.send({ type: "shutdown" });
          else child.kill("SIGTERM");
          // The child exits within ~2 s on its own; a hung one is killed rather than leaking a port.
          const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
          await exited;
          clearTimeout(killer);
        }
        listeners.clear();
      })();
      return closing;
    },
  };
}
