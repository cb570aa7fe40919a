import type { Hash } from "node:crypto";
import { Readable } from "node:stream";
import type { SFTPWrapper } from "ssh2";
import type { Stats } from "ssh2";
import { SftpError, VerifyError } from "../errors";
import { maxReadLen, maxWriteLen } from "./ssh2-tuning";

/**
 * Bulk data on ssh2's SFTP channel with many requests in flight: ssh2's own streams keep a single request in flight,
 * which caps a transfer far below the link (docs/field-notes.md).
 */

/**
 * The SSH channel window we grant the server, and the bytes of READ and WRITE requests a transfer keeps outstanding.
 * A transfer moves at most (bytes in flight) per round trip: 8 MiB is 80 MB/s at 100 ms. ssh2 grants only 2 MiB and
 * tops it up when half is used (about 1 MiB per round trip, 10 MB/s at 100 ms); widenReceiveWindow lifts that.
 */
export const DEFAULT_WINDOW_BYTES = 16 * 1024 * 1024;
const MAX_WRITE_BYTES_IN_FLIGHT = 8 * 1024 * 1024;
const MAX_READ_BYTES_IN_FLIGHT = 4 * 1024 * 1024;
/**
 * A partner this far away (the quickest READ answer, in ms) gets more READ bytes in flight: up to three quarters of the
 * window. On loopback more in flight only costs (a 128 MiB read: 245 MB/s with 4 MiB, 140 MB/s with 8 MiB), and a
 * busy machine can delay a loopback answer past 10 ms; 4 MiB per round trip still carries 160 MB/s at 25 ms.
 */
const DISTANT_MS = 25;

/**
 * Writes a byte stream at increasing offsets with many WRITE requests of the server's maximum size in flight, bounded
 * by bytes in flight. ssh2 copies each request into its own packet, so source buffers are free once `write` returns.
 */
export async function pipelinedWrite(
  sftp: SFTPWrapper,
  handle: Buffer,
  source: AsyncIterable<Uint8Array>,
  lost: Promise<never>,
  timeoutMs: number,
  hash?: Hash,
): Promise<number> {
  const chunk = maxWriteLen(sftp);
  let offset = 0;
  let inFlight = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const settle = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  lost.catch((err: unknown) => {
    failure ??= err;
    settle();
  });
  // A server that stops answering (but keeps the connection open) must not hang the batch: no progress within the
  // operation timeout fails the write.
  const waitFor = async (condition: () => boolean) => {
    while (!condition()) {
      const timer = setTimeout(() => {
        failure ??= new SftpError("SFTP_OPERATION_TIMEOUT", `sftp write: no answer within ${timeoutMs} ms`, {
          retryable: true,
        });
        settle();
      }, timeoutMs);
      await new Promise<void>((r) => (wake = r));
      clearTimeout(timer);
    }
  };

  const send = async (piece: Buffer) => {
    await waitFor(() => failure !== undefined || inFlight < MAX_WRITE_BYTES_IN_FLIGHT);
    if (failure !== undefined) throw failure;
    const length = piece.length;
    inFlight += length;
    sftp.write(handle, piece, 0, length, offset, (err) => {
      inFlight -= length;
      if (err && failure === undefined) failure = err;
      settle();
    });
    offset += length;
  };
  // Source chunks (64 KiB or less from an S3 body) are gathered into full-size WRITEs: a 64 KiB WRITE goes out as
  // two full SSH packets and a 29-byte one, a 255 KiB WRITE as eight; fewer packets, fewer requests, less CPU.
  const staging = Buffer.allocUnsafeSlow(chunk);
  let staged = 0;
  for await (const data of source) {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    hash?.update(buf);
    let at = 0;
    while (at < buf.length) {
      if (staged === 0 && buf.length - at >= chunk) {
        await send(buf.subarray(at, at + chunk));
        at += chunk;
        continue;
      }
      const n = Math.min(chunk - staged, buf.length - at);
      buf.copy(staging, staged, at, at + n);
      staged += n;
      at += n;
      // ssh2 copies a WRITE into its own packet before write() returns, so the staging buffer is free again.
      if (staged === chunk) {
        await send(staging);
        staged = 0;
      }
    }
  }
  if (staged > 0) await send(staging.subarray(0, staged));
  await waitFor(() => failure !== undefined || inFlight === 0);
  if (failure !== undefined) throw failure;
  return offset;
}

/**
 * A Readable over a remote file with up to MAX_READ_BYTES_IN_FLIGHT of READs outstanding (more for a distant server),
 * delivered in order.
 */
export class PipelinedReader extends Readable {
  private handle: Buffer | undefined;
  private opening = false;
  private nextOffset = 0;
  private delivered = 0;
  private inFlight = 0;
  private inFlightBytes = 0;
  private wanting = false;
  private ended = false;
  private readonly chunks = new Map<number, Buffer>();
  private limit = MAX_READ_BYTES_IN_FLIGHT;
  /** The quickest answer so far: a READ issued with nothing ahead of it comes back in about one round trip. */
  private quickestMs = Infinity;

  constructor(
    private readonly sftp: SFTPWrapper,
    private readonly path: string,
    private readonly size: number,
    private readonly timeoutMs: number,
    private readonly wrapError: (op: string, err: unknown) => Error,
    private readonly windowBytes: number = DEFAULT_WINDOW_BYTES,
    /**
     * When given, the file must still have this size and mtime once read (and no earlier than `notBefore`), or the
     * stream fails with a VerifyError whose context has `changed: true`.
     */
    private readonly unchanged?: { size: number; mtimeMs: number; notBefore?: number },
  ) {
    super({ highWaterMark: 4 * 1024 * 1024 });
  }

