import type { z } from "zod";
import { ConfigError, type ConfigIssue } from "../errors";
import {
  isRemoteDescendant,
  joinPrefixes,
  normalizePrefix,
  normalizeRemoteRoot,
  prefixesOverlap,
  prefixProblem,
  remotePathProblem,
} from "../paths";
import { claimsOverlap, prefixClaims, type PrefixClaim } from "../routing";
import { type BridgeConfig, configSchema, STREAM_NAME, type StreamConfig, streamSchema } from "./schema";

/**
 * Turns a parsed YAML/JSON document into a BridgeConfig or ONE ConfigError listing every problem, each with its dotted
 * path: schema problems (zod) and cross-field rules together, so a user fixes the whole file in one round trip (the
 * changesets `parse.ts` approach). When the schema fails, streams that parse on their own still get the cross-field
 * checks, so an overlap is reported alongside a typo elsewhere.
 */

export interface ValidateOptions {
  /**
   * Accept `credentials: { file: ... }`. Only the CLI and the local stack turn this on; in Lambda a file would have to
   * ship inside the deployment package, i.e. a secret in an artifact. Default false.
   */
  allowFileCredentials?: boolean;
  /**
   * A receipts prefix that replaces the document's `receipts.prefix` before any rule runs, so a deployment setting
   * cannot bypass the rules the file itself must pass. `from` names the setting (an environment variable) in messages,
   * or the user would look for the culprit in a file that does not contain it.
   */
  receiptsPrefix?: { value: string; from: string };
}

type Path = readonly PropertyKey[];

/** `streams.psp.sftp.hostKeys[0]`: dotted, array indices in brackets, odd keys quoted (`streams["a.b"]`). */
export function formatPath(path: Path): string {
  return path.reduce<string>((acc, seg) => {
    if (typeof seg === "number") return `${acc}[${seg}]`;
    const name = String(seg);
    if (!/^[A-Za-z0-9_-]+$/.test(name)) return `${acc}[${JSON.stringify(name)}]`;
    return acc ? `${acc}.${name}` : name;
  }, "");
}

// ---- inline secrets -------------------------------------------------------------------------------------------------

/** Field names (lower-cased, without `_`/`-`) that mean someone pasted a secret into the config. */
const SECRET_FIELDS = new Set([
  "password",
  "passwd",
  "pass",
  "pwd",
  "privatekey",
  "privatekeyfile",
  "passphrase",
  "secret",
  "secretkey",
  "secretaccesskey",
  "sessiontoken",
  "token",
  "apikey",
]);

const INLINE_SECRET_MESSAGE =
  "inline secrets are not allowed; reference them with sftp.credentials.secretsManager / ssmParameter / s3Object";

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Paths of secret-looking fields anywhere in the document; YAML aliases can make cycles, hence `seen`. */
function findInlineSecrets(value: unknown, path: PropertyKey[] = [], seen = new Set<object>()): PropertyKey[][] {
  if (typeof value !== "object" || value === null || seen.has(value)) return [];
  seen.add(value);
  const entries: [PropertyKey, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  return entries.flatMap(([k, v]) => {
    const here = [...path, k];
    const isSecret = typeof k === "string" && SECRET_FIELDS.has(k.toLowerCase().replace(/[_-]/g, ""));
    return isSecret ? [here] : findInlineSecrets(v, here, seen);
  });
}

// ---- schema issues --------------------------------------------------------------------------------------------------

function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Messages for zod's generic issues; messages written in the schema take precedence over these. */
const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case "invalid_type":
      if (iss.input === undefined) return "required";
      return `expected ${iss.expected === "object" ? "a mapping" : iss.expected}, got ${describeValue(iss.input)}`;
    case "too_small":
      if (iss.origin === "string")
        return iss.minimum === 1 ? "must not be empty" : `must be at least ${iss.minimum} characters`;
      if (iss.origin === "array") return `needs at least ${iss.minimum} item(s)`;
      return `must be ${iss.inclusive ? "at least" : "more than"} ${iss.minimum}`;
    case "too_big":
      if (iss.origin === "string") return `must be at most ${iss.maximum} characters`;
      if (iss.origin === "array") return `takes at most ${iss.maximum} item(s)`;
      return `must be ${iss.inclusive ? "at most" : "less than"} ${iss.maximum}`;
    case "invalid_value":
      return `must be ${iss.values.length === 1 ? "" : "one of "}${iss.values.map((v) => JSON.stringify(v)).join(", ")}`;
    default:
      return undefined;
  }
};

