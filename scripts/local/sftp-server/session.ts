// One SFTP channel: routes each request to its handler, turns failures into status replies, and ends the channel the
// way OpenSSH's sftp-server does.
import { type SFTPWrapper, utils } from "ssh2";
import { directoryRequests } from "./directory-requests";
import { extendedRequests } from "./extended-requests";
import { delayed, type SftpFaults } from "./faults";
import { fileRequests } from "./file-requests";
import { HandleTable } from "./handles";
import type { Jail } from "./jail";
import type { Recorder } from "./observed";
import { pathRequests } from "./path-requests";
import { renameRequests } from "./rename-requests";
import type { RequestHandler, RequestScope } from "./request-scope";
import { advertiseExtensions } from "./ssh2-internals";
import { describeErrno, errnoOf, SftpStatusError, statusOfErrno } from "./status";

const { STATUS_CODE } = utils.sftp;

const HANDLERS = { ...fileRequests, ...directoryRequests, ...pathRequests, ...renameRequests, ...extendedRequests };

export interface SessionContext {
  files: Jail;
  faults: SftpFaults;
  record: Recorder;
  log: (line: string) => void;
  /** Destroys this connection's socket (the drop fault). */
  drop: () => void;
}

export class SftpSession {
  private readonly scope: RequestScope;
  private running = 0;
  private ending = false;

  constructor(
    private readonly sftp: SFTPWrapper,
    ctx: SessionContext,
  ) {
    this.scope = { ...ctx, sftp, handles: new HandleTable(ctx.record) };
    advertiseExtensions(sftp, ctx.log);
    for (const [event, handler] of Object.entries(HANDLERS)) this.route(event, handler);
    // The client's EOF ends the subsystem: once the requests already received are answered, close our side too, as
    // OpenSSH's sftp-server exits (OpenSSH's client waits for that).
    sftp.on("end", () => {
      this.ending = true;
      this.endIfIdle();
    });
    sftp.on("close", () => void this.dispose());
    sftp.on("error", (err: Error) => ctx.log(`sftp: ${err.message}`));
  }

  /** Closes every open file and directory (the channel or connection is gone). */
  dispose(): Promise<void> {
    return this.scope.handles.dispose();
  }

  private endIfIdle(): void {
    if (!this.ending || this.running > 0) return;
    this.sftp.end();
    void this.dispose();
  }

  private route(event: string, handler: RequestHandler): void {
    const { record, faults } = this.scope;
    this.sftp.on(event, (reqid: number, ...args: never[]) => {
      this.running += 1;
      record.requested(event);
      const readBytes = event === "READ" ? Number(args[2]) || 0 : 0;
      if (readBytes) record.readsPending(readBytes);
      delayed(faults, () => {
        handler(this.scope, reqid, ...args)
          .catch((err: unknown) => this.fail(reqid, event, args, err))
          .finally(() => {
            if (readBytes) record.readsPending(-readBytes);
            this.running -= 1;
            this.endIfIdle();
          });
      });
    });
  }

  private fail(reqid: number, event: string, args: unknown[], err: unknown): void {
    try {
      this.reply(reqid, event, args, err);
    } catch (replyError) {
      this.scope.log(`${event}: could not send the error reply: ${String(replyError)}`);
    }
  }

  private reply(reqid: number, event: string, args: unknown[], err: unknown): void {
    let status: number;
    let message: string;
    if (err instanceof SftpStatusError) {
      status = err.status;
      message = err.message;
    } else {
      const code = errnoOf(err);
      status = code === undefined ? STATUS_CODE.FAILURE : statusOfErrno(code);
      // Built from the code and the virtual path only: fs messages carry real paths, which clients must not see.
      message = `${event.toLowerCase()} ${this.subject(args)}: ${describeErrno(code)}`;
      if (code === undefined) this.scope.log(`${event} failed unexpectedly: ${String(err)}`);
    }
    // Existence probes (mkdir -p, exists()) routinely miss; logging them would bury the failures that matter.
    const probe = status === STATUS_CODE.NO_SUCH_FILE && (event === "STAT" || event === "LSTAT");
    if (!probe) this.scope.log(`${message} (status ${status})`);
    this.sftp.status(reqid, status, message);
  }

  private subject(args: unknown[]): string {
    const paths = args.filter((a): a is string => typeof a === "string");
    if (paths.length > 0) return paths.join(" -> ");
    const handle = args[0];
    return Buffer.isBuffer(handle) ? (this.scope.handles.pathOf(handle) ?? "(closed handle)") : "";
  }
}
