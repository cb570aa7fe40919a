// A small CloudFormation on loopback speaking the real awsQuery wire protocol (form-encoded requests, XML answers), so
// a bundled action running in another process can be pointed at it with AWS_ENDPOINT_URL_CLOUDFORMATION: mocks do not
// cross process boundaries. It provisions nothing by itself. It keeps stacks, change sets and events, and moves a stack through
// its statuses one step per DescribeStacks call, the way a real one moves while a client polls. Only the calls
// deploy-stack makes are implemented.
//
// A resource fails to create or update when its template gives `Metadata: {LocalCloudFormation: {Fail: "reason"}}`.
// Parameters follow CloudFormation's rules (a template default for an omitted parameter, UsePreviousValue only on an
// update, unknown or missing parameters refused), and a caller may provision resource types for real (`provision`),
// so a stack's outputs can name a bucket that exists. With `evaluate`, a template is evaluated as CloudFormation would
// (conditions, every intrinsic, Rules, parameter constraints; test/support/template-eval.ts): provisioners get resolved
// properties and outputs are the evaluated ones, so a real template can be deployed and what it wires can be run.
// Templates come inline (TemplateBody) or by TemplateURL, read from wherever the URL points (the local S3).
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { parse } from "yaml";
import { parseCfnYaml } from "./cfn-yaml";
import { evaluateTemplate, type ResolvedResource, type ResolvedTemplate } from "./template-eval";

const REGION = "us-east-1";
const ACCOUNT = "123456789012";
const NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

export interface LocalStackEvent {
  EventId: string;
  StackId: string;
  StackName: string;
  LogicalResourceId: string;
  ResourceType: string;
  ResourceStatus: string;
  ResourceStatusReason?: string;
  Timestamp: Date;
}

interface TemplateParameter {
  Type?: string;
  Default?: unknown;
  NoEcho?: unknown;
}

interface Template {
  /** The template's text, for evaluation. */
  body: string;
  parameters: Record<string, TemplateParameter>;
  resources: Record<
    string,
    { Type?: string; Properties?: unknown; Metadata?: { LocalCloudFormation?: { Fail?: string } } }
  >;
  outputs: Record<string, { Value?: unknown }>;
}

interface ChangeSet {
  name: string;
  id: string;
  type: "CREATE" | "UPDATE";
  template: Template;
  parameters: Record<string, string>;
  status: string;
  reason?: string;
  changes: Array<{ action: string; logicalId: string; type: string; replacement?: string }>;
  describes: number;
  /** With `evaluate`: the template as it deploys with these parameters. */
  resolved?: ResolvedTemplate;
}

export interface LocalStack {
  name: string;
  id: string;
  status: string;
  reason?: string;
  protection: boolean;
  template?: Template;
  parameters: Record<string, string>;
  /** Physical ids of provisioned resources, by logical id. */
  physicalIds: Record<string, string>;
  /** With `evaluate`: the deployed template, resolved. */
  resolved?: ResolvedTemplate;
  tags: Record<string, string>;
  events: LocalStackEvent[];
  changeSets: Map<string, ChangeSet>;
  /** Statuses still to come, one per DescribeStacks; each with the events it emits. */
  pending: Array<{ status: string; reason?: string; events: Array<[string, string, string, string?]> }>;
  /** Applied when the pending statuses run out with success. */
  onSuccess?: () => void;
}

export interface CloudFormationCall {
  action: string;
  params: Record<string, string>;
}

/** Creates a resource of one type for real; returns its physical id (what `Ref` gives). A throw fails the resource. */
export type Provisioner = (resource: {
  stackName: string;
  stackId: string;
  logicalId: string;
  properties: unknown;
  /** With `evaluate`: the resource as CloudFormation resolves it (properties, physical id, attributes). */
  resolved?: ResolvedResource;
}) => string | Promise<string>;

export interface LocalCloudFormationOptions {
  provision?: Record<string, Provisioner>;
  /** Evaluate templates (see the top of this file); a template that does not evaluate fails CreateChangeSet. */
  evaluate?: boolean;
  /** Reads a TemplateURL; by default a plain GET. */
  fetchTemplate?: (url: string) => Promise<string>;
}