type SchemaDef = {
  type: string;
  innerType?: AnySchema;
  shape?: Record<string, AnySchema>;
  valueType?: AnySchema;
  element?: AnySchema;
  options?: AnySchema[];
};
type AnySchema = { def: SchemaDef };

function unwrap(schema: AnySchema | undefined): AnySchema | undefined {
  let s = schema;
  while (s && s.def.innerType && ["optional", "default", "prefault", "nullable", "readonly"].includes(s.def.type)) {
    s = s.def.innerType;
  }
  return s;
}

/** The field names the schema allows at `path`, for "did you mean" hints; undefined when it cannot tell. */
function allowedFields(path: Path): string[] | undefined {
  let schema = unwrap(configSchema as unknown as AnySchema);
  for (const seg of path) {
    const def = schema?.def;
    if (!def) return undefined;
    if (def.type === "object") schema = unwrap(def.shape?.[String(seg)]);
    else if (def.type === "record") schema = unwrap(def.valueType);
    else if (def.type === "array") schema = unwrap(def.element);
    else return undefined;
  }
  const def = schema?.def;
  if (def?.type === "object") return Object.keys(def.shape ?? {});
  if (def?.type === "union") return def.options?.flatMap((o) => Object.keys(unwrap(o)?.def.shape ?? {}));
  return undefined;
}

/** Edit distance counting a swap of neighbours as one edit (`prot` -> `port`), the commonest typo in field names. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

function unknownFieldMessage(field: string, allowed: string[] | undefined): string {
  if (!allowed?.length) return `unknown field "${field}"`;
  const close = allowed
    .map((name) => ({ name, d: name.toLowerCase() === field.toLowerCase() ? 0 : editDistance(name, field) }))
    .filter((c) => c.d <= Math.max(1, Math.floor(field.length / 3)))
    .sort((a, b) => a.d - b.d)[0];
  const hint = close ? `did you mean "${close.name}"? ` : "";
  return `unknown field "${field}" (${hint}allowed here: ${allowed.join(", ")})`;
}

function isUnder(path: Path, parent: Path): boolean {
  return parent.length <= path.length && parent.every((seg, i) => seg === path[i]);
}

function schemaIssues(issues: z.core.$ZodIssue[], base: Path, secretPaths: PropertyKey[][]): ConfigIssue[] {
  const secretParents = secretPaths.map((p) => p.slice(0, -1));
  return issues.flatMap((iss): ConfigIssue[] => {
    const path = [...base, ...iss.path];
    if (iss.code === "unrecognized_keys") {
      return iss.keys
        .filter((k) => !secretPaths.some((s) => isUnder([...path, k], s)))
        .map((k) => ({ path: formatPath([...path, k]), message: unknownFieldMessage(k, allowedFields(path)) }));
    }
    // `credentials: { password: ... }` fails the union too; the inline-secret message already says what to do.
    if (iss.code === "invalid_union" && secretParents.some((p) => isUnder(p, path))) return [];
    if (iss.code === "invalid_key") {
      return [{ path: formatPath(path), message: iss.issues.map((i) => i.message).join("; ") }];
    }
    return [{ path: formatPath(path), message: iss.message }];
  });
}

// ---- cross-field rules ----------------------------------------------------------------------------------------------

interface Checked {
  receipts?: BridgeConfig["receipts"];
  streams: Record<string, StreamConfig>;
}

/** The dotted path of a field in a stream, quoting odd stream names the way schema issues do. */
function at(stream: string, ...fields: string[]): string {
  return formatPath(["streams", stream, ...fields]);
}

