// Requests on directories: OPENDIR and READDIR (listings in OpenSSH's form), MKDIR and RMDIR.
import { lstat, mkdir, opendir, rmdir } from "node:fs/promises";
import path from "node:path";
import { type Attributes, type FileEntry, utils } from "ssh2";
import { attributesOf, longnameOf } from "./attributes";
import type { RequestHandlers, RequestScope } from "./request-scope";
import { SftpStatusError } from "./status";

const { STATUS_CODE } = utils.sftp;

/** Names per READDIR reply (OpenSSH sends 100). */
const READDIR_BATCH = 100;

async function openDirectory(s: RequestScope, reqid: number, clientPath: string): Promise<void> {
  const vpath = s.files.virtual(clientPath, "opendir");
  const real = await s.files.resolve(vpath, true, "opendir");
  const dir = await opendir(real, { bufferSize: READDIR_BATCH });
  if (s.handles.closed) {
    await dir.close();
    return;
  }
  s.sftp.handle(reqid, s.handles.add({ kind: "dir", path: vpath, real, dir, sentDots: false }));
}

async function readDirectory(s: RequestScope, reqid: number, handle: Buffer): Promise<void> {
  const entry = s.handles.directory(handle);
  const names: Array<{ name: string; real: string }> = [];
  if (!entry.sentDots) {
    entry.sentDots = true;
    // OpenSSH lists "." and ".."; above the root, ".." is the root itself.
    names.push({ name: ".", real: entry.real });
    names.push({ name: "..", real: entry.path === "/" ? entry.real : path.dirname(entry.real) });
  }
  while (names.length < READDIR_BATCH) {
    const dirent = await entry.dir.read();
    if (dirent === null) break;
    names.push({ name: dirent.name, real: path.join(entry.real, dirent.name) });
  }
  if (names.length === 0) {
    s.sftp.status(reqid, STATUS_CODE.EOF);
    return;
  }
  const now = Date.now();
  const listed = await Promise.all(
    names.map(async ({ name, real }): Promise<FileEntry | undefined> => {
      // An entry removed since the directory was read is left out rather than failing the whole batch.
      const st = await lstat(real).catch(() => undefined);
      return st && { filename: name, longname: longnameOf(name, st, now), attrs: attributesOf(st) };
    }),
  );
  s.sftp.name(
    reqid,
    listed.filter((e): e is FileEntry => e !== undefined),
  );
}

async function makeDirectory(
  s: RequestScope,
  reqid: number,
  clientPath: string,
  attrs: Partial<Attributes>,
): Promise<void> {
  const vpath = s.files.virtual(clientPath, "mkdir");
  const mode = typeof attrs.mode === "number" ? attrs.mode & 0o7777 : 0o777;
  await mkdir(await s.files.resolve(vpath, false, "mkdir"), { mode });
  s.sftp.status(reqid, STATUS_CODE.OK);
}

async function removeDirectory(s: RequestScope, reqid: number, clientPath: string): Promise<void> {
  const vpath = s.files.virtual(clientPath, "rmdir");
  if (vpath === "/") throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, "rmdir /: the root stays");
  await rmdir(await s.files.resolve(vpath, false, "rmdir"));
  s.sftp.status(reqid, STATUS_CODE.OK);
}

export const directoryRequests: RequestHandlers = {
  OPENDIR: openDirectory,
  READDIR: readDirectory,
  MKDIR: makeDirectory,
  RMDIR: removeDirectory,
};
