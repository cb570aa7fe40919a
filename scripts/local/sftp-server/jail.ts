// Paths: the client sees the root as "/". Lexically, ".." may never climb above "/", and every path's symlinks must
// resolve inside the root. The checks and the operation are not atomic; clients cannot create symlinks, so only
// someone with local access to the root could race them, which is acceptable for a test and development server.
import { readlink, realpath } from "node:fs/promises";
import path from "node:path";
import { utils } from "ssh2";
import { errnoOf, SftpStatusError } from "./status";

const { STATUS_CODE } = utils.sftp;

/** Symlink hops followed while checking a path, as Linux's MAXSYMLINKS. */
const MAX_SYMLINK_HOPS = 40;

export class Jail {
  constructor(readonly root: string) {}

  /** Normalises a client path (relative ones start at "/", the home directory) to an absolute virtual path. */
  virtual(clientPath: string, op: string): string {
    if (clientPath.includes("\0")) throw new SftpStatusError(STATUS_CODE.BAD_MESSAGE, `${op}: path contains NUL`);
    const parts: string[] = [];
    for (const part of clientPath.split("/")) {
      if (part === "" || part === ".") continue;
      if (part === "..") {
        if (parts.length === 0) {
          throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `${op} ${clientPath}: path climbs above the root`);
        }
        parts.pop();
      } else {
        parts.push(part);
      }
    }
    return `/${parts.join("/")}`;
  }

  lexical(virtualPath: string): string {
    return virtualPath === "/" ? this.root : path.join(this.root, ...virtualPath.slice(1).split("/"));
  }

  /** The virtual path of a real path inside the root. */
  toVirtual(realPath: string): string {
    const relative = path.relative(this.root, realPath);
    return relative === "" ? "/" : `/${relative.split(path.sep).join("/")}`;
  }

  inside(realPath: string): boolean {
    return (
      realPath === this.root || realPath.startsWith(this.root.endsWith(path.sep) ? this.root : this.root + path.sep)
    );
  }

  /**
   * The real path to operate on. `follow`: the operation follows a symlink in the last component (open, stat), so
   * the link's target must be inside too; otherwise only the directory holding the last component is checked (lstat,
   * unlink, rename).
   */
  async resolve(virtualPath: string, follow: boolean, op: string): Promise<string> {
    const lexical = this.lexical(virtualPath);
    if (lexical === this.root) return this.root;
    const resolved = follow
      ? await this.resolveExisting(lexical, 0)
      : path.join(await this.resolveExisting(path.dirname(lexical), 0), path.basename(lexical));
    const checked = follow ? resolved : path.dirname(resolved);
    if (!this.inside(checked)) {
      throw new SftpStatusError(STATUS_CODE.PERMISSION_DENIED, `${op} ${virtualPath}: resolves outside the root`);
    }
    return resolved;
  }

  /** realpath() that tolerates missing trailing components, and follows dangling symlinks to where they would create. */
  private async resolveExisting(realPath: string, hops: number): Promise<string> {
    try {
      return await realpath(realPath);
    } catch (err) {
      if (errnoOf(err) !== "ENOENT" || realPath === path.dirname(realPath)) throw err;
    }
    let target: string | undefined;
    try {
      target = await readlink(realPath);
    } catch (err) {
      const code = errnoOf(err);
      if (code !== "ENOENT" && code !== "EINVAL") throw err;
    }
    if (target !== undefined) {
      if (hops >= MAX_SYMLINK_HOPS) throw Object.assign(new Error("too many symlinks"), { code: "ELOOP" });
      return this.resolveExisting(path.resolve(path.dirname(realPath), target), hops + 1);
    }
    return path.join(await this.resolveExisting(path.dirname(realPath), hops), path.basename(realPath));
  }
}