function describeClaim(c: PrefixClaim): string {
  const what = { push: "push source", pull: "pull destination", receipts: "receipts prefix" }[c.kind];
  return `${what} "${c.prefix}" (bucket ${c.bucket})`;
}

/** Prefix and remote path syntax; returns the streams whose prefixes are sound enough for overlap checks. */
function pathIssues(checked: Checked, out: ConfigIssue[]): Set<string> {
  const sound = new Set<string>();
  for (const [name, s] of Object.entries(checked.streams)) {
    const prefixes: [string, string | undefined][] = [
      [at(name, "s3", "prefix"), s.s3.prefix],
      [at(name, "push", "from"), s.push?.from],
      [at(name, "pull", "to"), s.pull?.to],
    ];
    const remotes: [string, string | undefined][] = [
      [at(name, "push", "to"), s.push?.to],
      [at(name, "pull", "from"), s.pull?.from],
      [at(name, "pull", "doneDir"), s.pull?.doneDir],
    ];
    let ok = true;
    for (const [path, value] of prefixes) {
      const problem = value === undefined ? undefined : prefixProblem(value);
      if (problem) out.push({ path, message: `S3 prefix ${JSON.stringify(value)} is refused: ${problem}` });
      if (problem) ok = false;
    }
    for (const [path, value] of remotes) {
      const problem = value === undefined ? undefined : remotePathProblem(value);
      if (problem) out.push({ path, message: `remote path ${JSON.stringify(value)} is refused: ${problem}` });
    }
    if (s.pull && !remotePathProblem(s.pull.doneDir) && !remotePathProblem(s.pull.from)) {
      const { from, doneDir } = s.pull;
      const resolved = doneDir.startsWith("/") ? doneDir : `${normalizeRemoteRoot(from)}/${doneDir}`;
      if (!isRemoteDescendant(from, resolved)) {
        out.push({
          path: at(name, "pull", "doneDir"),
          message: `must be a directory inside pull.from (${JSON.stringify(from)}), or archived files would be pulled again or land outside it; use a relative name like ".done"`,
        });
      }
    }
    if (ok) sound.add(name);
  }
  if (checked.receipts && prefixProblem(checked.receipts.prefix)) {
    out.push({
      path: "receipts.prefix",
      message: `S3 prefix ${JSON.stringify(checked.receipts.prefix)} is refused: ${prefixProblem(checked.receipts.prefix)}`,
    });
  }
  return sound;
}

