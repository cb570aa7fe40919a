// How failures become SFTP status replies. Clients see the operation and virtual paths only: fs error messages carry
// real paths, which must not leak, so fs errors are reduced to their code and described here.
import { utils } from "ssh2";

const { STATUS_CODE } = utils.sftp;

/** A failure that already knows its SFTP status and the message the client gets. */
export class SftpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** OpenSSH's errno_to_portable(). */
export function statusOfErrno(code: string): number {
  switch (code) {
    case "ENOENT":
    case "ENOTDIR":
    case "EBADF":
    case "ELOOP":
      return STATUS_CODE.NO_SUCH_FILE;
    case "EPERM":
    case "EACCES":
    case "EFAULT":
      return STATUS_CODE.PERMISSION_DENIED;
    case "ENAMETOOLONG":
    case "EINVAL":
      return STATUS_CODE.BAD_MESSAGE;
    case "ENOSYS":
      return STATUS_CODE.OP_UNSUPPORTED;
    default:
      return STATUS_CODE.FAILURE;
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  EEXIST: "file exists",
  ENOTEMPTY: "directory not empty",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "file name too long",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
  EXDEV: "cross-device link",
  EINVAL: "invalid argument",
  EBUSY: "resource busy",
  EMFILE: "too many open files",
};

export function describeErrno(code: string | undefined): string {
  if (code === undefined) return "internal error";
  return ERRNO_TEXT[code] ?? code;
}

/** An fs error as a status whose message names the operation and virtual paths (never the real ones). */
export function withSubject(err: unknown, subject: string): unknown {
  const code = errnoOf(err);
  return code === undefined ? err : new SftpStatusError(statusOfErrno(code), `${subject}: ${describeErrno(code)}`);
}
