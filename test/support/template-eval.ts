import { createHash } from "node:crypto";
import { intrinsic, type CfnObject, type CfnTemplate, type CfnValue } from "./cfn-yaml";

/**
 * A small CloudFormation evaluator for tests: given parameter values it decides the Conditions, drops resources and
 * properties they switch off, and resolves every intrinsic to a concrete value, the way CloudFormation would at
 * deploy time. Resources get made-up but well-formed physical ids and attributes (bucket names, queue URLs, ARNs in
 * the test account and region), so policies come out as concrete IAM documents a simulator can evaluate.
 *
 * It is strict where CloudFormation is: an out-of-range Fn::Select, an unknown Ref, a missing mapping key, a
 * parameter value outside AllowedValues/AllowedPattern/MinValue/MaxValue or a failed Rules assertion is an error.
 */

export const TEST_ACCOUNT = "123456789012";
export const TEST_REGION = "eu-west-1";
export const TEST_STACK = "bridge-test";
export const TEST_STACK_UUID = "6f1c2d3e-4a5b-4c7d-8e9f-0a1b2c3d4e5f";

export interface EvalOptions {
  /** Parameter values as CloudFormation receives them (strings; lists comma-separated). Defaults fill the rest. */
  parameters?: Record<string, string>;
  stackName?: string;
  /** The stack's ARN, when a caller (the local CloudFormation) has given the stack an id of its own. */
  stackId?: string;
  region?: string;
  accountId?: string;
}

export interface ResolvedResource {
  Type: string;
  Properties: CfnObject;
  /** What `Ref` returns, and `Fn::GetAtt` attributes. */
  ref: string;
  attributes: Record<string, string>;
}

export interface ResolvedTemplate {
  parameters: Record<string, string | string[]>;
  conditions: Record<string, boolean>;
  resources: Record<string, ResolvedResource>;
  outputs: Record<string, CfnValue>;
}

/** Marks a value CloudFormation removes (AWS::NoValue). */
const NO_VALUE = Symbol("AWS::NoValue");
type Value = CfnValue | typeof NO_VALUE;

function fail(path: string, message: string): never {
  throw new Error(`${path}: ${message}`);
}

function asString(value: Value, path: string): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return fail(path, `expected a string, got ${JSON.stringify(value === NO_VALUE ? "AWS::NoValue" : value)}`);
}

function asList(value: Value, path: string): CfnValue[] {
  if (Array.isArray(value)) return value;
  return fail(path, `expected a list, got ${JSON.stringify(value === NO_VALUE ? "AWS::NoValue" : value)}`);
}

function checkParameter(name: string, spec: CfnObject, raw: string): void {
  const type = String(spec.Type);
  const values =
    type.startsWith("List<") || type === "CommaDelimitedList" ? raw.split(",").map((v) => v.trim()) : [raw];
  for (const value of values) {
    const allowed = spec.AllowedValues as CfnValue[] | undefined;
    if (allowed && !allowed.map(String).includes(value)) fail(`Parameters.${name}`, `${value} is not in AllowedValues`);
    if (type === "Number") {
      const n = Number(value);
      if (value === "" || Number.isNaN(n)) fail(`Parameters.${name}`, `${JSON.stringify(value)} is not a number`);
      if (spec.MinValue !== undefined && n < Number(spec.MinValue)) fail(`Parameters.${name}`, `${n} < MinValue`);
      if (spec.MaxValue !== undefined && n > Number(spec.MaxValue)) fail(`Parameters.${name}`, `${n} > MaxValue`);
    }
  }
  if (type === "String") {
    // CloudFormation patterns are Java regexes matched against the whole value; the ones used here mean the same in JS.
    if (spec.AllowedPattern !== undefined && !new RegExp(`^(?:${String(spec.AllowedPattern)})$`).test(raw)) {
      fail(`Parameters.${name}`, `${JSON.stringify(raw)} does not match AllowedPattern ${String(spec.AllowedPattern)}`);
    }
    if (spec.MinLength !== undefined && raw.length < Number(spec.MinLength)) fail(`Parameters.${name}`, "too short");
    if (spec.MaxLength !== undefined && raw.length > Number(spec.MaxLength)) fail(`Parameters.${name}`, "too long");
  }
}

