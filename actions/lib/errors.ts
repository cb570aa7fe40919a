/**
 * Errors the actions raise on purpose. Each has a stable `code` so a summary or a test can tell them apart, and a
 * message written for the person reading the failed step: what was wrong and what to change.
 */
export class ActionError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

export interface InputIssue {
  /** The input's name as written in the workflow's `with:` block. */
  input: string;
  message: string;
}

/** Every invalid input of one run, reported together so one edit of the workflow fixes them all. */
export class ActionInputError extends ActionError {
  readonly issues: InputIssue[];
  constructor(issues: InputIssue[]) {
    const lines = issues.map((i) => `  ${i.input}: ${i.message}`).join("\n");
    super("INPUT_INVALID", `${issues.length} invalid input(s):\n${lines}`);
    this.issues = issues;
  }
}

/** The message of any thrown value, with the causes' messages appended when they add something. */
export function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let message = err.message;
  let cause: unknown = err.cause;
  for (let depth = 0; cause instanceof Error && depth < 3; depth++) {
    if (!message.includes(cause.message)) message += `: ${cause.message}`;
    cause = cause.cause;
  }
  return message;
}
