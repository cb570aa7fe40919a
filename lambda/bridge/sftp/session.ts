import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import type { Client, SFTPWrapper, Stats } from "ssh2";
import type SftpClient from "ssh2-sftp-client";
import { BridgeError, SftpError, VerifyError, type ErrorContext } from "../errors";
import type { Logger } from "../logger";
import { NO_SUCH_FILE, opError, reason, sftpCode, withTimeout } from "./errors";
import { PipelinedReader, pipelinedWrite } from "./pipelined-io";
import type { ReadOptions, RemoteFile, SftpSession, SftpTarget, WriteOptions } from "./types";

/** One authenticated SFTP session: the operations the engine needs, each bounded by the operation timeout. */

const CLOSE_GRACE_MS = 2000;

function typeOf(longnameOrType: string): RemoteFile["type"] {
  if (longnameOrType === "-") return "file";
  if (longnameOrType === "d") return "dir";
  if (longnameOrType === "l") return "link";
  return "other";
}

function statToFile(path: string, st: Stats | SftpClient.FileStats): RemoteFile {
  const isDir = typeof st.isDirectory === "function" ? st.isDirectory() : Boolean(st.isDirectory);
  const isFile = typeof st.isFile === "function" ? st.isFile() : Boolean(st.isFile);
  const isLink =
    typeof st.isSymbolicLink === "function"
      ? st.isSymbolicLink()
      : Boolean((st as SftpClient.FileStats).isSymbolicLink);
  const mtime = "modifyTime" in st ? st.modifyTime : (st as Stats).mtime * 1000;
  return {
    path,
    name: posix.basename(path),
    type: isFile ? "file" : isDir ? "dir" : isLink ? "link" : "other",
    size: Number(st.size),
    mtimeMs: mtime,
  };
}

export class Ssh2Session implements SftpSession {
  private readonly made = new Set<string>();
  private readonly sftp: SFTPWrapper;
  private readonly readers = new Set<PipelinedReader>();
  /** Rejects once the connection is gone, so nothing waits for answers that cannot come (ssh2 would leave them pending). */
  private readonly lost: Promise<never>;
  private gone: Error | undefined;
  readonly supportsPosixRename: boolean;

  constructor(
    readonly target: SftpTarget,
    private readonly client: SftpClient,
    private readonly ssh: Client,
    readonly fingerprint: string,
    private readonly logger: Logger,
  ) {
    this.sftp = (client as unknown as { sftp: SFTPWrapper }).sftp;
    const extensions = (this.sftp as unknown as { _extensions?: Record<string, unknown> })._extensions ?? {};
    this.supportsPosixRename = "posix-rename@openssh.com" in extensions;
    this.lost = new Promise<never>((_, reject) => {
      const onGone = () => {
        if (this.gone) return;
        this.gone = new SftpError("SFTP_CONNECT_FAILED", `sftp ${target.host}:${target.port}: connection lost`, {
          context: { stream: target.stream, host: target.host },
          retryable: true,
        });
        for (const reader of this.readers) reader.destroy(this.gone);
        reject(this.gone);
      };
      ssh.once("close", onGone);
      ssh.once("end", onGone);
    });
    this.lost.catch(() => undefined);
  }

  /** An SFTP request bounded by the operation timeout and by the life of the connection. */
  private guard<T>(promise: Promise<T>, describe: () => string): Promise<T> {
    if (this.gone) {
      promise.catch(() => undefined);
      return Promise.reject(this.gone);
    }
    return withTimeout(Promise.race([promise, this.lost]), this.target.operationTimeoutMs, describe);
  }

  private get ctx(): ErrorContext {
    return { stream: this.target.stream, host: this.target.host };
  }

  private op<T>(name: string, path: string, run: () => Promise<T>): Promise<T> {
    return this.guard(run(), () => `sftp ${name} ${path}`).catch((err: unknown) => {
      throw opError(name, path, err, this.ctx);
    });
  }

  async list(dir: string): Promise<RemoteFile[]> {
    const entries = await this.op("list", dir, () => this.client.list(dir));
    return entries
      .filter((e) => e.name !== "." && e.name !== "..")
      .map((e) => ({
        path: posix.join(dir, e.name),
        name: e.name,
        type: typeOf(e.type),
        size: e.size,
        mtimeMs: e.modifyTime,
      }));
  }

  async stat(path: string): Promise<RemoteFile | undefined> {
    try {
      const st = await this.guard(this.client.stat(path), () => `sftp stat ${path}`);
      return statToFile(path, st);
    } catch (err) {
      if (sftpCode(err) === NO_SUCH_FILE) return undefined;
      throw opError("stat", path, err, this.ctx);
    }
  }

  async mkdirp(dir: string): Promise<void> {
    const normal = posix.normalize(dir);
    if (normal === "/" || normal === "." || this.made.has(normal)) return;
    const existing = await this.stat(normal);
    if (existing?.type === "dir") {
      this.made.add(normal);
      return;
    }
    if (existing) throw opError("mkdir", normal, new Error("exists and is not a directory"), this.ctx);
    await this.mkdirp(posix.dirname(normal));
    try {
      await this.guard(this.client.mkdir(normal, false), () => `sftp mkdir ${normal}`);
    } catch (err) {
      // Another writer (a concurrent file of this batch) may have made it first.
      if ((await this.stat(normal))?.type !== "dir") throw opError("mkdir", normal, err, this.ctx);
    }
    this.made.add(normal);
  }

