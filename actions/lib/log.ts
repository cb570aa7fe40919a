import type { LogFields, Logger } from "../../lambda/bridge/logger";

/**
 * The part of `@actions/core` the adapter writes to. Structural, so modules that only log can be tested without loading
 * `@actions/core` (an ESM-only package that Jest's CommonJS runtime cannot require).
 */
export interface ActionsLogSink {
  debug(message: string): void;
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
}

/**
 * The engine's `Logger` on top of the Actions log: warnings and errors become annotations on the run, debug lines show
 * only when the run has step debug logging on. Fields go after the message as `key=value` so the log stays readable
 * line by line; the engine's contract is that fields never hold secrets, and `core.setSecret` masks what might.
 */
export function actionsLogger(sink: ActionsLogSink): Logger {
  const line = (message: string, fields?: LogFields) => message + formatFields(fields);
  return {
    debug: (message, fields) => sink.debug(line(message, fields)),
    info: (message, fields) => sink.info(line(message, fields)),
    warn: (message, fields) => sink.warning(line(message, fields)),
    error: (message, fields) => sink.error(line(message, fields)),
  };
}

function formatFields(fields?: LogFields): string {
  if (!fields) return "";
  const parts: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = typeof value === "string" ? value : JSON.stringify(value);
    parts.push(`${key}=${/[\s"=]/.test(text) ? JSON.stringify(text) : text}`);
  }
  return parts.length ? ` (${parts.join(" ")})` : "";
}

/**
 * Masks credential values the step can see in its environment, so no later log line, summary or error message prints
 * them. configure-aws-credentials masks what it sets; this also covers keys exported by other means.
 */
export function maskCredentials(
  setSecret: (value: string) => void,
  env: NodeJS.ProcessEnv,
  extra: Array<string | undefined> = [],
): void {
  const names = ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"];
  for (const value of [...names.map((n) => env[n]), ...extra]) {
    if (value) setSecret(value);
  }
}
