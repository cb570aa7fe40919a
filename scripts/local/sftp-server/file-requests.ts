// Requests on file contents through a handle: OPEN, READ, WRITE, CLOSE (files and directories), FSTAT, FSETSTAT, and
// the fsync@openssh.com extension's work.
import { constants as fsConstants } from "node:fs";
import { open } from "node:fs/promises";
import { type Attributes, utils } from "ssh2";
import { applyAttributes } from "./attributes";
import { bytesToStore, corruptRead, droppedAfter, heldWrite, statAttributes } from "./faults";
import { type OpenFile, track } from "./handles";
import { MAX_READ_LENGTH } from "./limits";
import type { RequestHandlers, RequestScope } from "./request-scope";
import { SftpStatusError } from "./status";

const { OPEN_MODE, STATUS_CODE } = utils.sftp;

async function openFile(
  s: RequestScope,
  reqid: number,
  filename: string,
  pflags: number,
  attrs: Partial<Attributes>,
): Promise<void> {
  const vpath = s.files.virtual(filename, "open");
  const real = await s.files.resolve(vpath, true, "open");
  const readable = (pflags & OPEN_MODE.READ) !== 0;
  const writable = (pflags & OPEN_MODE.WRITE) !== 0;
  let flags = readable && writable ? fsConstants.O_RDWR : writable ? fsConstants.O_WRONLY : fsConstants.O_RDONLY;
  if (pflags & OPEN_MODE.CREAT) flags |= fsConstants.O_CREAT;
  if (pflags & OPEN_MODE.TRUNC) flags |= fsConstants.O_TRUNC;
  if (pflags & OPEN_MODE.EXCL) flags |= fsConstants.O_EXCL;
  if (pflags & OPEN_MODE.APPEND) flags |= fsConstants.O_APPEND;
  const mode = typeof attrs.mode === "number" ? attrs.mode & 0o7777 : 0o666;
  const fh = await open(real, flags, mode);
  try {
    // Linux opens directories read-only without complaint; SFTP clients expect a file here.
    if ((await fh.stat()).isDirectory())
      throw new SftpStatusError(STATUS_CODE.FAILURE, `open ${vpath}: is a directory`);
  } catch (err) {
    await fh.close();
    throw err;
  }
  if (s.handles.closed) {
    await fh.close();
    return;
  }
  const entry: OpenFile = {
    kind: "file",
    path: vpath,
    fh,
    writable,
    inflight: new Set(),
    bytesWritten: 0,
    bytesMoved: 0,
  };
  s.sftp.handle(reqid, s.handles.add(entry));
}

async function read(s: RequestScope, reqid: number, handle: Buffer, offset: number, length: number): Promise<void> {
  const file = s.handles.file(handle);
  await track(file, async () => {
    const wanted = Math.min(length, MAX_READ_LENGTH);
    const buffer = Buffer.allocUnsafe(wanted);
    const { bytesRead } = await file.fh.read(buffer, 0, wanted, offset);
    if (bytesRead === 0 && wanted > 0) {
      s.sftp.status(reqid, STATUS_CODE.EOF);
      return;
    }
    if (droppedAfter(s.faults, file, bytesRead, s)) return;
    const window = (s.sftp as unknown as { outgoing?: { window?: number } }).outgoing?.window;
    if (typeof window === "number") s.record.sawClientWindow(window);
    corruptRead(s.faults, buffer, bytesRead);
    s.sftp.data(reqid, bytesRead === wanted ? buffer : buffer.subarray(0, bytesRead));
  });
}

async function write(s: RequestScope, reqid: number, handle: Buffer, offset: number, data: Buffer): Promise<void> {
  const file = s.handles.file(handle);
  await heldWrite(s.faults, () => s.record.observed.openWriteHandles);
  const kept = bytesToStore(s.faults, file, offset, data, s.log);
  file.bytesWritten += data.length;
  if (droppedAfter(s.faults, file, data.length, s)) return;
  await track(file, async () => {
    let done = 0;
    while (done < kept) {
      const { bytesWritten } = await file.fh.write(data, done, kept - done, offset + done);
      done += bytesWritten;
    }
  });
  s.sftp.status(reqid, STATUS_CODE.OK);
}

async function close(s: RequestScope, reqid: number, handle: Buffer): Promise<void> {
  await s.handles.close(handle);
  s.sftp.status(reqid, STATUS_CODE.OK);
}

async function fstat(s: RequestScope, reqid: number, handle: Buffer): Promise<void> {
  const file = s.handles.file(handle);
  await Promise.allSettled([...file.inflight]);
  s.sftp.attrs(reqid, statAttributes(s.faults, await file.fh.stat()));
}

async function fsetstat(s: RequestScope, reqid: number, handle: Buffer, attrs: Partial<Attributes>): Promise<void> {
  const file = s.handles.file(handle);
  await Promise.allSettled([...file.inflight]);
  const fh = file.fh;
  await applyAttributes(attrs, {
    truncate: (size) => fh.truncate(size),
    chmod: (mode) => fh.chmod(mode),
    utimes: (atime, mtime) => fh.utimes(atime, mtime),
    chown: (uid, gid) => fh.chown(uid, gid),
  });
  s.sftp.status(reqid, STATUS_CODE.OK);
}

/** fsync@openssh.com, once the extension's request is parsed. */
export async function fsync(s: RequestScope, reqid: number, handle: Buffer): Promise<void> {
  const file = s.handles.file(handle);
  await Promise.allSettled([...file.inflight]);
  await file.fh.sync();
  s.sftp.status(reqid, STATUS_CODE.OK);
}

export const fileRequests: RequestHandlers = {
  OPEN: openFile,
  READ: read,
  WRITE: write,
  CLOSE: close,
  FSTAT: fstat,
  FSETSTAT: fsetstat,
};
