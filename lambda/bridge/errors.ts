/**
 * The engine's error family. Every error has a stable `code` (for reports, metrics and alarms), a message that names the
 * operation and its target, the foreign `cause` kept, and context that never holds a secret. Foreign errors are wrapped
 * once, at the endpoint that met them; only adapters decide what an error means for the invocation.
 */
export type ErrorCode =
  | "CONFIG_INVALID"
  | "CONFIG_NOT_FOUND"
  | "UNKNOWN_STREAM"
  | "INVALID_KEY"
  | "CREDENTIALS_NOT_FOUND"
  | "CREDENTIALS_INVALID"
  | "HOST_KEY_REJECTED"
  | "SFTP_AUTH_FAILED"
  | "SFTP_CONNECT_TIMEOUT"
  | "SFTP_CONNECT_FAILED"
  | "SFTP_OPERATION_FAILED"
  | "SFTP_OPERATION_TIMEOUT"
  | "SFTP_RENAME_FAILED"
  | "S3_OPERATION_FAILED"
  | "S3_OBJECT_NOT_FOUND"
  | "S3_OBJECT_EXISTS"
  | "S3_ACCESS_DENIED"
  | "VERIFY_FAILED"
  | "REQUEST_INVALID"
  | "DEADLINE_REACHED"
  | "CLAIM_HELD";

export type ErrorContext = Record<string, string | number | boolean | undefined>;

export class BridgeError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  /** Worth trying again later (network, throttling, a file still being written); false for config and auth errors. */
  readonly retryable: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; context?: ErrorContext; retryable?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = options.context ?? {};
    this.retryable = options.retryable ?? false;
  }

  toJSON(): { code: ErrorCode; message: string; context: ErrorContext } {
    return { code: this.code, message: this.message, context: this.context };
  }
}

export interface ConfigIssue {
  /** Dotted path into the config document, e.g. `streams.psp.push.to`. */
  path: string;
  message: string;
}

export class ConfigError extends BridgeError {
  readonly issues: ConfigIssue[];
  constructor(source: string, issues: ConfigIssue[], options: { cause?: unknown } = {}) {
    const lines = issues.map((i) => `  ${i.path || "(root)"}: ${i.message}`).join("\n");
    super("CONFIG_INVALID", `config ${source} has ${issues.length} problem(s):\n${lines}`, {
      ...options,
      context: { source },
    });
    this.issues = issues;
  }
}

export class ConfigNotFoundError extends BridgeError {
  constructor(source: string, detail: string, cause?: unknown) {
    super("CONFIG_NOT_FOUND", `config ${source}: ${detail}`, { cause, context: { source } });
  }
}

export class UnknownStreamError extends BridgeError {
  constructor(stream: string, known: string[]) {
    super(
      "UNKNOWN_STREAM",
      `unknown stream "${stream}"; the config defines: ${known.length ? known.join(", ") : "(no streams)"}`,
      { context: { stream } },
    );
  }
}

export class InvalidKeyError extends BridgeError {
  constructor(key: string, reason: string, context: ErrorContext = {}) {
    super("INVALID_KEY", `refusing key ${JSON.stringify(key)}: ${reason}`, { context: { ...context, key } });
  }
}

export class CredentialsError extends BridgeError {
  constructor(
    code: "CREDENTIALS_NOT_FOUND" | "CREDENTIALS_INVALID",
    message: string,
    options: { cause?: unknown; context?: ErrorContext; retryable?: boolean } = {},
  ) {
    super(code, message, options);
  }
}

export class HostKeyError extends BridgeError {
  constructor(host: string, port: number, seen: string, pinned: string[]) {
    super(
      "HOST_KEY_REJECTED",
      `sftp connect ${host}:${port}: host key ${seen} is not pinned for this stream (pinned: ${pinned.join(", ")}). ` +
        `If the partner rotated its key, confirm the new fingerprint with them out of band and add it to sftp.hostKeys.`,
      { context: { host, port, seen } },
    );
  }
}

export class SftpError extends BridgeError {
  constructor(
    code:
      | "SFTP_AUTH_FAILED"
      | "SFTP_CONNECT_TIMEOUT"
      | "SFTP_CONNECT_FAILED"
      | "SFTP_OPERATION_FAILED"
      | "SFTP_OPERATION_TIMEOUT"
      | "SFTP_RENAME_FAILED",
    message: string,
    options: { cause?: unknown; context?: ErrorContext; retryable?: boolean } = {},
  ) {
    super(code, message, options);
  }
}

export class S3Error extends BridgeError {
  constructor(
    code: "S3_OPERATION_FAILED" | "S3_OBJECT_NOT_FOUND" | "S3_OBJECT_EXISTS" | "S3_ACCESS_DENIED",
    message: string,
    options: { cause?: unknown; context?: ErrorContext; retryable?: boolean } = {},
  ) {
    super(code, message, options);
  }
}

export class VerifyError extends BridgeError {
  constructor(message: string, context: ErrorContext) {
    super("VERIFY_FAILED", message, { context, retryable: true });
  }
}

/** A short, secret-free description of any thrown value, for reports. */
export function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof BridgeError) return { code: err.code, message: err.message };
  if (err instanceof Error) return { code: "INTERNAL", message: err.message };
  return { code: "INTERNAL", message: String(err) };
}