function overlapIssues(checked: Checked, sound: Set<string>, out: ConfigIssue[]): void {
  const receiptsOk = checked.receipts !== undefined && !prefixProblem(checked.receipts.prefix);
  const streams = Object.fromEntries(Object.entries(checked.streams).filter(([name]) => sound.has(name)));
  const receipts = receiptsOk
    ? checked.receipts!
    : { enabled: false, prefix: "_", claimLeaseSeconds: 900, claimWaitSeconds: 30 };
  const claims = prefixClaims({ version: 1, receipts, streams });
  const pushes = claims.filter((c) => c.kind === "push");

  for (const pull of claims.filter((c) => c.kind === "pull")) {
    for (const push of pushes.filter((p) => claimsOverlap(p, pull))) {
      const whose = push.stream === pull.stream ? "this stream's" : `stream "${push.stream}"'s`;
      out.push({
        path: at(pull.stream, "pull", "to"),
        message: `${describeClaim(pull)} overlaps ${whose} ${describeClaim(push)}: a pulled file would be pushed back out; give them separate prefixes`,
      });
    }
  }
  pushes.forEach((a, i) => {
    for (const b of pushes.slice(i + 1).filter((p) => claimsOverlap(a, p))) {
      out.push({
        path: at(b.stream, "push", "from"),
        message: `${describeClaim(b)} overlaps stream "${a.stream}"'s ${describeClaim(a)}: every key must belong to at most one stream`,
      });
    }
  });
  const seen = new Set<string>();
  const report = (message: string) => {
    if (!seen.has(message)) out.push({ path: "receipts.prefix", message });
    seen.add(message);
  };
  for (const r of claims.filter((c) => c.kind === "receipts")) {
    const s = streams[r.stream]!;
    const clashes = claims.filter((c) => c.kind !== "receipts" && claimsOverlap(r, c));
    for (const c of clashes) {
      const field = c.kind === "push" ? at(c.stream, "push", "from") : at(c.stream, "pull", "to");
      const why =
        c.kind === "push"
          ? "receipts would be pushed to the partner; move the receipts prefix or narrow the push source"
          : "a file the partner leaves for pull could land on a receipt's key and fake or overwrite it; move the receipts prefix or the pull destination";
      report(`${describeClaim(r)} overlaps ${field}, stream "${c.stream}"'s ${describeClaim(c)}: ${why}`);
    }
    // A push or pull clash always implies this one (both live under s3.prefix); one message per mistake is enough.
    const own = joinPrefixes(s.s3.prefix);
    const inside = r.bucket === s.s3.bucket && prefixesOverlap(r.prefix, own);
    if (inside && !clashes.some((c) => c.stream === r.stream)) {
      report(
        `${describeClaim(r)} lies inside ${at(r.stream, "s3", "prefix")}, stream "${r.stream}"'s S3 prefix "${own}" (bucket ${s.s3.bucket}): the stream's keys and the receipts would mix, and a later push.from or pull.to could claim them; set receipts.bucket, move the receipts prefix or give the stream its own s3.prefix`,
      );
    }
  }
}

function streamRuleIssues(checked: Checked, options: ValidateOptions, out: ConfigIssue[]): void {
  for (const [name, s] of Object.entries(checked.streams)) {
    if (!s.push && !s.pull) out.push({ path: at(name), message: "a stream needs push, pull or both" });
    if (s.pull?.after === "leave" && checked.receipts?.enabled === false) {
      out.push({
        path: at(name, "pull", "after"),
        message:
          "after: leave remembers what was pulled next to the receipts; with receipts.enabled: false every run would pull every file again",
      });
    }
    if (s.pull && s.pull.after !== "move" && (s.pull.doneRetentionDays ?? 0) > 0) {
      out.push({
        path: at(name, "pull", "doneRetentionDays"),
        message: `only applies to archived files (after: move); with after: ${s.pull.after} nothing is archived`,
      });
    }
    if ("file" in s.sftp.credentials && !options.allowFileCredentials) {
      out.push({
        path: at(name, "sftp", "credentials", "file"),
        message:
          "credential files are only allowed for the CLI and the local stack; here use secretsManager, ssmParameter or s3Object",
      });
    }
  }
}

// ---- salvage and output ---------------------------------------------------------------------------------------------

/** A copy of `value` without the fields zod reported as unknown (reported already), so the rest can be checked. */
function withoutUnknownFields(value: unknown, base: Path, issues: z.core.$ZodIssue[]): unknown {
  if (!isRecord(value)) return value;
  const copy = structuredClone(value);
  for (const iss of issues) {
    if (iss.code !== "unrecognized_keys" || !isUnder(iss.path, base)) continue;
    let target: unknown = copy;
    for (const seg of iss.path.slice(base.length)) target = isRecord(target) ? target[String(seg)] : undefined;
    if (isRecord(target)) for (const k of iss.keys) delete target[k];
  }
  return copy;
}

