import { METRIC_NAMES, reportMetrics } from "../../lambda/bridge/metrics";
import { BridgeError, SftpError, VerifyError } from "../../lambda/bridge/errors";
import { StreamReportBuilder, runReport, type Direction, type StreamReport } from "../../lambda/bridge/report";

/** A report built the way the engine builds one: a builder per stream and direction, failures from real errors. */
function stream(
  name: string,
  direction: Direction,
  durationMs: number,
  build: (b: StreamReportBuilder) => void,
): StreamReport {
  let now = 1_000_000;
  const builder = new StreamReportBuilder(name, direction, () => now);
  build(builder);
  now += durationMs;
  return builder.build();
}

const moved = (source: string, bytes: number) => ({ source, destination: `/IN/${source}`, bytes, durationMs: 1 });
const connectTimeout = () =>
  new SftpError("SFTP_CONNECT_TIMEOUT", "sftp connect sftp.example:22: timed out after 20000 ms", { retryable: true });
// The wordings sftp.ts gives a request the server never answered (a write, a request through guard(), a read).
const operationTimeouts = [
  "sftp write: no answer within 60000 ms",
  "sftp stat /IN/a.xml: no answer within 60000 ms",
  "sftp read /OUT/b.xml: no answer within 800 ms",
].map((message) => new SftpError("SFTP_OPERATION_TIMEOUT", message, { retryable: true }));

describe("reportMetrics", () => {
  it("reports files, bytes, errors, connection timeouts and duration for each stream and direction", () => {
    const report = runReport(0, () => 0, [
      stream("psp", "push", 1234, (b) => {
        b.addMoved(moved("a.xml", 100));
        b.addMoved(moved("b.xml", 23));
        b.addSkipped({ source: "c.txt", reason: "pattern" });
        b.addFailed("d.xml", new VerifyError("sftp verify /IN/.d.xml.part: remote size 1, wrote 2", {}));
      }),
      stream("psp", "pull", 50, (b) => {
        b.addMoved(moved("e.xml", 7));
      }),
      stream("bank", "push", 20_000, (b) => {
        b.addFailed("f.xml", connectTimeout());
        b.addFailed("g.xml", connectTimeout());
      }),
    ]);

    expect(reportMetrics(report)).toEqual([
      {
        stream: "psp",
        direction: "push",
        values: {
          FilesMoved: 2,
          BytesMoved: 123,
          Errors: 1,
          ConnectionTimeouts: 0,
          FilesRefused: 0,
          EventsFailed: 0,
          DurationMs: 1234,
        },
      },
      {
        stream: "psp",
        direction: "pull",
        values: {
          FilesMoved: 1,
          BytesMoved: 7,
          Errors: 0,
          ConnectionTimeouts: 0,
          FilesRefused: 0,
          EventsFailed: 0,
          DurationMs: 50,
        },
      },
      {
        stream: "bank",
        direction: "push",
        // One timed-out connection failed both files: two errors, one connection timeout.
        values: {
          FilesMoved: 0,
          BytesMoved: 0,
          Errors: 2,
          ConnectionTimeouts: 1,
          FilesRefused: 0,
          EventsFailed: 0,
          DurationMs: 20_000,
        },
      },
    ]);
  });

  it("emits every metric name for a stream that did nothing, as zeros", () => {
    const [only] = reportMetrics(runReport(0, () => 0, [stream("idle", "pull", 0, () => undefined)]));
    expect(Object.keys(only!.values).sort()).toEqual([...METRIC_NAMES].sort());
    expect(Object.values(only!.values)).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });

  it.each(operationTimeouts.map((err) => [err.message, err]))(
    "counts a server that stopped answering an established connection (%s) as a connection timeout",
    (_, err) => {
      const [m] = reportMetrics(runReport(0, () => 0, [stream("psp", "push", 10, (b) => b.addFailed("x.bin", err))]));
      expect(m!.values).toMatchObject({ Errors: 1, ConnectionTimeouts: 1 });
    },
  );

  it("counts a connect timeout and a stall in the same stream once", () => {
    const report = runReport(0, () => 0, [
      stream("psp", "pull", 10, (b) => {
        b.addFailed("a.bin", operationTimeouts[0]);
        b.addFailed("b.bin", connectTimeout());
      }),
    ]);
    expect(reportMetrics(report)[0]!.values).toMatchObject({ Errors: 2, ConnectionTimeouts: 1 });
  });

  it.each([
    ["a refusal by the server", new SftpError("SFTP_OPERATION_FAILED", "sftp put /IN/a.xml: permission denied")],
    ["a dropped connection", new SftpError("SFTP_CONNECT_FAILED", "sftp sftp.example:22: connection lost")],
    ["a failed handshake", new SftpError("SFTP_CONNECT_FAILED", "sftp connect sftp.example:22: Handshake failed")],
    ["an auth failure", new SftpError("SFTP_AUTH_FAILED", "sftp connect sftp.example:22: authentication failed")],
    ["a deadline", new BridgeError("DEADLINE_REACHED", "push s3://b/k: not started, the invocation deadline is near")],
    // The code counts, never the wording.
    ["an S3 error worded alike", new BridgeError("S3_OPERATION_FAILED", "s3 get b/k: no answer within 60000 ms")],
    ["an SFTP failure worded alike", new SftpError("SFTP_OPERATION_FAILED", "sftp write: no answer within 60000 ms")],
  ])("does not count %s as a connection timeout", (_, err) => {
    const [m] = reportMetrics(runReport(0, () => 0, [stream("psp", "push", 10, (b) => b.addFailed("x", err))]));
    expect(m!.values).toMatchObject({ Errors: 1, ConnectionTimeouts: 0 });
  });
});

describe("FilesRefused", () => {
  it("counts files skipped for an unsafe name or an earlier delivery in the way, not ordinary skips", () => {
    const report = runReport(0, () => 0, [
      stream("psp", "pull", 10, (b) => {
        b.addSkipped({ source: "/OUT/back\\slash.txt", reason: "unsafe-name" });
        b.addSkipped({ source: "/OUT/new\\x0aline.txt", reason: "unsafe-name" });
        b.addSkipped({ source: "/OUT/report.csv", reason: "exists" });
        b.addSkipped({ source: "/OUT/young.csv", reason: "too-young" });
        b.addSkipped({ source: "/OUT/.tmp", reason: "ignored" });
      }),
    ]);
    expect(reportMetrics(report)[0]!.values).toMatchObject({ FilesRefused: 3, Errors: 0 });
  });
});
