/**
 * What the engine needs from a logger. Powertools' Logger satisfies it, so does the CLI's console logger; the engine
 * never picks one. Extra fields must never carry secret values.
 */
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

/** One JSON line per entry on the given stream; the default for the CLI and local stack. */
export function jsonLogger(
  write: (line: string) => void = (l) => process.stderr.write(l + "\n"),
  minLevel: "debug" | "info" | "warn" | "error" = "info",
): Logger {
  const order = { debug: 0, info: 1, warn: 2, error: 3 } as const;
  const emit = (level: keyof typeof order) => (message: string, fields?: LogFields) => {
    if (order[level] < order[minLevel]) return;
    write(JSON.stringify({ level: level.toUpperCase(), timestamp: new Date().toISOString(), message, ...fields }));
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}
