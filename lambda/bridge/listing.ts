import { posix } from "node:path";
import type { RemoteFile, SftpSession } from "./sftp";

/**
 * The files under a remote folder, breadth first; with `recursive`, below its subfolders too, except `skipDirs` (a
 * pull's done dir). Links and special files are left out: only regular files are ever transferred.
 */
export async function listFiles(
  session: SftpSession,
  root: string,
  recursive: boolean,
  skipDirs: string[] = [],
): Promise<RemoteFile[]> {
  const files: RemoteFile[] = [];
  const pending = [root];
  while (pending.length) {
    const dir = pending.shift() as string;
    for (const entry of await session.list(dir)) {
      if (entry.type === "dir") {
        if (recursive && !skipDirs.includes(posix.normalize(entry.path))) pending.push(entry.path);
      } else if (entry.type === "file") {
        files.push(entry);
      }
    }
  }
  return files;
}
