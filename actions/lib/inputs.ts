import { ActionInputError, type InputIssue } from "./errors";

/**
 * Reads one input by name and returns "" when it is absent. In an action this is `core.getInput`; tests pass a map, so
 * the parsing below never depends on the runner's environment.
 */
export type InputSource = (name: string) => string;

export function inputsFromRecord(values: Record<string, string | undefined>): InputSource {
  return (name) => values[name] ?? "";
}

const TRUE = ["true", "True", "TRUE"];
const FALSE = ["false", "False", "FALSE"];

/**
 * Typed, validated access to an action's inputs. A getter that meets an invalid value records the problem and returns a
 * fallback, so `finish()` can report every problem of a run at once instead of one per attempt.
 */
export class Inputs {
  private readonly issues: InputIssue[] = [];

  constructor(private readonly source: InputSource) {}

  /** The trimmed value, or undefined when empty. */
  optional(name: string): string | undefined {
    const value = this.source(name).trim();
    return value === "" ? undefined : value;
  }

  required(name: string, hint = ""): string {
    const value = this.optional(name);
    if (value === undefined) {
      this.fail(name, `is required${hint ? `: ${hint}` : ""}`);
      return "";
    }
    return value;
  }

  /** An optional value that must match `pattern`; `describe` says in words what the pattern accepts. */
  matching(name: string, pattern: RegExp, describe: string, options: { required?: boolean } = {}): string | undefined {
    const value = options.required ? this.required(name) : this.optional(name);
    if (value === undefined || value === "") return value;
    if (!pattern.test(value)) {
      this.fail(name, `${JSON.stringify(value)} is not ${describe}`);
      return undefined;
    }
    return value;
  }

  /** YAML 1.2 core-schema booleans, as `core.getBooleanInput` accepts; anything else is an error, never false. */
  boolean(name: string, fallback: boolean): boolean {
    return this.optionalBoolean(name) ?? fallback;
  }

  /** undefined when not given: for settings the action should leave alone unless asked. */
  optionalBoolean(name: string): boolean | undefined {
    const value = this.optional(name);
    if (value === undefined) return undefined;
    if (TRUE.includes(value)) return true;
    if (FALSE.includes(value)) return false;
    this.fail(name, `${JSON.stringify(value)} is not a boolean; use true or false`);
    return undefined;
  }

  choice<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const value = this.optional(name);
    if (value === undefined) return fallback;
    if ((choices as readonly string[]).includes(value)) return value as T;
    this.fail(name, `${JSON.stringify(value)} is not one of: ${choices.join(", ")}`);
    return fallback;
  }

  integer(name: string, options: { fallback: number; min?: number; max?: number }): number {
    const value = this.optional(name);
    if (value === undefined) return options.fallback;
    const n = /^-?\d+$/.test(value) ? Number(value) : NaN;
    const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = options;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      this.fail(name, `${JSON.stringify(value)} is not a whole number between ${min} and ${max}`);
      return options.fallback;
    }
    return n;
  }

  /** Items separated by newlines or commas, trimmed, empty items dropped. */
  list(name: string): string[] {
    const value = this.optional(name);
    if (value === undefined) return [];
    return value
      .split(/[\n,]/)
      .map((s) => s.trim())
      .filter((s) => s !== "");
  }

  /**
   * `Key=Value`, one pair per line (never comma-separated: CloudFormation list parameters contain commas). The value is
   * everything after the first `=`, so values may contain `=`; blank lines and lines starting with `#` are ignored.
   */
  keyValues(name: string, keyPattern: RegExp = /^[A-Za-z0-9_.:/@+-]+$/): Record<string, string> {
    const value = this.optional(name);
    const pairs: Record<string, string> = {};
    if (value === undefined) return pairs;
    value.split("\n").forEach((raw, index) => {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) return;
      const eq = line.indexOf("=");
      const key = eq > 0 ? line.slice(0, eq).trim() : "";
      if (eq <= 0 || !keyPattern.test(key)) {
        this.fail(name, `line ${index + 1} ${JSON.stringify(line)} is not Key=Value`);
        return;
      }
      if (Object.hasOwn(pairs, key)) {
        this.fail(name, `line ${index + 1} sets ${key} a second time`);
        return;
      }
      pairs[key] = line.slice(eq + 1).trim();
    });
    return pairs;
  }

  /** For checks that involve more than one input, or a value that needs more than a pattern. */
  fail(name: string, message: string): void {
    this.issues.push({ input: name, message });
  }

  /** Throws one error listing every problem seen so far. Call after reading all inputs, before doing anything. */
  finish(): void {
    if (this.issues.length > 0) throw new ActionInputError([...this.issues]);
  }
}
