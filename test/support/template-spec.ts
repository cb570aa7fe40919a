import { loadAwsServiceSpecSync } from "@aws-cdk/aws-service-spec";
import type { PropertyType, Resource, SpecDatabase, TypeDefinition } from "@aws-cdk/service-spec-types";
import { intrinsic, type CfnTemplate, type CfnValue } from "./cfn-yaml";
import { templateReferences } from "./template-refs";

/**
 * Resource types, property names and shapes checked against the current CloudFormation registry schemas, as shipped
 * in `@aws-cdk/aws-service-spec` (the database the CDK generates its L1 constructs from). The database is loaded once
 * per process (about half a second).
 *
 * Values that are intrinsic functions are not type-checked (their value is only known at deploy time), except
 * Fn::If, whose two branches are each checked against the property's type.
 */

let db: SpecDatabase | undefined;
export function specDatabase(): SpecDatabase {
  db ??= loadAwsServiceSpecSync();
  return db;
}

export function resourceSpec(type: string): Resource | undefined {
  return specDatabase().lookup("resource", "cloudFormationType", "equals", type)[0];
}

const RESOURCE_KEYS = new Set([
  "Type",
  "Properties",
  "Condition",
  "DependsOn",
  "DeletionPolicy",
  "UpdateReplacePolicy",
  "UpdatePolicy",
  "CreationPolicy",
  "Metadata",
]);

/**
 * What the DeletionPolicy and UpdateReplacePolicy attributes accept, per CloudFormation's documentation of them (the
 * registry schemas in the spec database do not carry resource attributes). RetainExceptOnCreate applies to every
 * resource type but only on deletion; Snapshot only to types that can take one.
 */
const DELETION_POLICIES = new Set(["Delete", "Retain", "RetainExceptOnCreate", "Snapshot"]);
const UPDATE_REPLACE_POLICIES = new Set(["Delete", "Retain", "Snapshot"]);
const SNAPSHOT_TYPES = new Set([
  "AWS::DocDB::DBCluster",
  "AWS::EC2::Volume",
  "AWS::ElastiCache::CacheCluster",
  "AWS::ElastiCache::ReplicationGroup",
  "AWS::Neptune::DBCluster",
  "AWS::RDS::DBCluster",
  "AWS::RDS::DBInstance",
  "AWS::Redshift::Cluster",
]);

function policyProblems(path: string, type: string, key: string, value: unknown, allowed: Set<string>): string[] {
  if (value === undefined) return [];
  if (typeof value !== "string" || !allowed.has(value)) {
    return [`${path}.${key}: ${describe(value)} is not one of ${[...allowed].join(", ")}`];
  }
  return value === "Snapshot" && !SNAPSHOT_TYPES.has(type) ? [`${path}.${key}: ${type} cannot take a Snapshot`] : [];
}

function describe(value: unknown): string {
  return JSON.stringify(value)?.slice(0, 80) ?? String(value);
}

function isNoValue(value: CfnValue): boolean {
  const fn = intrinsic(value);
  return fn !== undefined && fn[0] === "Ref" && fn[1] === "AWS::NoValue";
}

class Checker {
  readonly problems: string[] = [];
  constructor(private readonly spec: SpecDatabase) {}

  private typeDefinition(type: PropertyType & { type: "ref" }): TypeDefinition {
    return this.spec.get("typeDefinition", type.reference);
  }

  /** Problems of `value` against `type`, without recording them (for unions). */
  private trial(value: CfnValue, type: PropertyType, path: string): string[] {
    const sub = new Checker(this.spec);
    sub.value(value, type, path);
    return sub.problems;
  }

