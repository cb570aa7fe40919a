import { intrinsic, type CfnTemplate, type CfnValue } from "./cfn-yaml";

/** Every name a template refers to, and where: the raw material of the reference checks. */
export interface TemplateReference {
  kind: "Ref" | "GetAtt" | "Sub" | "Condition" | "FindInMap" | "DependsOn";
  /** Parameter, resource, pseudo parameter, condition or mapping name. */
  target: string;
  /** For GetAtt and `${Resource.Attribute}`. */
  attribute?: string;
  /** For FindInMap with literal keys. */
  keys?: [string, string];
  section: "Conditions" | "Resources" | "Outputs" | "Rules";
  path: string;
}

export const PSEUDO_PARAMETERS = new Set([
  "AWS::AccountId",
  "AWS::NotificationARNs",
  "AWS::NoValue",
  "AWS::Partition",
  "AWS::Region",
  "AWS::StackId",
  "AWS::StackName",
  "AWS::URLSuffix",
]);

export function templateReferences(template: CfnTemplate): TemplateReference[] {
  const found: TemplateReference[] = [];

  const walk = (value: CfnValue | undefined, path: string, section: TemplateReference["section"]): void => {
    if (value === null || value === undefined || typeof value !== "object") return;
    if (Array.isArray(value)) return value.forEach((v, i) => walk(v, `${path}[${i}]`, section));
    const fn = intrinsic(value);
    const add = (ref: Omit<TemplateReference, "section" | "path">) => found.push({ ...ref, section, path });
    if (fn) {
      const [name, arg] = fn;
      if (name === "Ref" && typeof arg === "string") add({ kind: "Ref", target: arg });
      if (name === "Condition" && typeof arg === "string") add({ kind: "Condition", target: arg });
      if (name === "Fn::If" && Array.isArray(arg) && typeof arg[0] === "string")
        add({ kind: "Condition", target: arg[0] });
      if (name === "Fn::GetAtt" && Array.isArray(arg) && typeof arg[0] === "string") {
        add({ kind: "GetAtt", target: arg[0], ...(typeof arg[1] === "string" ? { attribute: arg[1] } : {}) });
      }
      if (name === "Fn::FindInMap" && Array.isArray(arg) && typeof arg[0] === "string") {
        const [, k1, k2] = arg;
        add({
          kind: "FindInMap",
          target: arg[0],
          ...(typeof k1 === "string" && typeof k2 === "string" ? { keys: [k1, k2] } : {}),
        });
      }
      if (name === "Fn::Sub") {
        const [text, vars] = typeof arg === "string" ? [arg, {}] : Array.isArray(arg) ? arg : [undefined, {}];
        const local = vars !== null && typeof vars === "object" && !Array.isArray(vars) ? Object.keys(vars) : [];
        if (typeof text === "string") {
          for (const [, body] of text.matchAll(/\$\{([^}]*)\}/g)) {
            if (body!.startsWith("!") || local.includes(body!)) continue;
            const dot = body!.indexOf(".");
            if (dot > 0 && !PSEUDO_PARAMETERS.has(body!)) {
              add({ kind: "Sub", target: body!.slice(0, dot), attribute: body!.slice(dot + 1) });
            } else {
              add({ kind: "Sub", target: body! });
            }
          }
        }
      }
    }
    for (const [k, v] of Object.entries(value)) walk(v, `${path}.${k}`, section);
  };

  for (const [name, expr] of Object.entries(template.Conditions ?? {})) walk(expr, `Conditions.${name}`, "Conditions");
  for (const [name, rule] of Object.entries(template.Rules ?? {})) walk(rule, `Rules.${name}`, "Rules");
  for (const [logicalId, res] of Object.entries(template.Resources)) {
    const path = `Resources.${logicalId}`;
    if (res.Condition !== undefined)
      found.push({ kind: "Condition", target: res.Condition, section: "Resources", path });
    for (const dep of [res.DependsOn ?? []].flat())
      found.push({ kind: "DependsOn", target: dep, section: "Resources", path });
    walk(res.Properties, `${path}.Properties`, "Resources");
    walk(res.Metadata, `${path}.Metadata`, "Resources");
  }
  for (const [name, output] of Object.entries(template.Outputs ?? {})) {
    const path = `Outputs.${name}`;
    if (typeof output.Condition === "string")
      found.push({ kind: "Condition", target: output.Condition, section: "Outputs", path });
    walk(output.Value, `${path}.Value`, "Outputs");
    walk(output.Export, `${path}.Export`, "Outputs");
  }
  return found;
}
