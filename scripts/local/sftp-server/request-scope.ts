// What every request handler is given: the channel to answer on, this channel's open handles, and the server's root,
// fault switches and records. Handlers are plain functions over it, grouped by what they touch.
import type { SFTPWrapper } from "ssh2";
import type { SftpFaults } from "./faults";
import type { HandleTable } from "./handles";
import type { Jail } from "./jail";
import type { Recorder } from "./observed";

export interface RequestScope {
  sftp: SFTPWrapper;
  files: Jail;
  handles: HandleTable;
  faults: SftpFaults;
  record: Recorder;
  log: (line: string) => void;
  /** Destroys this connection's socket (the drop fault). */
  drop: () => void;
}

/** Answers one request, or rejects; the session turns a rejection into the status reply. */
export type RequestHandler = (scope: RequestScope, reqid: number, ...args: never[]) => Promise<void>;

/** Handlers by ssh2's event name (OPEN, READ, ...). */
export type RequestHandlers = Record<string, RequestHandler>;
