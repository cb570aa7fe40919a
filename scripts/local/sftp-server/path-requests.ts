// Requests on a path rather than a handle: STAT, LSTAT, SETSTAT, REMOVE, REALPATH and READLINK.
import { chmod, chown, lstat, readlink, realpath, stat, truncate, unlink, utimes } from "node:fs/promises";
import path from "node:path";
import { type Attributes, utils } from "ssh2";
import { applyAttributes } from "./attributes";
import { refused, statAttributes } from "./faults";
import type { RequestHandlers, RequestScope } from "./request-scope";
import { errnoOf, SftpStatusError } from "./status";

const { STATUS_CODE } = utils.sftp;

async function statPath(s: RequestScope, reqid: number, clientPath: string, follow: boolean): Promise<void> {
  const op = follow ? "stat" : "lstat";
  const vpath = s.files.virtual(clientPath, op);
  const real = await s.files.resolve(vpath, follow, op);
  s.sftp.attrs(reqid, statAttributes(s.faults, follow ? await stat(real) : await lstat(real)));
}

async function setstat(s: RequestScope, reqid: number, clientPath: string, attrs: Partial<Attributes>): Promise<void> {
  const vpath = s.files.virtual(clientPath, "setstat");
  const real = await s.files.resolve(vpath, true, "setstat");
  await applyAttributes(attrs, {
    truncate: (size) => truncate(real, size),
    chmod: (mode) => chmod(real, mode),
    utimes: (atime, mtime) => utimes(real, atime, mtime),
    chown: (uid, gid) => chown(real, uid, gid),
  });
  s.sftp.status(reqid, STATUS_CODE.OK);
}

async function remove(s: RequestScope, reqid: number, clientPath: string): Promise<void> {
  const vpath = s.files.virtual(clientPath, "remove");
  if (s.faults.refuseRemove) throw refused(`remove ${vpath}`);
  await unlink(await s.files.resolve(vpath, false, "remove"));
  s.sftp.status(reqid, STATUS_CODE.OK);
}

/** Like OpenSSH: resolves symlinks, and only the last component may be missing. */
async function resolvePath(s: RequestScope, reqid: number, clientPath: string): Promise<void> {
  const files = s.files;
  const vpath = files.virtual(clientPath, "realpath");
  const lexical = files.lexical(vpath);
  let resolved: string;
  try {
    resolved = await realpath(lexical);
  } catch (err) {
    if (errnoOf(err) !== "ENOENT" || lexical === files.root) throw err;
    resolved = path.join(await realpath(path.dirname(lexical)), path.basename(lexical));
  }
  if (!files.inside(resolved)) {
    throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `realpath ${vpath}: resolves outside the root`);
  }
  // REALPATH replies carry a name only; OpenSSH sends empty attributes (flags 0), which ssh2 encodes from {}.
  s.sftp.name(reqid, [{ filename: files.toVirtual(resolved), longname: "", attrs: {} as Attributes }]);
}

async function readLink(s: RequestScope, reqid: number, clientPath: string): Promise<void> {
  const files = s.files;
  const vpath = files.virtual(clientPath, "readlink");
  const real = await files.resolve(vpath, false, "readlink");
  let target = await readlink(real);
  if (path.isAbsolute(target)) {
    if (!files.inside(target)) {
      throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `readlink ${vpath}: points outside the root`);
    }
    target = files.toVirtual(target);
  }
  s.sftp.name(reqid, [{ filename: target, longname: target, attrs: {} as Attributes }]);
}

export const pathRequests: RequestHandlers = {
  STAT: (s, reqid, clientPath: string) => statPath(s, reqid, clientPath, true),
  LSTAT: (s, reqid, clientPath: string) => statPath(s, reqid, clientPath, false),
  SETSTAT: setstat,
  REMOVE: remove,
  REALPATH: resolvePath,
  READLINK: readLink,
};
