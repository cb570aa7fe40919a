// Putting files into place, with OpenSSH's two semantics: RENAME never replaces an existing target, the
// posix-rename@openssh.com extension does. Clients can tell the difference, so both are kept exact.
import { link, lstat, rename, unlink } from "node:fs/promises";
import { utils } from "ssh2";
import { refused } from "./faults";
import type { RequestHandlers, RequestScope } from "./request-scope";
import { errnoOf, SftpStatusError, withSubject } from "./status";

const { STATUS_CODE } = utils.sftp;

/** OpenSSH's RENAME: never replaces an existing target (link + unlink for files, so even a racing creator loses). */
async function renameNoReplace(s: RequestScope, reqid: number, fromPath: string, toPath: string): Promise<void> {
  const [from, to, fromReal, toReal] = await renamePaths(s, fromPath, toPath, "rename");
  if (s.faults.refuseRename) throw refused(`rename ${from} -> ${to}`);
  const exists = new SftpStatusError(STATUS_CODE.FAILURE, `rename ${from} -> ${to}: target exists`);
  if ((await lstat(fromReal)).isFile()) {
    let linked = true;
    try {
      await link(fromReal, toReal);
    } catch (err) {
      const code = errnoOf(err);
      if (code === "EEXIST") throw exists;
      // File systems without hard links: fall back to check-then-rename, as OpenSSH does.
      if (!["EPERM", "EXDEV", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EMLINK"].includes(code ?? "")) throw err;
      linked = false;
    }
    if (linked) {
      try {
        await unlink(fromReal);
      } catch (err) {
        await unlink(toReal).catch(() => undefined);
        throw err;
      }
      s.record.renamed(to);
      s.sftp.status(reqid, STATUS_CODE.OK);
      return;
    }
  }
  if (
    await lstat(toReal).then(
      () => true,
      () => false,
    )
  ) {
    throw exists;
  }
  await rename(fromReal, toReal);
  s.record.renamed(to);
  s.sftp.status(reqid, STATUS_CODE.OK);
}

/** posix-rename@openssh.com, once the extension's request is parsed: rename(2), replacing the target. */
export async function posixRename(
  s: RequestScope,
  reqid: number,
  name: string,
  fromPath: string,
  toPath: string,
): Promise<void> {
  const [from, to, fromReal, toReal] = await renamePaths(s, fromPath, toPath, name);
  if (s.faults.refusePosixRename) throw refused(`${name} ${from} -> ${to}`);
  await rename(fromReal, toReal).catch((err: unknown) => {
    throw withSubject(err, `${name} ${from} -> ${to}`);
  });
  s.record.renamed(to);
  s.sftp.status(reqid, STATUS_CODE.OK);
}

async function renamePaths(
  s: RequestScope,
  fromPath: string,
  toPath: string,
  op: string,
): Promise<[string, string, string, string]> {
  const from = s.files.virtual(fromPath, op);
  const to = s.files.virtual(toPath, op);
  if (from === "/" || to === "/") throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `${op}: the root stays`);
  return [from, to, await s.files.resolve(from, false, op), await s.files.resolve(to, false, op)];
}

export const renameRequests: RequestHandlers = {
  RENAME: renameNoReplace,
};