export interface LocalCloudFormation {
  endpoint: string;
  region: string;
  accountId: string;
  stacks: Map<string, LocalStack>;
  calls: CloudFormationCall[];
  stackByName(name: string): LocalStack | undefined;
  close(): Promise<void>;
}

class Fault extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export async function startLocalCloudFormation(options: LocalCloudFormationOptions = {}): Promise<LocalCloudFormation> {
  const stacks = new Map<string, LocalStack>(); // by id, deleted ones included (AWS answers DescribeStacks by id for them)
  const calls: CloudFormationCall[] = [];
  let clock = Date.UTC(2026, 10, 23, 12, 0, 0);
  const tick = () => new Date((clock += 1000));

  const live = (name: string) => [...stacks.values()].find((s) => s.name === name && s.status !== "DELETE_COMPLETE");
  const find = (nameOrId: string) => stacks.get(nameOrId) ?? live(nameOrId);
  const mustFind = (nameOrId: string) => {
    const s = find(nameOrId);
    if (!s) throw new Fault("ValidationError", `Stack with id ${nameOrId} does not exist`);
    return s;
  };
  const emit = (s: LocalStack, logicalId: string, type: string, status: string, reason?: string) => {
    s.events.unshift({
      EventId: randomUUID(),
      StackId: s.id,
      StackName: s.name,
      LogicalResourceId: logicalId,
      ResourceType: type,
      ResourceStatus: status,
      ResourceStatusReason: reason,
      Timestamp: tick(),
    });
  };
  const advance = (s: LocalStack) => {
    const step = s.pending.shift();
    if (!step) return;
    s.status = step.status;
    s.reason = step.reason;
    for (const [id, type, status, reason] of step.events) emit(s, id, type, status, reason);
    if (s.pending.length === 0 && /_COMPLETE$/.test(s.status) && !/ROLLBACK/.test(s.status)) s.onSuccess?.();
  };

  const templateBody = async (p: Record<string, string>): Promise<string> => {
    if (p.TemplateBody) return p.TemplateBody;
    if (!p.TemplateURL) throw new Fault("ValidationError", "Either Template URL or Template Body must be specified.");
    const read = options.fetchTemplate ?? fetchText;
    return read(p.TemplateURL).catch((err: unknown) => {
      throw new Fault("ValidationError", `TemplateURL ${p.TemplateURL} cannot be read: ${String(err)}`);
    });
  };

