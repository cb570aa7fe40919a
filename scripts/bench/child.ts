// One measured transfer in a process of its own, so its peak RSS and CPU seconds are its own: the bridge engine
// (push or pull, exactly as an adapter calls it) or a plain SDK upload (the ceiling for SFTP -> S3 on s3rver).
// main.ts bundles this file with esbuild (dependencies left to node_modules) and runs it with plain `node`, so no
// TypeScript loader inflates the figures. The job is a JSON file named by argv[2] (1000 push items would not fit in
// one argument); one JSON line goes to stdout.
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import {
  createBridge,
  createCredentialResolver,
  silentLogger,
  validateConfig,
  type BridgeConfigInput,
  type PushItem,
  type RunReport,
} from "../../lambda/bridge";

export interface S3Endpoint {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

export type ChildJob =
  | { kind: "bridge-push"; s3: S3Endpoint; config: BridgeConfigInput; items: PushItem[] }
  | { kind: "bridge-pull"; s3: S3Endpoint; config: BridgeConfigInput; streams: string[] }
  | { kind: "sdk-upload"; s3: S3Endpoint; bucket: string; key: string; file: string };

export interface ChildResult {
  /** Wall time of the transfer itself (connect, handshake and verification included; Node start-up not). */
  elapsedMs: number;
  /** CPU seconds spent during the transfer (user + system). */
  cpuS: number;
  /** CPU seconds of Node start-up and module loading, before the transfer began. */
  bootCpuS: number;
  /** Peak resident set of the whole process, MiB. */
  maxRssMiB: number;
  files: number;
  bytes: number;
  failed: number;
  skipped: number;
  firstError?: string;
  /** The first skipped file and why: a run that moved nothing says what the engine thought. */
  firstSkipped?: string;
  /** Resident set after start-up and module loading, before the transfer, MiB. */
  bootRssMiB: number;
  /** Peaks sampled every 50 ms during the transfer (MiB): where the memory went. */
  peaks: { heapUsed: number; external: number; arrayBuffers: number };
}

const cpuSeconds = () => {
  const u = process.resourceUsage();
  return (u.userCPUTime + u.systemCPUTime) / 1e6;
};

function s3Client(s3: S3Endpoint): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: s3.credentials,
    forcePathStyle: true,
    // s3rver stores the SDK's aws-chunked framing inside streamed bodies under the default (FIELD-NOTES).
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

type Outcome = Pick<ChildResult, "files" | "bytes" | "failed" | "skipped" | "firstError" | "firstSkipped">;

function summarise(report: RunReport): Outcome {
  const failed = report.streams.flatMap((s) => s.failed);
  const skipped = report.streams.flatMap((s) => s.skipped);
  return {
    files: report.streams.reduce((n, s) => n + s.files, 0),
    bytes: report.streams.reduce((n, s) => n + s.bytes, 0),
    failed: failed.length,
    skipped: report.streams.reduce((n, s) => n + s.skipped.length, 0) + report.unrouted.length,
    firstError: failed[0] ? `${failed[0].source}: ${failed[0].code}: ${failed[0].message}` : undefined,
    firstSkipped: skipped[0] ? JSON.stringify(skipped[0]) : undefined,
  };
}

function sampleMemory(): { stop(): ChildResult["peaks"] } {
  const peaks = { heapUsed: 0, external: 0, arrayBuffers: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    peaks.heapUsed = Math.max(peaks.heapUsed, m.heapUsed / 2 ** 20);
    peaks.external = Math.max(peaks.external, m.external / 2 ** 20);
    peaks.arrayBuffers = Math.max(peaks.arrayBuffers, m.arrayBuffers / 2 ** 20);
  };
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peaks;
    },
  };
}

async function run(job: ChildJob): Promise<ChildResult> {
  const client = s3Client(job.s3);
  const bootRssMiB = process.resourceUsage().maxRSS / 1024;
  const memory = sampleMemory();
  const bootCpuS = cpuSeconds();
  const cpu0 = bootCpuS;
  const t0 = performance.now();
  let outcome: Outcome;
  if (job.kind === "sdk-upload") {
    const size = (await stat(job.file)).size;
    // lib-storage with its defaults: what "a plain SDK upload" means for a streamed body of unknown length.
    await new Upload({
      client,
      params: { Bucket: job.bucket, Key: job.key, Body: createReadStream(job.file) },
    }).done();
    outcome = { files: 1, bytes: size, failed: 0, skipped: 0 };
  } else {
    const bridge = createBridge({
      config: validateConfig(job.config, "bench", { allowFileCredentials: true }),
      s3: client,
      credentials: createCredentialResolver({ allowFiles: true, s3: client }),
      logger: silentLogger,
      requestId: "bench",
    });
    const report = job.kind === "bridge-push" ? await bridge.push(job.items) : await bridge.pull(job.streams);
    outcome = summarise(report);
  }
  const elapsedMs = performance.now() - t0;
  const cpuS = cpuSeconds() - cpu0;
  const peaks = memory.stop();
  client.destroy();
  return {
    elapsedMs,
    cpuS,
    bootCpuS,
    bootRssMiB,
    peaks,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    ...outcome,
  };
}

if (require.main === module) {
  readFile(process.argv[2] ?? "", "utf8")
    .then((text) => run(JSON.parse(text) as ChildJob))
    .then(
      (result) => {
        process.stdout.write(JSON.stringify(result) + "\n");
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(
          `bench child failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
        );
        process.exit(1);
      },
    );
}
