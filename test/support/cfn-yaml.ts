import { readFileSync } from "node:fs";
import { parseDocument, type Tags } from "yaml";

/**
 * CloudFormation YAML -> the long-form JSON CloudFormation itself works with. Every intrinsic short form (`!Ref x`,
 * `!GetAtt a.b`, `!Sub [...]`, ...) becomes its long form (`{ Ref: x }`, `{ "Fn::GetAtt": ["a", "b"] }`, ...), so
 * checks only ever see one shape. Each tag is accepted on a scalar, a sequence and a mapping (CloudFormation does the
 * same; whether the argument makes sense is the checks' business, not the parser's).
 */

export type CfnValue = string | number | boolean | null | CfnValue[] | { [key: string]: CfnValue };
export type CfnObject = { [key: string]: CfnValue };

export interface CfnTemplate {
  AWSTemplateFormatVersion?: string;
  Description?: string;
  Metadata?: CfnObject;
  Parameters?: Record<string, CfnObject>;
  Rules?: Record<string, CfnObject>;
  Mappings?: Record<string, Record<string, CfnObject>>;
  Conditions?: Record<string, CfnValue>;
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, CfnObject>;
  Transform?: CfnValue;
}

export interface CfnResource {
  Type: string;
  Properties?: CfnObject;
  Condition?: string;
  DependsOn?: string | string[];
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
  Metadata?: CfnObject;
  [key: string]: CfnValue | undefined;
}

/** Short tag name -> the long-form key it stands for. */
export const SHORT_FORMS: Readonly<Record<string, string>> = {
  Ref: "Ref",
  Condition: "Condition",
  GetAtt: "Fn::GetAtt",
  Sub: "Fn::Sub",
  Join: "Fn::Join",
  Select: "Fn::Select",
  Split: "Fn::Split",
  If: "Fn::If",
  Equals: "Fn::Equals",
  Not: "Fn::Not",
  And: "Fn::And",
  Or: "Fn::Or",
  FindInMap: "Fn::FindInMap",
  GetAZs: "Fn::GetAZs",
  ImportValue: "Fn::ImportValue",
  Base64: "Fn::Base64",
  Cidr: "Fn::Cidr",
};

/** `!GetAtt Res.Attr.Path` splits at the first dot only: nested attributes keep their dots. */
function getAttArgument(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const dot = value.indexOf(".");
  return dot < 0 ? [value] : [value.slice(0, dot), value.slice(dot + 1)];
}

function cfnTags(): Tags {
  const tags: Tags = [];
  for (const [short, long] of Object.entries(SHORT_FORMS)) {
    const wrap = (value: unknown) => ({ [long]: short === "GetAtt" ? getAttArgument(value) : value });
    tags.push({ tag: `!${short}`, resolve: (str: string) => wrap(str) });
    tags.push({ tag: `!${short}`, collection: "seq", resolve: (seq) => wrap(seq.toJSON()) });
    tags.push({ tag: `!${short}`, collection: "map", resolve: (map) => wrap(map.toJSON()) });
  }
  return tags;
}

const CUSTOM_TAGS = cfnTags();

/** Parse CloudFormation YAML; throws with every YAML error (unknown tags included) at once. */
export function parseCfnYaml(source: string, name = "template"): CfnTemplate {
  const doc = parseDocument(source, { customTags: CUSTOM_TAGS, uniqueKeys: true, prettyErrors: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) throw new Error(`${name}: ${problems.map((e) => e.message).join("\n")}`);
  const value = doc.toJS({ maxAliasCount: -1 }) as unknown;
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error(`${name}: not a mapping`);
  return value as CfnTemplate;
}

export function loadCfnTemplate(path: string): CfnTemplate {
  return parseCfnYaml(readFileSync(path, "utf8"), path);
}

/** `{ "Fn::X": arg }` / `{ Ref: x }` / `{ Condition: x }` -> [name, arg]; anything else -> undefined. */
export function intrinsic(value: unknown): [string, CfnValue] | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1) return undefined;
  const key = keys[0]!;
  if (key === "Ref" || key === "Condition" || key.startsWith("Fn::")) return [key, (value as CfnObject)[key]!];
  return undefined;
}
