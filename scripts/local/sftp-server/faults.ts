// Fault injection: the switches, and what each does to a request. The request handlers ask here at the point where a
// fault applies, so every switch is read on every request and can be flipped while clients are connected.
import type { Stats } from "node:fs";
import { type Attributes, utils } from "ssh2";
import { attributesOf } from "./attributes";
import type { OpenFile } from "./handles";
import { SftpStatusError } from "./status";

const { STATUS_CODE } = utils.sftp;

/** Fault switches, read on every request: flip them at runtime through `EmbeddedSftpServer.faults`. */
export interface SftpFaults {
  /** Answer plain RENAME with PERMISSION_DENIED, as servers that forbid renaming do. */
  refuseRename: boolean;
  /** Answer posix-rename@openssh.com with PERMISSION_DENIED (it stays advertised, as on servers that deny it by policy). */
  refusePosixRename: boolean;
  /** Answer REMOVE with PERMISSION_DENIED (a pull that cannot delete what it fetched). */
  refuseRemove?: boolean;
  /** Per open file: a WRITE that would take the bytes written through this handle past N gets FAILURE. */
  failWriteAfterBytes?: number;
  /** Per open file: once more than N bytes were read or written through one handle, the TCP connection is destroyed. */
  dropConnectionAfterBytes?: number;
  /**
   * WRITE data for file offsets at or past N is answered OK but never stored, as by a server that loses data silently
   * (a full disk it does not report): only comparing sizes afterwards can tell.
   */
  discardWritesPastOffset?: number;
  /**
   * STAT, LSTAT and FSTAT of regular files report the size plus N, while listings keep the true size: a file that
   * seems to change between two looks, or a server that misreports sizes.
   */
  statSizeOffset?: number;
  /** Wait this long before handling each SFTP request (a slow or distant server). */
  delayMs?: number;
  /** READ answers carry their first byte flipped: a server (or disk) that corrupts what it serves. */
  corruptReads?: boolean;
  /**
   * WRITE requests wait until this many files are open for writing (or HOLD_WRITES_MS passes): files a client writes
   * in parallel are then all open at once, however the machine's load schedules the client, so a test of its
   * concurrency does not depend on timing.
   */
  holdWritesUntilOpen?: number;
}

/** How long holdWritesUntilOpen holds a WRITE at most: a client that never opens that many files is not stuck. */
export const HOLD_WRITES_MS = 2_000;

/** holdWritesUntilOpen: resolves once `openForWriting()` reaches the number, or after HOLD_WRITES_MS. */
export async function heldWrite(faults: SftpFaults, openForWriting: () => number): Promise<void> {
  const until = Date.now() + HOLD_WRITES_MS;
  while (faults.holdWritesUntilOpen && openForWriting() < faults.holdWritesUntilOpen && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** All off unless the caller switched them on. */
export function initialFaults(given: Partial<SftpFaults> | undefined): SftpFaults {
  return { refuseRename: false, refusePosixRename: false, ...given };
}

/** delayMs: runs the request's handler after the delay, or at once. */
export function delayed(faults: SftpFaults, run: () => void): void {
  const delay = faults.delayMs ?? 0;
  if (delay > 0) setTimeout(run, delay);
  else run();
}

/** The answer of a request that a refuse* switch denies; `subject` names the operation and its virtual paths. */
export function refused(subject: string): SftpStatusError {
  return new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `${subject}: refused (injected fault)`);
}

/**
 * failWriteAfterBytes and discardWritesPastOffset for one WRITE: how many of its bytes to store, or throws the injected
 * failure.
 */
export function bytesToStore(
  faults: SftpFaults,
  file: OpenFile,
  offset: number,
  data: Buffer,
  log: (line: string) => void,
): number {
  const limit = faults.failWriteAfterBytes;
  if (limit !== undefined && file.bytesWritten + data.length > limit) {
    throw new SftpStatusError(STATUS_CODE.FAILURE, `write ${file.path}: refused past ${limit} bytes (injected fault)`);
  }
  const discardAfter = faults.discardWritesPastOffset;
  // By offset, not by arrival: clients pipeline writes out of order, and the stored file must end at N either way.
  const kept = discardAfter === undefined ? data.length : Math.min(data.length, Math.max(0, discardAfter - offset));
  // Only the write holding byte N logs: one line per file rather than one per discarded write.
  if (discardAfter !== undefined && offset <= discardAfter && discardAfter < offset + data.length)
    log(`write ${file.path}: dropping bytes from offset ${discardAfter} (injected fault)`);
  return kept;
}

/**
 * dropConnectionAfterBytes: counts the bytes moved through a handle; true when the connection was destroyed instead
 * of answering.
 */
export function droppedAfter(
  faults: SftpFaults,
  file: OpenFile,
  bytes: number,
  io: { log: (line: string) => void; drop: () => void },
): boolean {
  file.bytesMoved += bytes;
  const limit = faults.dropConnectionAfterBytes;
  if (limit === undefined || file.bytesMoved <= limit) return false;
  io.log(`${file.path}: dropping the connection after ${limit} bytes (injected fault)`);
  io.drop();
  return true;
}

/** corruptReads: flips the first byte of a READ answer. */
export function corruptRead(faults: SftpFaults, buffer: Buffer, bytesRead: number): void {
  if (faults.corruptReads && bytesRead > 0) buffer[0] = (buffer[0] as number) ^ 0xff;
}

/** A STAT-family answer, with the statSizeOffset fault applied. */
export function statAttributes(faults: SftpFaults, st: Stats): Attributes {
  const attrs = attributesOf(st);
  const offset = faults.statSizeOffset ?? 0;
  return offset !== 0 && st.isFile() ? { ...attrs, size: Math.max(0, attrs.size + offset) } : attrs;
}