  const handlers: Record<string, (p: Record<string, string>) => string | Promise<string>> = {
    DescribeStacks(p) {
      const s = mustFind(p.StackName ?? "");
      advance(s);
      const outputs = s.template && s.status !== "REVIEW_IN_PROGRESS" ? outputsOf({ ...s, template: s.template }) : [];
      return el("Stacks", [
        {
          StackId: s.id,
          StackName: s.name,
          StackStatus: s.status,
          StackStatusReason: s.reason,
          CreationTime: new Date(clock),
          EnableTerminationProtection: s.protection,
          Outputs: outputs.map(([k, v]) => ({ OutputKey: k, OutputValue: v })),
          Parameters: Object.entries(s.parameters).map(([k, v]) => ({
            ParameterKey: k,
            ParameterValue: isNoEcho(s.template?.parameters[k]) ? "****" : v,
          })),
          Tags: Object.entries(s.tags).map(([Key, Value]) => ({ Key, Value })),
        },
      ]);
    },
    DescribeStackEvents(p) {
      const s = mustFind(p.StackName ?? "");
      return el("StackEvents", s.events);
    },
    async CreateChangeSet(p) {
      const name = p.StackName ?? "";
      const type = (p.ChangeSetType ?? "UPDATE") as "CREATE" | "UPDATE";
      let s = live(name);
      if (type === "CREATE" && s && s.status !== "REVIEW_IN_PROGRESS") {
        throw new Fault("AlreadyExistsException", `Stack [${name}] already exists`);
      }
      if (type === "UPDATE" && (!s || s.status === "REVIEW_IN_PROGRESS")) {
        throw new Fault("ValidationError", `Stack [${name}] does not exist`);
      }
      if (type === "UPDATE" && s && /_IN_PROGRESS$/.test(s.status)) {
        throw new Fault("ValidationError", `Stack:${s.id} is in ${s.status} state and can not be updated.`);
      }
      const template = readTemplate(await templateBody(p));
      const given = members(p, "Parameters", ["ParameterKey", "ParameterValue", "UsePreviousValue"]);
      const parameters = resolveParameters(template, given, type === "UPDATE" ? s?.parameters : undefined);
      const id = s?.id ?? `arn:aws:cloudformation:${REGION}:${ACCOUNT}:stack/${name}/${randomUUID()}`;
      const resolved = options.evaluate ? evaluate(template, parameters, name, id) : undefined;
      if (!s) {
        s = {
          name,
          id,
          status: "REVIEW_IN_PROGRESS",
          protection: false,
          parameters: {},
          physicalIds: {},
          tags: {},
          events: [],
          changeSets: new Map(),
          pending: [],
        };
        stacks.set(s.id, s);
        emit(s, name, "AWS::CloudFormation::Stack", "REVIEW_IN_PROGRESS", "User Initiated");
      }
      const csName = p.ChangeSetName ?? "";
      if (s.changeSets.has(csName)) throw new Fault("AlreadyExistsException", `ChangeSet [${csName}] already exists`);
      const changes = diff(s.template, s.parameters, template, parameters);
      const empty =
        type === "UPDATE" &&
        changes.length === 0 &&
        sameOutputs(s, { template, parameters, resolved, physicalIds: s.physicalIds });
      s.changeSets.set(csName, {
        name: csName,
        id: `arn:aws:cloudformation:${REGION}:${ACCOUNT}:changeSet/${csName}/${randomUUID()}`,
        type,
        template,
        parameters,
        status: empty ? "FAILED" : "CREATE_COMPLETE",
        reason: empty
          ? "The submitted information didn't contain changes. Submit different information to create a change set."
          : undefined,
        changes,
        describes: 0,
        resolved,
      });
      s.tags = Object.fromEntries(members(p, "Tags", ["Key", "Value"]).map((m) => [m.Key ?? "", m.Value ?? ""]));
      return el("Id", s.changeSets.get(csName)!.id) + el("StackId", s.id);
    },
    DescribeChangeSet(p) {
      const s = mustFind(p.StackName ?? "");
      const cs = s.changeSets.get(p.ChangeSetName ?? "");
      if (!cs) throw new Fault("ChangeSetNotFound", `ChangeSet [${p.ChangeSetName}] does not exist`, 404);
      // The first answer is "still computing", so clients must poll as they must against AWS.
      const status = cs.describes++ === 0 ? "CREATE_IN_PROGRESS" : cs.status;
      return [
        el("ChangeSetName", cs.name),
        el("ChangeSetId", cs.id),
        el("StackId", s.id),
        el("StackName", s.name),
        el("Status", status),
        el("StatusReason", status === "FAILED" ? cs.reason : undefined),
        el("ExecutionStatus", status === "CREATE_COMPLETE" ? "AVAILABLE" : "UNAVAILABLE"),
        el(
          "Changes",
          status === "CREATE_COMPLETE"
            ? cs.changes.map((c) => ({
                Type: "Resource",
                ResourceChange: {
                  Action: c.action,
                  LogicalResourceId: c.logicalId,
                  ResourceType: c.type,
                  Replacement: c.replacement,
                },
              }))
            : [],
        ),
      ].join("");
    },
    async ExecuteChangeSet(p) {
      const s = mustFind(p.StackName ?? "");
      const cs = s.changeSets.get(p.ChangeSetName ?? "");
      if (!cs || cs.status !== "CREATE_COMPLETE") {
        throw new Fault("InvalidChangeSetStatus", `ChangeSet [${p.ChangeSetName}] cannot be executed in its state`);
      }
      s.changeSets.delete(cs.name);
      const verb = cs.type === "CREATE" ? "CREATE" : "UPDATE";
      const touched = cs.changes.filter((c) => c.action !== "Remove");
      const provisioned: Record<string, string> = {};
      for (const c of touched.filter((t) => t.action === "Add")) {
        const provision = options.provision?.[c.type];
        const resource = cs.template.resources[c.logicalId];
        if (!provision || resource?.Metadata?.LocalCloudFormation?.Fail) continue;
        const resolved = cs.resolved?.resources[c.logicalId];
        // A resource its Condition leaves out is not created.
        if (cs.resolved && !resolved) continue;
        try {
          provisioned[c.logicalId] = await provision({
            stackName: s.name,
            stackId: s.id,
            logicalId: c.logicalId,
            properties: resolved?.Properties ?? resource?.Properties,
            resolved,
          });
        } catch (err) {
          resource!.Metadata = { LocalCloudFormation: { Fail: err instanceof Error ? err.message : String(err) } };
        }
      }
      const failing = touched.find((c) => cs.template.resources[c.logicalId]?.Metadata?.LocalCloudFormation?.Fail);
      const stackType = "AWS::CloudFormation::Stack";
      const begin: LocalStack["pending"][number] = {
        status: `${verb}_IN_PROGRESS`,
        events: [
          [s.name, stackType, `${verb}_IN_PROGRESS`, "User Initiated"],
          ...touched.map((c): [string, string, string] => [c.logicalId, c.type, `${verb}_IN_PROGRESS`]),
        ],
      };
      if (failing) {
        const reason = cs.template.resources[failing.logicalId]!.Metadata!.LocalCloudFormation!.Fail!;
        const rollback = cs.type === "CREATE" ? "ROLLBACK" : "UPDATE_ROLLBACK";
        s.pending = [
          begin,
          {
            status: `${rollback}_IN_PROGRESS`,
            events: [
              [failing.logicalId, failing.type, `${verb}_FAILED`, reason],
              [
                s.name,
                stackType,
                `${rollback}_IN_PROGRESS`,
                `The following resource(s) failed: [${failing.logicalId}].`,
              ],
            ],
          },
          { status: `${rollback}_COMPLETE`, events: [[s.name, stackType, `${rollback}_COMPLETE`]] },
        ];
        s.onSuccess = undefined;
      } else {
        s.pending = [
          begin,
          {
            status: `${verb}_COMPLETE`,
            events: [
              ...touched.map((c): [string, string, string] => [c.logicalId, c.type, `${verb}_COMPLETE`]),
              [s.name, stackType, `${verb}_COMPLETE`],
            ],
          },
        ];
        s.onSuccess = () => {
          s.template = cs.template;
          s.parameters = cs.parameters;
          s.physicalIds = { ...s.physicalIds, ...provisioned };
          s.resolved = cs.resolved;
        };
      }
      return "";
    },
    DeleteChangeSet(p) {
      const s = mustFind(p.StackName ?? "");
      s.changeSets.delete(p.ChangeSetName ?? "");
      return "";
    },
    DeleteStack(p) {
      const s = find(p.StackName ?? "");
      if (!s || s.status === "DELETE_COMPLETE") return "";
      if (s.protection) {
        throw new Fault(
          "ValidationError",
          `Stack [${s.name}] cannot be deleted while TerminationProtection is enabled`,
        );
      }
      s.pending = [
        {
          status: "DELETE_IN_PROGRESS",
          events: [[s.name, "AWS::CloudFormation::Stack", "DELETE_IN_PROGRESS", "User Initiated"]],
        },
        { status: "DELETE_COMPLETE", events: [[s.name, "AWS::CloudFormation::Stack", "DELETE_COMPLETE"]] },
      ];
      s.onSuccess = undefined;
      return "";
    },
    async GetTemplateSummary(p) {
      let template: Template;
      if (p.TemplateBody || p.TemplateURL) template = readTemplate(await templateBody(p));
      else if (p.StackName) template = mustFind(p.StackName).template ?? readTemplate("Resources: {}");
      else
        throw new Fault(
          "ValidationError",
          "this local CloudFormation only reads TemplateBody, TemplateURL or StackName",
        );
      return el(
        "Parameters",
        Object.entries(template.parameters).map(([k, spec]) => ({
          ParameterKey: k,
          ParameterType: spec.Type,
          DefaultValue: spec.Default === undefined ? undefined : String(spec.Default),
          NoEcho: isNoEcho(spec),
        })),
      );
    },
    UpdateTerminationProtection(p) {
      const s = mustFind(p.StackName ?? "");
      s.protection = p.EnableTerminationProtection === "true";
      return el("StackId", s.id);
    },
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const params = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString("utf8")));
      const action = params.Action ?? "";
      calls.push({ action, params });
      const requestId = randomUUID();
      try {
        const handler = handlers[action];
        if (!handler) throw new Fault("InvalidAction", `local CloudFormation does not implement ${action}`);
        const result = handler(params);
        if (typeof result !== "string") {
          result.then(
            (text) => answer(action, requestId, text),
            (err: unknown) => answer(action, requestId, err),
          );
          return;
        }
        answer(action, requestId, result);
      } catch (err) {
        answer(action, requestId, err);
      }
    });
    function answer(action: string, requestId: string, result: unknown) {
      let status = 200;
      let body: string;
      if (typeof result === "string") {
        body = `<${action}Response xmlns="${NS}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`;
      } else {
        const fault = result instanceof Fault ? result : new Fault("InternalFailure", String(result), 500);
        status = fault.status;
        body = `<ErrorResponse xmlns="${NS}"><Error><Type>Sender</Type><Code>${fault.code}</Code><Message>${escape(fault.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
      }
      res.writeHead(status, { "content-type": "text/xml", "x-amzn-requestid": requestId });
      res.end(body);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    region: REGION,
    accountId: ACCOUNT,
    stacks,
    calls,
    stackByName: live,
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
}

async function fetchText(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.text();
}

function evaluate(template: Template, parameters: Record<string, string>, stackName: string, stackId: string) {
  try {
    return evaluateTemplate(parseCfnYaml(template.body, stackName), {
      parameters,
      stackName,
      stackId,
      region: REGION,
      accountId: ACCOUNT,
    });
  } catch (err) {
    throw new Fault("ValidationError", `Template error: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function readTemplate(body: string): Template {
  const doc = parse(body, { customTags: cfnTags() }) as {
    Parameters?: Template["parameters"];
    Resources?: Template["resources"];
    Outputs?: Template["outputs"];
  };
  if (!doc?.Resources || typeof doc.Resources !== "object") {
    throw new Fault("ValidationError", "Template format error: At least one Resources member must be defined.");
  }
  return { body, parameters: doc.Parameters ?? {}, resources: doc.Resources, outputs: doc.Outputs ?? {} };
}

const isNoEcho = (spec: TemplateParameter | undefined) => spec?.NoEcho === true || spec?.NoEcho === "true";

/** The values a change set deploys with, by CloudFormation's rules; `previous` is the stack's, for an update only. */
function resolveParameters(
  template: Template,
  given: Array<Record<string, string | undefined>>,
  previous: Record<string, string> | undefined,
): Record<string, string> {
  const values: Record<string, string> = {};
  const unknown = given.map((g) => g.ParameterKey ?? "").filter((k) => !(k in template.parameters));
  if (unknown.length)
    throw new Fault("ValidationError", `Parameters: [${unknown.join(", ")}] do not exist in the template`);
  for (const g of given) {
    const key = g.ParameterKey ?? "";
    if (g.UsePreviousValue === "true") {
      if (!previous) {
        throw new Fault(
          "ValidationError",
          `Invalid input for parameter key ${key}. Cannot specify usePreviousValue as true when creating a stack`,
        );
      }
      if (!(key in previous)) {
        throw new Fault(
          "ValidationError",
          `Invalid input for parameter key ${key}. Cannot specify usePreviousValue as true for a parameter key not in the previous template`,
        );
      }
      values[key] = previous[key]!;
    } else values[key] = g.ParameterValue ?? "";
  }
  const missing: string[] = [];
  for (const [key, spec] of Object.entries(template.parameters)) {
    if (key in values) continue;
    if (spec.Default === undefined) missing.push(key);
    else values[key] = String(spec.Default);
  }
  if (missing.length) throw new Fault("ValidationError", `Parameters: [${missing.join(", ")}] must have values`);
  return values;
}

// Intrinsic functions become their JSON form ({"Ref": ...}); enough to diff templates and resolve simple outputs.
function cfnTags() {
  const names = [
    "Ref",
    "GetAtt",
    "Sub",
    "Join",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Select",
    "Split",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Base64",
    "Condition",
    "Cidr",
  ];
  return names.flatMap((n) => {
    const key = n === "Ref" || n === "Condition" ? n : `Fn::${n}`;
    const resolve = (value: unknown) => ({ [key]: value });
    return (["scalar", "seq", "map"] as const).map((collection) => ({
      tag: `!${n}`,
      collection: collection === "scalar" ? undefined : collection,
      resolve: (v: unknown) => resolve((v as { toJSON?: () => unknown }).toJSON?.() ?? v),
    }));
  });
}

interface OutputSource {
  name: string;
  id: string;
  template: Template;
  parameters: Record<string, string>;
  physicalIds: Record<string, string>;
  resolved?: ResolvedTemplate;
}

/**
 * Evaluated outputs when the template was evaluated; otherwise outputs that are text, a Ref (parameter, resource,
 * pseudo parameter) or a Sub of those, and "" for anything else.
 */
function outputsOf(s: OutputSource): Array<[string, string]> {
  if (s.resolved) {
    return Object.entries(s.resolved.outputs).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : String(v)]);
  }
  const t = s.template;
  const ref = (name: string): string => {
    if (name in s.parameters) return s.parameters[name]!;
    if (name === "AWS::StackName") return s.name;
    if (name === "AWS::StackId") return s.id;
    if (name === "AWS::Region") return REGION;
    if (name === "AWS::AccountId") return ACCOUNT;
    return s.physicalIds[name] ?? `${name}-physical-id`;
  };
  return Object.entries(t.outputs).map(([k, o]) => {
    const v = o.Value as { Ref?: string; "Fn::Sub"?: unknown } | string | undefined;
    if (typeof v === "string") return [k, v];
    if (typeof v?.Ref === "string") return [k, ref(v.Ref)];
    const sub = v?.["Fn::Sub"];
    if (typeof sub === "string") return [k, sub.replace(/\$\{([\w:]+)\}/g, (_m, name: string) => ref(name))];
    return [k, ""];
  });
}