  value(value: CfnValue, type: PropertyType, path: string): void {
    const fn = intrinsic(value);
    if (fn) {
      if (fn[0] === "Fn::If" && Array.isArray(fn[1]) && fn[1].length === 3) {
        for (const branch of fn[1].slice(1)) if (!isNoValue(branch)) this.value(branch, type, path);
      }
      return;
    }
    const bad = (expected: string): void => {
      this.problems.push(`${path}: expected ${expected}, got ${describe(value)}`);
    };
    switch (type.type) {
      case "string":
        if (!["string", "number", "boolean"].includes(typeof value)) return bad("a string");
        if (type.allowedValues && !type.allowedValues.includes(String(value))) {
          this.problems.push(`${path}: ${describe(value)} is not one of ${type.allowedValues.join(", ")}`);
        }
        return;
      case "integer":
      case "number":
        if (
          typeof value === "number" ||
          (typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value)))
        ) {
          if (type.type === "integer" && !Number.isInteger(Number(value))) bad("an integer");
          return;
        }
        return bad(`a ${type.type}`);
      case "boolean":
        if (typeof value === "boolean" || value === "true" || value === "false") return;
        return bad("a boolean");
      case "date-time":
        if (typeof value !== "string") bad("a date-time string");
        return;
      case "null":
        if (value !== null) bad("null");
        return;
      case "json":
        return;
      case "tag":
        if (value === null || typeof value !== "object" || Array.isArray(value)) return bad("a tag { Key, Value }");
        if (!("Key" in value) || !("Value" in value)) bad("a tag { Key, Value }");
        return;
      case "array":
        if (!Array.isArray(value)) return bad("a list");
        value.forEach((item, i) => {
          if (!isNoValue(item)) this.value(item, type.element, `${path}[${i}]`);
        });
        return;
      case "map":
        if (value === null || typeof value !== "object" || Array.isArray(value)) return bad("a map");
        for (const [k, v] of Object.entries(value)) this.value(v, type.element, `${path}.${k}`);
        return;
      case "ref": {
        const def = this.typeDefinition(type);
        if (value === null || typeof value !== "object" || Array.isArray(value)) return bad(`a ${def.name} object`);
        this.properties(value, def.properties, path, def.name);
        return;
      }
      case "union": {
        const attempts = type.types.map((t) => this.trial(value, t, path));
        if (attempts.every((p) => p.length > 0)) this.problems.push(...attempts[0]!);
        return;
      }
      default:
        this.problems.push(`${path}: the checker does not know the spec type ${describe(type)}`);
    }
  }

  properties(value: { [key: string]: CfnValue }, props: Resource["properties"], path: string, owner: string): void {
    for (const [name, v] of Object.entries(value)) {
      const prop = props[name];
      if (!prop) {
        this.problems.push(`${path}.${name}: ${owner} has no property ${name}`);
        continue;
      }
      // A value valid for a type the property used to have is still accepted by CloudFormation.
      const types = [prop.type, ...(prop.previousTypes ?? [])];
      const attempts = types.map((t) => this.trial(v, t, `${path}.${name}`));
      if (attempts.every((p) => p.length > 0)) this.problems.push(...attempts[0]!);
    }
    for (const [name, prop] of Object.entries(props)) {
      if (prop.required && !(name in value)) this.problems.push(`${path}: ${owner} requires ${name}`);
    }
  }
}

/** Every problem with the template's resource types, resource keys, properties and Fn::GetAtt attributes. */
export function checkAgainstSpec(template: CfnTemplate): string[] {
  const spec = specDatabase();
  const checker = new Checker(spec);
  for (const [logicalId, res] of Object.entries(template.Resources)) {
    const path = `Resources.${logicalId}`;
    for (const key of Object.keys(res))
      if (!RESOURCE_KEYS.has(key)) checker.problems.push(`${path}: unknown key ${key}`);
    checker.problems.push(
      ...policyProblems(path, res.Type, "DeletionPolicy", res.DeletionPolicy, DELETION_POLICIES),
      ...policyProblems(path, res.Type, "UpdateReplacePolicy", res.UpdateReplacePolicy, UPDATE_REPLACE_POLICIES),
    );
    const resource = resourceSpec(res.Type);
    if (!resource) {
      checker.problems.push(`${path}: unknown resource type ${res.Type}`);
      continue;
    }
    checker.properties(res.Properties ?? {}, resource.properties, `${path}.Properties`, res.Type);
  }
  for (const { target: resource, attribute, path } of templateReferences(template)) {
    if (attribute === undefined) continue;
    const type = template.Resources[resource]?.Type;
    const attributes = type === undefined ? undefined : resourceSpec(type)?.attributes;
    if (attributes && !(attribute in attributes)) {
      checker.problems.push(
        `${path}: ${type} has no attribute ${attribute} (has ${Object.keys(attributes).join(", ")})`,
      );
    }
  }
  return checker.problems;
}
