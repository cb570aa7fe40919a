// One channel's open files and directories, by the 4-byte handle the client holds. Requests on a handle run
// concurrently (clients pipeline READ/WRITE with positions, so pread/pwrite order does not matter); FSTAT, FSETSTAT,
// fsync and CLOSE wait for the handle's earlier READ/WRITEs, so results are as if in order.
import type { Dir } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { utils } from "ssh2";
import type { Recorder } from "./observed";
import { SftpStatusError } from "./status";

const { STATUS_CODE } = utils.sftp;

export interface OpenFile {
  kind: "file";
  path: string;
  fh: FileHandle;
  writable: boolean;
  inflight: Set<Promise<void>>;
  bytesWritten: number;
  bytesMoved: number;
}

export interface OpenDirectory {
  kind: "dir";
  path: string;
  real: string;
  dir: Dir;
  sentDots: boolean;
}

export type OpenEntry = OpenFile | OpenDirectory;

/** The table also keeps the server-wide gauge of files open for writing, which every way out of the table lowers. */
export class HandleTable {
  private readonly entries = new Map<number, OpenEntry>();
  private nextHandle = 0;
  private disposed: Promise<void> | undefined;

  constructor(private readonly record: Recorder) {}

  /** True once the channel is gone: an OPEN or OPENDIR finishing now must close what it opened instead of adding it. */
  get closed(): boolean {
    return this.disposed !== undefined;
  }

  add(entry: OpenEntry): Buffer {
    if (entry.kind === "file" && entry.writable) this.record.writeHandleOpened();
    const id = this.nextHandle;
    this.nextHandle = (this.nextHandle + 1) % 2 ** 32;
    this.entries.set(id, entry);
    const handle = Buffer.allocUnsafe(4);
    handle.writeUInt32BE(id, 0);
    return handle;
  }

  entry(handle: Buffer): OpenEntry {
    const entry = this.entries.get(handleId(handle));
    if (entry === undefined) throw new SftpStatusError(STATUS_CODE.FAILURE, "invalid handle");
    return entry;
  }

  file(handle: Buffer): OpenFile {
    const entry = this.entry(handle);
    if (entry.kind !== "file") throw new SftpStatusError(STATUS_CODE.FAILURE, `${entry.path}: not an open file`);
    return entry;
  }

  directory(handle: Buffer): OpenDirectory {
    const entry = this.entry(handle);
    if (entry.kind !== "dir") throw new SftpStatusError(STATUS_CODE.FAILURE, `${entry.path}: not an open directory`);
    return entry;
  }

  /** The virtual path behind a handle, for error messages. */
  pathOf(handle: Buffer): string | undefined {
    return this.entries.get(handleId(handle))?.path;
  }

  /** CLOSE: forgets the handle at once, then closes the file once its READ/WRITEs have finished. */
  async close(handle: Buffer): Promise<void> {
    const entry = this.entry(handle);
    this.entries.delete(handleId(handle));
    if (entry.kind === "file" && entry.writable) this.record.writeHandleClosed();
    await closeEntry(entry);
  }

  /** Closes every open file and directory (the channel or connection is gone). */
  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      const entries = [...this.entries.values()];
      this.entries.clear();
      for (const entry of entries) if (entry.kind === "file" && entry.writable) this.record.writeHandleClosed();
      await Promise.allSettled(entries.map((entry) => closeEntry(entry)));
    })();
    return this.disposed;
  }
}

/** Runs a READ/WRITE on a handle so later FSTAT/CLOSE can wait for it. */
export async function track(file: OpenFile, work: () => Promise<void>): Promise<void> {
  const running = work();
  file.inflight.add(running);
  try {
    await running;
  } finally {
    file.inflight.delete(running);
  }
}

function handleId(handle: Buffer): number {
  return handle.length === 4 ? handle.readUInt32BE(0) : -1;
}

async function closeEntry(entry: OpenEntry): Promise<void> {
  if (entry.kind === "file") {
    await Promise.allSettled([...entry.inflight]);
    await entry.fh.close();
  } else {
    await entry.dir.close().catch((err: unknown) => {
      if ((err as { code?: string }).code !== "ERR_DIR_CLOSED") throw err;
    });
  }
}