  async write(path: string, source: AsyncIterable<Uint8Array>, options: WriteOptions): Promise<{ bytes: number }> {
    const dir = posix.dirname(path);
    const tempPath = options.atomic
      ? posix.join(dir, `.${posix.basename(path)}.${randomBytes(4).toString("hex")}${options.tempSuffix}`)
      : path;
    let bytes = 0;
    try {
      let handle: Buffer;
      try {
        handle = await this.guard(this.openHandle(tempPath, "w"), () => `sftp open ${tempPath}`);
      } catch (err) {
        if (!options.createDirs || sftpCode(err) !== NO_SUCH_FILE) throw opError("open", tempPath, err, this.ctx);
        await this.mkdirp(dir);
        handle = await this.op("open", tempPath, () => this.openHandle(tempPath, "w"));
      }
      let failure: unknown;
      bytes = await pipelinedWrite(
        this.sftp,
        handle,
        source,
        this.lost,
        this.target.operationTimeoutMs,
        options.hash,
      ).catch((err: unknown) => {
        failure = err;
        return 0;
      });
      // The size is asked on the handle together with the close, in one round trip; a server that does not answer
      // FSTAT (or answers it after the close) is asked by path afterwards.
      const sized =
        failure === undefined
          ? this.guard(this.fstatHandle(handle), () => `sftp fstat ${tempPath}`).then(
              (st) => statToFile(tempPath, st),
              () => undefined,
            )
          : undefined;
      // The server may only report a failed write (disk full) on close, so a close error counts too.
      await this.op("close", tempPath, () => this.closeHandle(handle)).catch((err: unknown) => (failure ??= err));
      if (failure !== undefined) throw failure;
      const written = (await sized) ?? (await this.stat(tempPath));
      if (
        !written ||
        written.size !== bytes ||
        (options.expectedSize !== undefined && bytes !== options.expectedSize)
      ) {
        throw new VerifyError(
          `sftp verify ${tempPath}: remote size ${written?.size ?? "missing"}, wrote ${bytes}` +
            (options.expectedSize === undefined ? "" : `, source size ${options.expectedSize}`),
          { ...this.ctx, path },
        );
      }
      if (options.atomic) await this.rename(tempPath, path, true);
      return { bytes };
    } catch (err) {
      // Never leave a partial file behind: the temp name in atomic mode, the target itself otherwise.
      await this.guard(this.client.delete(tempPath, true), () => "cleanup").catch((cleanupErr: unknown) =>
        this.logger.warn("could not remove partial remote file", {
          ...this.ctx,
          path: tempPath,
          error: reason(cleanupErr),
        }),
      );
      throw err instanceof BridgeError ? err : opError("put", path, err, this.ctx);
    }
  }

  read(path: string, size: number, options: ReadOptions = {}): Readable {
    const reader = new PipelinedReader(
      this.sftp,
      path,
      size,
      this.target.operationTimeoutMs,
      (op, err) => opError(op, path, err, this.ctx),
      this.target.windowBytes,
      options.unchanged,
    );
    if (this.gone) {
      reader.destroy(this.gone);
      return reader;
    }
    this.readers.add(reader);
    reader.once("close", () => this.readers.delete(reader));
    return reader;
  }

  async rename(from: string, to: string, replace: boolean): Promise<void> {
    if (replace && this.supportsPosixRename) {
      await this.op("rename", `${from} -> ${to}`, () => this.client.posixRename(from, to));
      return;
    }
    try {
      await this.guard(this.client.rename(from, to), () => `sftp rename ${from}`);
    } catch (err) {
      // Plain SFTP rename refuses an existing target (docs/field-notes.md); without posix-rename the best we can do is
      // remove the old copy first. The window where neither exists is short and the new bytes are already verified.
      if (replace && (await this.stat(to).catch(() => undefined))) {
        await this.remove(to);
        await this.op("rename", `${from} -> ${to}`, () => this.client.rename(from, to));
        return;
      }
      throw opError("rename", `${from} -> ${to}`, err, this.ctx);
    }
  }

  async setTimes(path: string, at: Date): Promise<void> {
    const seconds = Math.floor(at.getTime() / 1000);
    await this.op(
      "setstat",
      path,
      () =>
        new Promise<void>((resolve, reject) =>
          this.sftp.utimes(path, seconds, seconds, (err) => (err ? reject(err) : resolve())),
        ),
    );
  }

  async remove(path: string): Promise<void> {
    await this.op("delete", path, () => this.client.delete(path));
  }

  async close(): Promise<void> {
    if (this.gone) return;
    // A polite end waits for the server's answer; a wedged connection never gives one, so cut it after a moment.
    let timer: NodeJS.Timeout | undefined;
    const ended = this.client.end().catch(() => undefined);
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
    await Promise.race([ended, grace]);
    clearTimeout(timer);
    if (!this.gone) this.ssh.destroy();
  }

  private openHandle(path: string, flags: "w" | "r"): Promise<Buffer> {
    return new Promise((resolve, reject) =>
      this.sftp.open(path, flags, (err, handle) => (err ? reject(err) : resolve(handle))),
    );
  }

  private fstatHandle(handle: Buffer): Promise<Stats> {
    return new Promise((resolve, reject) => this.sftp.fstat(handle, (err, st) => (err ? reject(err) : resolve(st))));
  }

  private closeHandle(handle: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.sftp.close(handle, (err) => (err ? reject(err) : resolve())));
  }
}
