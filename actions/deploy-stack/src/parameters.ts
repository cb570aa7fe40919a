import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import { ActionError } from "../../lib/errors";

/**
 * A per-environment file under deploy/environments/:
 *
 *   parameters:            # the template's Parameters, by name
 *     MemorySize: 1024
 *     SubnetIds: [subnet-a, subnet-b]    # lists become CloudFormation's comma-delimited form
 *   tags:                  # stack tags (CloudFormation copies them to the resources it can tag)
 *     environment: staging
 */
export interface EnvironmentFile {
  parameters: Record<string, string>;
  tags: Record<string, string>;
}

export class ParameterFileError extends ActionError {
  constructor(file: string, problems: string[], cause?: unknown) {
    super("PARAMETER_FILE_INVALID", `${file}:\n${problems.map((p) => `  ${p}`).join("\n")}`, { cause });
  }
}

export const PARAMETER_KEY = /^[A-Za-z0-9]{1,255}$/;
export const TAG_KEY = /^(?!aws:)[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u;

export async function loadEnvironmentFile(file: string): Promise<EnvironmentFile> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    const why = (cause as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : String(cause);
    throw new ParameterFileError(file, [why], cause);
  }
  let doc: unknown;
  try {
    // Failsafe: every scalar stays the string it was written as. The default schema would turn an account id
    // 012345678901 into the number 12345678901 and 1.50 into 1.5; CloudFormation wants the text.
    doc = parse(text, { schema: "failsafe" });
  } catch (cause) {
    throw new ParameterFileError(file, [`not valid YAML: ${(cause as Error).message}`], cause);
  }
  return parseEnvironmentFile(file, doc ?? {});
}

/** Every problem at once, each by its path in the file. */
export function parseEnvironmentFile(file: string, doc: unknown): EnvironmentFile {
  const problems: string[] = [];
  const result: EnvironmentFile = { parameters: {}, tags: {} };
  if (!isMap(doc)) throw new ParameterFileError(file, ["the top level must be a mapping with parameters: and tags:"]);
  for (const key of Object.keys(doc)) {
    if (key !== "parameters" && key !== "tags") problems.push(`${key}: unknown key (expected parameters or tags)`);
  }
  for (const section of ["parameters", "tags"] as const) {
    const value = doc[section];
    if (value === undefined || value === null) continue;
    if (!isMap(value)) {
      problems.push(`${section}: must be a mapping of names to values`);
      continue;
    }
    const keyPattern = section === "parameters" ? PARAMETER_KEY : TAG_KEY;
    for (const [name, raw] of Object.entries(value)) {
      const path = `${section}.${name}`;
      if (!keyPattern.test(name)) {
        problems.push(
          `${path}: not a valid ${section === "parameters" ? "parameter name (letters and digits)" : "tag key"}`,
        );
        continue;
      }
      const text = scalarText(raw, section === "parameters");
      if (text === undefined) {
        problems.push(
          `${path}: must be a string, number or boolean${section === "parameters" ? " (or a list of them)" : ""}; ` +
            `use "" for an empty value`,
        );
        continue;
      }
      result[section][name] = text;
    }
  }
  if (problems.length) throw new ParameterFileError(file, problems);
  return result;
}

function scalarText(value: unknown, allowList: boolean): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (allowList && Array.isArray(value)) {
    const items = value.map((v) => scalarText(v, false));
    if (items.every((i) => i !== undefined && !i.includes(","))) return items.join(",");
  }
  return undefined;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
