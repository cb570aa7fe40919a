// What the server records for tests and benchmarks to read: counters of sessions and logins, and observations of what
// clients negotiated and did on the wire. One Recorder per server, shared by all its connections.
import type { NegotiatedAlgorithms } from "ssh2";

export interface SftpServerStats {
  /** Connections that authenticated. */
  sessionsOpened: number;
  activeSessions: number;
  maxConcurrentSessions: number;
  /** Rejected password and public-key attempts ("none" probes are not counted). */
  authFailures: number;
}

/**
 * What clients negotiated and held open, so tests can check that a client setting reached the wire. Apart from
 * `stats`, whose shape callers compare whole; resetStats() restarts these too.
 */
export interface SftpServerObserved {
  /** Each completed key exchange (first and re-key), oldest first; only the latest MAX_HANDSHAKES_KEPT are kept. */
  handshakes: NegotiatedAlgorithms[];
  /** Files open for writing now, over every connection (a gauge), from the OPEN reply until CLOSE or disconnect. */
  openWriteHandles: number;
  /** The most files open for writing at once since the start or the last resetStats(). */
  maxOpenWriteHandles: number;
  /**
   * Every successful RENAME or posix-rename target, by path as the client sees it, oldest first (the latest
   * MAX_RENAMES_KEPT): how many times a file was put into place, i.e. delivered.
   */
  renamedTo: string[];
  /**
   * The most channel window any client had granted this server when it answered a READ: how much a client lets the
   * server send ahead of its own reading (ssh2 alone: 2 MiB at most).
   */
  maxClientWindow: number;
  /** The most bytes of READ requests received and not yet answered at once, over every connection. */
  maxPendingReadBytes: number;
  /** SFTP requests received, by ssh2's event name (OPEN, WRITE, FSTAT, STAT, EXTENDED, ...), over every connection. */
  requests: Record<string, number>;
}

/** The local stack runs for hours; an unbounded handshake list would grow with every connection. */
const MAX_HANDSHAKES_KEPT = 100;
const MAX_RENAMES_KEPT = 10_000;

/** Keeps `stats` and `observed` (the live objects the server hands out) and the gauges behind their maxima. */
export class Recorder {
  readonly stats: SftpServerStats = { sessionsOpened: 0, activeSessions: 0, maxConcurrentSessions: 0, authFailures: 0 };
  readonly observed: SftpServerObserved = {
    handshakes: [],
    openWriteHandles: 0,
    maxOpenWriteHandles: 0,
    renamedTo: [],
    maxClientWindow: 0,
    maxPendingReadBytes: 0,
    requests: {},
  };
  private pendingReadBytes = 0;

  handshake(negotiated: NegotiatedAlgorithms): void {
    this.observed.handshakes.push(negotiated);
    if (this.observed.handshakes.length > MAX_HANDSHAKES_KEPT) this.observed.handshakes.shift();
  }

  authFailed(): void {
    this.stats.authFailures += 1;
  }

  sessionOpened(): void {
    const stats = this.stats;
    stats.sessionsOpened += 1;
    stats.activeSessions += 1;
    stats.maxConcurrentSessions = Math.max(stats.maxConcurrentSessions, stats.activeSessions);
  }

  sessionClosed(): void {
    this.stats.activeSessions -= 1;
  }

  /** Counts a request by its event name. */
  requested(event: string): void {
    this.observed.requests[event] = (this.observed.requests[event] ?? 0) + 1;
  }

  /** Counts READ bytes requested and not yet answered (+ on arrival, - once answered). */
  readsPending(delta: number): void {
    this.pendingReadBytes += delta;
    this.observed.maxPendingReadBytes = Math.max(this.observed.maxPendingReadBytes, this.pendingReadBytes);
  }

  /** Records the window the client grants, as seen when a READ is answered. */
  sawClientWindow(window: number): void {
    this.observed.maxClientWindow = Math.max(this.observed.maxClientWindow, window);
  }

  writeHandleOpened(): void {
    this.observed.openWriteHandles += 1;
    this.observed.maxOpenWriteHandles = Math.max(this.observed.maxOpenWriteHandles, this.observed.openWriteHandles);
  }

  writeHandleClosed(): void {
    this.observed.openWriteHandles -= 1;
  }

  /** Records a file put into place by a rename. */
  renamed(to: string): void {
    this.observed.renamedTo.push(to);
    if (this.observed.renamedTo.length > MAX_RENAMES_KEPT) this.observed.renamedTo.shift();
  }

  /** Zeroes the counters; gauges keep their value and the maxima restart from them. */
  reset(): void {
    const { stats, observed } = this;
    stats.sessionsOpened = 0;
    stats.authFailures = 0;
    stats.maxConcurrentSessions = stats.activeSessions;
    observed.handshakes = [];
    observed.maxOpenWriteHandles = observed.openWriteHandles;
    observed.renamedTo = [];
    observed.maxClientWindow = 0;
    observed.maxPendingReadBytes = this.pendingReadBytes;
    observed.requests = {};
  }
}