/** A stable fake suffix, so generated names look like CloudFormation's (`stack-Logical-ABC123`). */
function suffix(logicalId: string): string {
  return createHash("sha256").update(logicalId).digest("hex").slice(0, 12).toUpperCase();
}

export function evaluateTemplate(template: CfnTemplate, options: EvalOptions = {}): ResolvedTemplate {
  const stackName = options.stackName ?? TEST_STACK;
  const region = options.region ?? TEST_REGION;
  const account = options.accountId ?? TEST_ACCOUNT;
  const pseudo: Record<string, string | string[]> = {
    "AWS::AccountId": account,
    "AWS::Region": region,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": stackName,
    "AWS::StackId":
      options.stackId ?? `arn:aws:cloudformation:${region}:${account}:stack/${stackName}/${TEST_STACK_UUID}`,
    "AWS::NotificationARNs": [],
  };

  // Parameters: given values, else defaults; every one checked against its constraints.
  const parameters: Record<string, string | string[]> = {};
  const given = options.parameters ?? {};
  for (const name of Object.keys(given)) {
    if (!template.Parameters?.[name]) fail(`Parameters.${name}`, "not a parameter of this template");
  }
  for (const [name, spec] of Object.entries(template.Parameters ?? {})) {
    const raw = given[name] ?? (spec.Default === undefined ? undefined : String(spec.Default));
    if (raw === undefined) fail(`Parameters.${name}`, "no value and no Default");
    checkParameter(name, spec, raw);
    const type = String(spec.Type);
    parameters[name] =
      type === "CommaDelimitedList" || type.startsWith("List<") ? raw.split(",").map((v) => v.trim()) : raw;
  }

  const conditions: Record<string, boolean> = {};
  const conditionStack = new Set<string>();
  const condition = (name: string, path: string): boolean => {
    if (name in conditions) return conditions[name]!;
    const expr = template.Conditions?.[name];
    if (expr === undefined) fail(path, `unknown condition ${name}`);
    if (conditionStack.has(name)) fail(path, `condition ${name} refers to itself`);
    conditionStack.add(name);
    const value = resolve(expr, `Conditions.${name}`);
    conditionStack.delete(name);
    if (typeof value !== "boolean") fail(`Conditions.${name}`, "does not evaluate to a boolean");
    conditions[name] = value;
    return value;
  };

  const resources = template.Resources;
  const physical = new Map<string, { ref: string; attributes: Record<string, string> }>();
  const included = (logicalId: string) => {
    const c = resources[logicalId]?.Condition;
    return c === undefined || condition(c, `Resources.${logicalId}.Condition`);
  };

  // Physical ids follow the resource's own name property when it has one (BucketName, LogGroupName, ...).
  const identify = (logicalId: string, path: string) => {
    const known = physical.get(logicalId);
    if (known) return known;
    const res = resources[logicalId];
    if (!res) fail(path, `unknown resource ${logicalId}`);
    if (!included(logicalId)) fail(path, `${logicalId} is not created under these conditions`);
    const props = res.Properties ?? {};
    const named = (prop: string) => (props[prop] === undefined ? undefined : resolveProp(props[prop], logicalId, prop));
    const generated = `${stackName}-${logicalId}-${suffix(logicalId)}`;
    const arn = (service: string, resource: string) => `arn:aws:${service}:${region}:${account}:${resource}`;
    let id: { ref: string; attributes: Record<string, string> };
    switch (res.Type) {
      case "AWS::S3::Bucket": {
        const name = named("BucketName") ?? generated.toLowerCase();
        id = { ref: name, attributes: { Arn: `arn:aws:s3:::${name}`, DomainName: `${name}.s3.amazonaws.com` } };
        break;
      }
      case "AWS::SQS::Queue": {
        const name = named("QueueName") ?? generated;
        const url = `https://sqs.${region}.amazonaws.com/${account}/${name}`;
        id = { ref: url, attributes: { Arn: arn("sqs", name), QueueName: name, QueueUrl: url } };
        break;
      }
      case "AWS::Logs::LogGroup": {
        const name = named("LogGroupName") ?? generated;
        id = { ref: name, attributes: { Arn: arn("logs", `log-group:${name}:*`) } };
        break;
      }
      case "AWS::Lambda::Function": {
        const name = named("FunctionName") ?? generated;
        id = { ref: name, attributes: { Arn: arn("lambda", `function:${name}`) } };
        break;
      }
      case "AWS::IAM::Role": {
        const name = named("RoleName") ?? generated;
        id = {
          ref: name,
          attributes: { Arn: `arn:aws:iam::${account}:role/${name}`, RoleId: `AROA${suffix(name)}` },
        };
        break;
      }
      case "AWS::IAM::ManagedPolicy": {
        const name = named("ManagedPolicyName") ?? generated;
        const policyArn = `arn:aws:iam::${account}:policy${named("Path") ?? "/"}${name}`;
        id = { ref: policyArn, attributes: { PolicyArn: policyArn } };
        break;
      }
      case "AWS::IAM::OIDCProvider": {
        const host = (named("Url") ?? "https://oidc.example.com").replace(/^https:\/\//, "");
        const providerArn = `arn:aws:iam::${account}:oidc-provider/${host}`;
        id = { ref: providerArn, attributes: { Arn: providerArn } };
        break;
      }
      case "AWS::CloudWatch::Alarm": {
        const name = named("AlarmName") ?? generated;
        id = { ref: name, attributes: { Arn: arn("cloudwatch", `alarm:${name}`) } };
        break;
      }
      case "AWS::CloudWatch::Dashboard": {
        id = { ref: named("DashboardName") ?? generated, attributes: {} };
        break;
      }
      case "AWS::Transfer::Server": {
        const serverId = `s-${suffix(logicalId).toLowerCase()}abcdef`;
        id = {
          ref: arn("transfer", `server/${serverId}`),
          attributes: { ServerId: serverId, Arn: arn("transfer", `server/${serverId}`) },
        };
        break;
      }
      default:
        id = { ref: generated, attributes: { Arn: arn(res.Type.split("::")[1]!.toLowerCase(), generated) } };
    }
    physical.set(logicalId, id);
    return id;
  };

  const resolveProp = (value: CfnValue, logicalId: string, prop: string) =>
    asString(resolve(value, `Resources.${logicalId}.Properties.${prop}`), `Resources.${logicalId}.Properties.${prop}`);

  const ref = (name: string, path: string): Value => {
    if (name === "AWS::NoValue") return NO_VALUE;
    if (name in pseudo) return pseudo[name]!;
    if (name in parameters) return parameters[name]!;
    return identify(name, path).ref;
  };

  const getAtt = (resource: string, attribute: string, path: string): string => {
    const id = identify(resource, path);
    const value = id.attributes[attribute];
    if (value === undefined) fail(path, `the evaluator has no value for ${resource}.${attribute}`);
    return value;
  };

  const substitute = (text: string, vars: Record<string, Value>, path: string): string =>
    text.replace(/\$\{([^}]*)\}/g, (_, body: string) => {
      if (body.startsWith("!")) return "${" + body.slice(1) + "}";
      if (body in vars) return asString(vars[body]!, path);
      const dot = body.indexOf(".");
      if (dot > 0 && !body.startsWith("AWS::")) return getAtt(body.slice(0, dot), body.slice(dot + 1), path);
      return asString(ref(body, path), path);
    });

  function resolve(value: CfnValue, path: string): Value {
    const fn = intrinsic(value);
    if (!fn) {
      if (Array.isArray(value)) {
        return value.map((v, i) => resolve(v, `${path}[${i}]`)).filter((v): v is CfnValue => v !== NO_VALUE);
      }
      if (value !== null && typeof value === "object") {
        const out: CfnObject = {};
        for (const [k, v] of Object.entries(value)) {
          const r = resolve(v, `${path}.${k}`);
          if (r !== NO_VALUE) out[k] = r;
        }
        return out;
      }
      return value;
    }
    const [name, arg] = fn;
    const args = (n: number) => {
      const list = asList(arg, `${path}.${name}`);
      if (list.length !== n) fail(`${path}.${name}`, `takes ${n} arguments, got ${list.length}`);
      return list;
    };
    switch (name) {
      case "Ref":
        return ref(asString(arg, path), path);
      case "Condition":
        return condition(asString(arg, path), path);
      case "Fn::GetAtt": {
        const [r, a] = args(2);
        return getAtt(asString(r!, path), asString(resolve(a!, path), path), path);
      }
      case "Fn::Sub": {
        if (typeof arg === "string") return substitute(arg, {}, path);
        const [text, vars] = args(2);
        const resolvedVars: Record<string, Value> = {};
        for (const [k, v] of Object.entries(vars as CfnObject)) resolvedVars[k] = resolve(v, `${path}.Fn::Sub.${k}`);
        return substitute(asString(text!, path), resolvedVars, path);
      }
      case "Fn::Join": {
        const [delimiter, list] = args(2);
        const items = asList(resolve(list!, path), path).map((v) => asString(v, path));
        return items.join(asString(delimiter!, path));
      }
      case "Fn::Select": {
        const [index, list] = args(2);
        const i = Number(asString(resolve(index!, path), path));
        const items = asList(resolve(list!, path), path);
        if (!Number.isInteger(i) || i < 0 || i >= items.length)
          fail(path, `Fn::Select index ${i} out of range (${items.length})`);
        return items[i]!;
      }
      case "Fn::Split": {
        const [delimiter, text] = args(2);
        return asString(resolve(text!, path), path).split(asString(delimiter!, path));
      }
      case "Fn::If": {
        const [c, whenTrue, whenFalse] = args(3);
        return condition(asString(c!, path), path) ? resolve(whenTrue!, path) : resolve(whenFalse!, path);
      }
      case "Fn::Equals": {
        const [a, b] = args(2);
        return asString(resolve(a!, path), path) === asString(resolve(b!, path), path);
      }
      case "Fn::Not": {
        const [c] = args(1);
        return !(resolve(c!, path) as boolean);
      }
      case "Fn::And":
        return asList(arg, path).every((c) => resolve(c, path) === true);
      case "Fn::Or":
        return asList(arg, path).some((c) => resolve(c, path) === true);
      case "Fn::FindInMap": {
        const [map, top, second] = args(3).map((v) => asString(resolve(v, path), path));
        const found = template.Mappings?.[map!]?.[top!]?.[second!];
        if (found === undefined) fail(path, `no mapping ${map}.${top}.${second}`);
        return found;
      }
      // Rule functions (Rules section only).
      case "Fn::Contains": {
        const [items, v] = args(2);
        const value = asString(resolve(v!, path), path);
        return asList(resolve(items!, path), path).some((i) => asString(i, path) === value);
      }
      case "Fn::EachMemberEquals": {
        const [items, v] = args(2);
        const value = asString(resolve(v!, path), path);
        return asList(resolve(items!, path), path).every((i) => asString(i, path) === value);
      }
      case "Fn::EachMemberIn": {
        const [items, allowed] = args(2).map((l) => asList(resolve(l, path), path).map((i) => asString(i, path)));
        return items!.every((i) => allowed!.includes(i));
      }
      case "Fn::GetAZs":
        return ["a", "b", "c"].map((z) => `${region}${z}`);
      case "Fn::Base64":
        return Buffer.from(asString(resolve(arg, path), path)).toString("base64");
      default:
        return fail(path, `the test evaluator does not implement ${name}`);
    }
  }

  // Rules: CloudFormation refuses the parameters when an applicable assertion fails.
  for (const [name, rule] of Object.entries(template.Rules ?? {})) {
    const path = `Rules.${name}`;
    if (rule.RuleCondition !== undefined && resolve(rule.RuleCondition, `${path}.RuleCondition`) !== true) continue;
    for (const [i, assertion] of asList(rule.Assertions ?? [], path).entries()) {
      const { Assert, AssertDescription } = assertion as CfnObject;
      if (resolve(Assert!, `${path}.Assertions[${i}]`) !== true)
        fail(path, String(AssertDescription ?? "assertion failed"));
    }
  }

  for (const name of Object.keys(template.Conditions ?? {})) condition(name, `Conditions.${name}`);

  const out: Record<string, ResolvedResource> = {};
  for (const [logicalId, res] of Object.entries(resources)) {
    if (!included(logicalId)) continue;
    const properties = resolve(res.Properties ?? {}, `Resources.${logicalId}.Properties`) as CfnObject;
    out[logicalId] = { Type: res.Type, Properties: properties, ...identify(logicalId, `Resources.${logicalId}`) };
  }
  const outputs: Record<string, CfnValue> = {};
  for (const [name, output] of Object.entries(template.Outputs ?? {})) {
    if (typeof output.Condition === "string" && !condition(output.Condition, `Outputs.${name}`)) continue;
    const value = resolve(output.Value!, `Outputs.${name}.Value`);
    if (value !== NO_VALUE) outputs[name] = value;
  }
  return { parameters, conditions, resources: out, outputs };
}