/** Each stream (and receipts) parsed on its own, so cross-field rules run even when some other part is broken. */
function salvage(
  doc: unknown,
  zodIssues: z.core.$ZodIssue[],
  out: ConfigIssue[],
  secretPaths: PropertyKey[][],
): Checked {
  const raw = isRecord(doc) ? doc : {};
  const receipts = configSchema.shape.receipts.safeParse(withoutUnknownFields(raw.receipts, ["receipts"], zodIssues), {
    error: errorMap,
  });
  const streams: Record<string, StreamConfig> = {};
  for (const [name, value] of Object.entries(isRecord(raw.streams) ? raw.streams : {})) {
    const base = ["streams", name];
    const parsed = streamSchema.safeParse(withoutUnknownFields(value, base, zodIssues), { error: errorMap });
    if (parsed.success) streams[name] = parsed.data;
    // zod skips the value of a record entry whose key is invalid; report its problems too.
    else if (!STREAM_NAME.test(name)) out.push(...schemaIssues(parsed.error.issues, base, secretPaths));
  }
  return { receipts: receipts.success ? receipts.data : undefined, streams };
}

function normalized(config: BridgeConfig): BridgeConfig {
  const streams = Object.fromEntries(
    Object.entries(config.streams).map(([name, s]) => [
      name,
      {
        ...s,
        s3: { ...s.s3, prefix: normalizePrefix(s.s3.prefix) },
        push: s.push && { ...s.push, from: normalizePrefix(s.push.from), to: normalizeRemoteRoot(s.push.to) },
        pull: s.pull && { ...s.pull, to: normalizePrefix(s.pull.to), from: normalizeRemoteRoot(s.pull.from) },
      },
    ]),
  );
  return { ...config, receipts: { ...config.receipts, prefix: normalizePrefix(config.receipts.prefix) }, streams };
}

function dedupeSorted(issues: ConfigIssue[]): ConfigIssue[] {
  const unique = new Map(issues.map((i) => [`${i.path}\n${i.message}`, i]));
  // Stable sort by path keeps each stream's problems together and in schema order.
  return [...unique.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The document with receipts.prefix replaced; a `receipts` that is not a mapping stays, for the schema to report. */
function withReceiptsPrefix(doc: unknown, prefix: string): unknown {
  if (!isRecord(doc) || (doc.receipts !== undefined && !isRecord(doc.receipts))) return doc;
  return { ...doc, receipts: { ...doc.receipts, prefix } };
}

/**
 * The validated config, with S3 prefixes in canonical form (`psp/`, never `/psp` or `psp`) and remote roots without a
 * trailing slash; or a ConfigError whose `issues` list every problem found. `source` names the document in messages.
 */
export function validateConfig(doc: unknown, source: string, options: ValidateOptions = {}): BridgeConfig {
  if (doc === null || doc === undefined) {
    throw new ConfigError(source, [{ path: "", message: "the config is empty; it needs a `streams:` mapping" }]);
  }
  const override = options.receiptsPrefix;
  if (override) doc = withReceiptsPrefix(doc, override.value);
  const secretPaths = findInlineSecrets(doc);
  const issues: ConfigIssue[] = secretPaths.map((p) => ({ path: formatPath(p), message: INLINE_SECRET_MESSAGE }));

  const parsed = configSchema.safeParse(doc, { error: errorMap });
  let checked: Checked;
  if (parsed.success) {
    checked = parsed.data;
  } else {
    issues.push(...schemaIssues(parsed.error.issues, [], secretPaths));
    checked = salvage(doc, parsed.error.issues, issues, secretPaths);
  }
  if (parsed.success && Object.keys(parsed.data.streams).length === 0) {
    issues.push({ path: "streams", message: "define at least one stream" });
  }

  streamRuleIssues(checked, options, issues);
  const sound = pathIssues(checked, issues);
  overlapIssues(checked, sound, issues);

  if (override) {
    const note = `; receipts.prefix is ${JSON.stringify(override.value)} from ${override.from}, which overrides the config's`;
    for (const issue of issues) if (issue.path === "receipts.prefix") issue.message += note;
  }
  if (issues.length || !parsed.success) throw new ConfigError(source, dedupeSorted(issues));
  return normalized(parsed.data);
}