function sameOutputs(s: LocalStack, next: Omit<OutputSource, "name" | "id">): boolean {
  return (
    !!s.template &&
    JSON.stringify(outputsOf({ ...s, template: s.template })) === JSON.stringify(outputsOf({ ...s, ...next }))
  );
}

function diff(
  before: Template | undefined,
  beforeParams: Record<string, string>,
  after: Template,
  afterParams: Record<string, string>,
): ChangeSet["changes"] {
  const old = before?.resources ?? {};
  const paramsChanged = JSON.stringify(sorted(beforeParams)) !== JSON.stringify(sorted(afterParams));
  const changes: ChangeSet["changes"] = [];
  for (const [id, r] of Object.entries(after.resources)) {
    const prev = old[id];
    if (!prev) changes.push({ action: "Add", logicalId: id, type: r.Type ?? "?" });
    else if (paramsChanged || JSON.stringify(prev) !== JSON.stringify(r)) {
      changes.push({ action: "Modify", logicalId: id, type: r.Type ?? "?", replacement: "False" });
    }
  }
  for (const [id, r] of Object.entries(old)) {
    if (!after.resources[id]) changes.push({ action: "Remove", logicalId: id, type: r.Type ?? "?" });
  }
  return changes;
}

const sorted = (o: Record<string, string>) =>
  Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));

/** awsQuery list members: `Prefix.member.N.Field`. */
function members(
  p: Record<string, string>,
  prefix: string,
  fields: string[],
): Array<Record<string, string | undefined>> {
  const out: Array<Record<string, string | undefined>> = [];
  for (let i = 1; fields.some((f) => `${prefix}.member.${i}.${f}` in p); i++) {
    out.push(Object.fromEntries(fields.map((f) => [f, p[`${prefix}.member.${i}.${f}`]])));
  }
  return out;
}

function el(name: string, value: unknown): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return `<${name}>${value.map((v) => el("member", v)).join("")}</${name}>`;
  if (value instanceof Date) return `<${name}>${value.toISOString()}</${name}>`;
  if (typeof value === "object") {
    return `<${name}>${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => el(k, v))
      .join("")}</${name}>`;
  }
  return `<${name}>${escape(String(value))}</${name}>`;
}

function escape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
