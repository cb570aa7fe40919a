// File metadata both ways: fs Stats as SFTP attributes and `ls -l` longnames, and SETSTAT/FSETSTAT attributes applied
// to a path or an open file.
import { constants as fsConstants, type Stats } from "node:fs";
import type { Attributes } from "ssh2";

export function attributesOf(st: Stats): Attributes {
  return {
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    atime: Math.floor(st.atimeMs / 1000),
    mtime: Math.floor(st.mtimeMs / 1000),
  };
}

/** The setters of a path or of an open file handle, so one function applies attributes to either. */
export interface AttributeTarget {
  truncate(size: number): Promise<void>;
  chmod(mode: number): Promise<void>;
  utimes(atime: number, mtime: number): Promise<void>;
  chown(uid: number, gid: number): Promise<void>;
}

/** In OpenSSH's order: size, permissions, times, owner. ssh2 leaves absent fields undefined. */
export async function applyAttributes(attrs: Partial<Attributes>, target: AttributeTarget): Promise<void> {
  if (typeof attrs.size === "number") await target.truncate(attrs.size);
  if (typeof attrs.mode === "number") await target.chmod(attrs.mode & 0o7777);
  if (typeof attrs.atime === "number" && typeof attrs.mtime === "number") await target.utimes(attrs.atime, attrs.mtime);
  if (typeof attrs.uid === "number" && typeof attrs.gid === "number") await target.chown(attrs.uid, attrs.gid);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const SIX_MONTHS_MS = 182 * 24 * 3600 * 1000;

/** `ls -l` style, as OpenSSH's sftp-server writes it; clients such as ssh2-sftp-client parse type and rights from it. */
export function longnameOf(name: string, st: Stats, now: number): string {
  const date = new Date(st.mtimeMs);
  const day = String(date.getDate()).padStart(2);
  const recent = Math.abs(now - st.mtimeMs) < SIX_MONTHS_MS;
  const when = recent
    ? `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`
    : ` ${date.getFullYear()}`;
  const owner = String(st.uid).padEnd(8);
  const group = String(st.gid).padEnd(8);
  const size = String(st.size).padStart(8);
  return `${modeString(st.mode)} ${String(st.nlink).padStart(3)} ${owner} ${group} ${size} ${MONTHS[date.getMonth()]} ${day} ${when} ${name}`;
}

function modeString(mode: number): string {
  const type = mode & fsConstants.S_IFMT;
  const kind =
    type === fsConstants.S_IFDIR
      ? "d"
      : type === fsConstants.S_IFLNK
        ? "l"
        : type === fsConstants.S_IFIFO
          ? "p"
          : type === fsConstants.S_IFSOCK
            ? "s"
            : type === fsConstants.S_IFCHR
              ? "c"
              : type === fsConstants.S_IFBLK
                ? "b"
                : "-";
  const triplet = (shift: number, special: number, specialChar: string): string => {
    const bits = (mode >> shift) & 7;
    const x = bits & 1;
    const execute = mode & special ? (x ? specialChar : specialChar.toUpperCase()) : x ? "x" : "-";
    return `${bits & 4 ? "r" : "-"}${bits & 2 ? "w" : "-"}${execute}`;
  };
  return kind + triplet(6, 0o4000, "s") + triplet(3, 0o2000, "s") + triplet(0, 0o1000, "t");
}