  /**
   * FSTAT sent right behind the last READ, on the same handle: the server answers it after those reads, so it shows
   * the file as it was when read, and costs no round trip of its own.
   */
  private finalStat: Promise<Stats | Error> | undefined;
  private finalStatTimer: NodeJS.Timeout | undefined;

  private idle: NodeJS.Timeout | undefined;

  /** Restarted on every answer; fires when requests are outstanding and the server has gone quiet. */
  private watch(): void {
    clearTimeout(this.idle);
    if (this.inFlight === 0 || this.destroyed) return;
    this.idle = setTimeout(
      () =>
        this.destroy(
          new SftpError("SFTP_OPERATION_TIMEOUT", `sftp read ${this.path}: no answer within ${this.timeoutMs} ms`, {
            retryable: true,
          }),
        ),
      this.timeoutMs,
    );
  }

  override _read(): void {
    this.wanting = true;
    if (!this.handle) {
      if (this.opening) return;
      this.opening = true;
      this.sftp.open(this.path, "r", (err, handle) => {
        if (err) return this.destroy(this.wrapError("open", err));
        this.handle = handle;
        this.pump();
      });
      return;
    }
    this.pump();
  }

  private pump(): void {
    if (this.destroyed || !this.handle) return;
    if (this.delivered >= this.size) {
      if (this.ended) return;
      this.ended = true;
      if (!this.finalStat) return void this.push(null);
      void this.finalStat.then((st) => {
        if (this.destroyed) return;
        if (st instanceof Error) return this.destroy(this.wrapError("fstat", st));
        const expected = this.unchanged as { size: number; mtimeMs: number };
        if (Number(st.size) === expected.size && st.mtime * 1000 === expected.mtimeMs) return void this.push(null);
        this.destroy(
          new VerifyError(
            `pull ${this.path}: the file changed while it was read (size ${expected.size} -> ${Number(st.size)}); left for the next run`,
            { path: this.path, changed: true },
          ),
        );
      });
      return;
    }
    const len = maxReadLen(this.sftp);
    // Refill in batches once a quarter of the bytes are answered, not one request per answer: each batch is one
    // writev and one wake-up of the server, where a request per answer cost a syscall per 255 KiB read
    // (docs/benchmarks.md). Counted in bytes, so servers with small READs (ProFTPD: 32 KiB) keep as much in flight.
    const refill = this.inFlightBytes <= (this.limit * 3) / 4;
    while (refill && this.wanting && this.inFlightBytes + len <= this.limit && this.nextOffset < this.size) {
      const start = this.nextOffset;
      const want = Math.min(len, this.size - start);
      this.nextOffset += want;
      this.inFlight++;
      this.inFlightBytes += want;
      this.readRange(start, want);
    }
    if (this.unchanged && !this.finalStat && this.nextOffset >= this.size) {
      const handle = this.handle;
      const fstat = () => this.sftp.fstat(handle, (err, st) => settle(err ? err : st));
      let settle: (result: Stats | Error) => void = () => undefined;
      this.finalStat = new Promise((resolve) => (settle = resolve));
      // Right behind the last READ, or once the file has had to stay unchanged long enough, whichever is later.
      const wait = (this.unchanged.notBefore ?? 0) - Date.now();
      if (wait > 0) this.finalStatTimer = setTimeout(fstat, wait);
      else fstat();
    }
    this.watch();
  }

  private readRange(start: number, want: number, parts: Buffer[] = [], got = 0): void {
    const buf = Buffer.allocUnsafe(want - got);
    const sent = performance.now();
    this.sftp.read(this.handle as Buffer, buf, 0, buf.length, start + got, (err, bytesRead) => {
      if (this.destroyed) return;
      this.watch();
      this.quickestMs = Math.min(this.quickestMs, performance.now() - sent);
      if (this.quickestMs >= DISTANT_MS) {
        this.limit = Math.max(MAX_READ_BYTES_IN_FLIGHT, Math.floor((this.windowBytes * 3) / 4));
      }
      if (err || bytesRead === 0) {
        // EOF before the size we listed: the file shrank or was replaced while we read it.
        return this.destroy(
          err
            ? this.wrapError("read", err)
            : this.wrapError("read", new Error(`file ended at ${start + got} of ${this.size} bytes`)),
        );
      }
      parts.push(buf.subarray(0, bytesRead));
      got += bytesRead;
      // Servers may answer short; ask for the rest of this range before handing it on, to keep order simple.
      if (got < want) return this.readRange(start, want, parts, got);
      this.inFlight--;
      this.inFlightBytes -= want;
      this.chunks.set(start, parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
      this.flush();
    });
  }

  private flush(): void {
    let next = this.chunks.get(this.delivered);
    while (next) {
      this.chunks.delete(this.delivered);
      this.delivered += next.length;
      this.wanting = this.push(next);
      next = this.chunks.get(this.delivered);
    }
    this.pump();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    clearTimeout(this.idle);
    clearTimeout(this.finalStatTimer);
    const handle = this.handle;
    this.handle = undefined;
    // Close without waiting: a server that went quiet would hold the error back until the keepalive gives up, and
    // a lost connection answers nothing at all.
    if (handle && !(err instanceof SftpError && err.code === "SFTP_CONNECT_FAILED")) {
      try {
        this.sftp.close(handle, () => undefined);
      } catch {
        // The channel is already gone; nothing to close.
      }
    }
    cb(err);
  }
}
