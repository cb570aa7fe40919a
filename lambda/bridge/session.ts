import type { SftpConfig, StreamConfig } from "./config/schema";
import type { CredentialResolver, ResolvedCredentials } from "./credentials";
import type { Logger } from "./logger";
import { BridgeError } from "./errors";
import type { SftpConnector, SftpSession, SftpTarget } from "./sftp";

/**
 * What a connection to a stream's partner is made with: its configured SFTP side and the resolved credentials. Every
 * caller that connects (the engine, the CLI's test-connection, the smoke test) builds it here, so a new setting
 * reaches all of them.
 */
export function sftpTargetFor(stream: string, sftp: SftpConfig, credentials: ResolvedCredentials): SftpTarget {
  return {
    stream,
    host: sftp.host,
    port: sftp.port,
    username: sftp.username,
    credentials,
    hostKeys: sftp.hostKeys,
    readyTimeoutMs: sftp.readyTimeoutMs,
    operationTimeoutMs: sftp.operationTimeoutMs,
    keepaliveIntervalMs: sftp.keepaliveIntervalMs,
    algorithms: sftp.algorithms,
    windowBytes: sftp.windowBytes,
  };
}

/**
 * One SSH connection per stream per batch, opened lazily (a batch of skipped files never connects) and shared by the
 * batch's concurrent transfers. When the connection is lost mid-batch the next file reconnects, a bounded number of
 * times, so one dropped connection fails one file rather than the rest of the batch.
 */
export class StreamSession {
  private current: Promise<SftpSession> | undefined;
  private reconnects = 0;
  private opened: SftpSession[] = [];

  constructor(
    private readonly stream: string,
    private readonly config: StreamConfig,
    private readonly credentials: CredentialResolver,
    private readonly connect: SftpConnector,
    private readonly logger: Logger,
    private readonly maxReconnects = 2,
  ) {}

  get(): Promise<SftpSession> {
    this.current ??= this.open();
    return this.current;
  }

  /** Call when an operation failed in a way that may have broken the connection. */
  async discard(session: SftpSession, err: unknown): Promise<void> {
    const retryable = err instanceof BridgeError ? err.retryable : true;
    if (!retryable || this.reconnects >= this.maxReconnects) return;
    const active = await this.current?.catch(() => undefined);
    if (active !== session) return;
    this.reconnects++;
    this.current = undefined;
    this.logger.warn("sftp session discarded after an error; the next file reconnects", { stream: this.stream });
    await session.close();
  }

  async close(): Promise<void> {
    await Promise.all(this.opened.map((s) => s.close()));
    this.opened = [];
    this.current = undefined;
  }

  private async open(): Promise<SftpSession> {
    const sftp = this.config.sftp;
    const credentials = await this.credentials.resolve(sftp.credentials, this.stream);
    const target = sftpTargetFor(this.stream, sftp, credentials);
    const session = await this.connect(target, this.logger);
    this.opened.push(session);
    this.logger.debug("sftp connected", { stream: this.stream, host: sftp.host, hostKey: session.fingerprint });
    return session;
  }
}
