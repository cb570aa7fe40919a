import { readFile } from "node:fs/promises";
import { isAbsolute, resolve as resolvePath } from "node:path";
import { inspect } from "node:util";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { GetParameterCommand, type SSMClient } from "@aws-sdk/client-ssm";
import type { CredentialsRef } from "./config/schema";
import { awsErrorName, httpStatusOf } from "./aws-errors";
import { CredentialsError, type ErrorContext } from "./errors";
import { parseS3Uri } from "./paths";

/**
 * SFTP credentials, given in the config by reference only and resolved here. Values stay in memory: never logged,
 * never written to disk, never put in an error message or an error's cause.
 *
 * What a referenced value may contain (the same for every source):
 *
 * 1. A JSON object with any of `username`, `password`, `privateKey`, `passphrase` (strings), e.g.
 *    `{"username":"acme","privateKey":"-----BEGIN OPENSSH PRIVATE KEY-----\n...","passphrase":"..."}`.
 *    It must hold a `password` or a `privateKey`. A private key whose newlines were stored as the two characters `\n`
 *    (a common copy-paste accident) is repaired. Other fields are ignored, so one secret may serve other tools too.
 * 2. A private key on its own: PEM (`-----BEGIN ... PRIVATE KEY-----`, RSA/EC/OpenSSH/PKCS#8) or PuTTY
 *    (`PuTTY-User-Key-File-`); it becomes `privateKey`. An encrypted key needs form 1 to carry its passphrase.
 * 3. Anything else is the password, with trailing line breaks removed (files and `file://` uploads usually end in one;
 *    a password that really ends in a line break, or starts with `{`, must use form 1).
 *
 * A password goes to the partner's server, so a value that is probably not one is refused (CREDENTIALS_INVALID)
 * rather than tried, and the engine never connects with it:
 * - a value whose trimmed text starts with `{` but does not parse as JSON: a broken form-1 secret (a missing `}` or
 *   quote), which may well hold a private key;
 * - a value containing `PRIVATE KEY` that is not a well-formed key: its BEGIN line must come first and the matching
 *   END line last (leading junk, a truncated PEM and a key pasted after other text are all refused);
 * - in form 1, a `password` or `username` containing `PRIVATE KEY` (the key put in the wrong field), and a
 *   `privateKey` containing it that is not well-formed by the same rule.
 */
export interface ResolvedCredentials {
  username?: string;
  password?: string;
  privateKey?: string;
  passphrase?: string;
}

export interface CredentialResolver {
  /** The credentials `ref` points to; `stream` only names the stream in errors. Cached per reference for the TTL. */
  resolve(ref: CredentialsRef, stream: string): Promise<ResolvedCredentials>;
  /** Forget every cached value (after a rotation, or when the config changes). */
  clear(): void;
}

export interface CredentialResolverDeps {
  secretsManager?: SecretsManagerClient;
  ssm?: SSMClient;
  s3?: S3Client;
  /** How long a resolved value is reused in a warm container; 0 disables caching. Default 5 minutes. */
  ttlMs?: number;
  clock?: () => number;
  /** Allow `{ file: ... }` references (CLI and local stack only; the Lambda never sets this). */
  allowFiles?: boolean;
  /** Base directory for relative `file` references; default the process working directory. */
  baseDir?: string;
}

export const DEFAULT_CREDENTIALS_TTL_MS = 5 * 60 * 1000;

const FIELDS = ["username", "password", "privateKey", "passphrase"] as const;
/** Anything mentioning this is treated as key material: it must be a well-formed key, and is never a password. */
const KEY_MARKER = "PRIVATE KEY";
/** A whole PEM/OpenSSH private key: BEGIN line first, body, the same label's END line last (the text is trimmed). */
const PEM_KEY = /^-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----\r?\n[\s\S]*\r?\n-----END \1-----$/;
const PUTTY_KEY = /^PuTTY-User-Key-File-\d+:/;
const MALFORMED_KEY =
  "looks like a private key but is not a well-formed PEM/OpenSSH/PuTTY key (the BEGIN line first, the matching END " +
  "line last, nothing before or after them); store the whole key file as it is";

interface RefInfo {
  kind: "secretsManager" | "ssmParameter" | "s3Object" | "file";
  id: string;
}

function refInfo(ref: CredentialsRef): RefInfo {
  if ("secretsManager" in ref) return { kind: "secretsManager", id: ref.secretsManager };
  if ("ssmParameter" in ref) return { kind: "ssmParameter", id: ref.ssmParameter };
  if ("s3Object" in ref) return { kind: "s3Object", id: ref.s3Object };
  return { kind: "file", id: ref.file };
}

function describeRef(r: RefInfo): string {
  const what = { secretsManager: "secret", ssmParameter: "SSM parameter", s3Object: "S3 object", file: "file" }[r.kind];
  return `${what} ${JSON.stringify(r.id)}`;
}

function context(r: RefInfo, stream: string): ErrorContext {
  return { stream, credentials: r.kind, reference: r.id };
}

/** Keeps credentials out of JSON logs and console output even if someone passes them to a logger by mistake. */
function redacted(creds: ResolvedCredentials): ResolvedCredentials {
  const shape = () =>
    Object.fromEntries(
      FIELDS.filter((f) => creds[f] !== undefined).map((f) => [f, f === "username" ? creds[f] : "***"]),
    );
  Object.defineProperty(creds, "toJSON", { value: shape, enumerable: false });
  Object.defineProperty(creds, inspect.custom, {
    value: () => `ResolvedCredentials ${inspect(shape())}`,
    enumerable: false,
  });
  return creds;
}

/**
 * The content rules above, applied to a fetched value. Errors name the reference and the stream, never the value; a
 * JSON SyntaxError is not kept as `cause` because its message quotes the input.
 */
export function parseCredentialContent(raw: string, where: string, ctx: ErrorContext = {}): ResolvedCredentials {
  const invalid = (why: string) => new CredentialsError("CREDENTIALS_INVALID", `${where}: ${why}`, { context: ctx });
  const text = raw.replace(/^\uFEFF/, "");
  const trimmed = text.trim();
  if (trimmed === "") throw invalid("the value is empty; store a password, a private key or a JSON object");

  if (trimmed.startsWith("{")) {
    let doc: unknown;
    try {
      doc = JSON.parse(trimmed);
    } catch {
      throw invalid(
        'the value starts with "{" but is not valid JSON (a missing "}" or quote?), so it was not used as a password; ' +
          "fix the JSON (fields: username, password, privateKey, passphrase), or store a password starting with " +
          '"{" as {"password": "..."}',
      );
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc))
      throw invalid("the JSON value must be an object");
    const obj = doc as Record<string, unknown>;
    const creds: ResolvedCredentials = {};
    for (const field of FIELDS) {
      const value = obj[field];
      if (value === undefined || value === null) continue;
      if (typeof value !== "string") throw invalid(`JSON field "${field}" must be a string`);
      creds[field] = value;
    }
    for (const field of ["username", "password"] as const) {
      if (creds[field]?.includes(KEY_MARKER))
        throw invalid(`JSON field "${field}" holds a private key; put it in "privateKey"`);
    }
    if (creds.privateKey && !creds.privateKey.includes("\n") && creds.privateKey.includes("\\n")) {
      creds.privateKey = creds.privateKey.replace(/\\n/g, "\n");
    }
    if (creds.privateKey?.includes(KEY_MARKER) && !PEM_KEY.test(creds.privateKey.trim()))
      throw invalid(`JSON field "privateKey" ${MALFORMED_KEY}`);
    if (!creds.password && !creds.privateKey) {
      const seen = Object.keys(obj).join(", ") || "none";
      throw invalid(`the JSON object has neither "password" nor "privateKey" (fields present: ${seen})`);
    }
    return creds;
  }
  if (PEM_KEY.test(trimmed) || PUTTY_KEY.test(trimmed)) return { privateKey: trimmed + "\n" };
  if (trimmed.includes(KEY_MARKER)) throw invalid(`the value ${MALFORMED_KEY}`);
  return { password: text.replace(/[\r\n]+$/, "") };
}

class Fetcher {
  constructor(private readonly deps: CredentialResolverDeps) {}

  notFound(r: RefInfo, stream: string, why: string, fix: string, cause?: unknown): CredentialsError {
    return new CredentialsError(
      "CREDENTIALS_NOT_FOUND",
      `stream ${stream}: credentials ${describeRef(r)} ${why}; ${fix} or fix streams.${stream}.sftp.credentials`,
      { cause, context: context(r, stream) },
    );
  }

  /** Turns an SDK/fs failure into a message naming the reference, the stream and the likely fix. */
  failed(r: RefInfo, stream: string, err: unknown): CredentialsError {
    const name = awsErrorName(err);
    const status = httpStatusOf(err);
    const missing = [
      "ResourceNotFoundException",
      "ParameterNotFound",
      "NoSuchKey",
      "NoSuchBucket",
      "NotFound",
      "ENOENT",
    ];
    if (missing.includes(name) || status === 404) {
      const create = {
        secretsManager: "create the secret",
        ssmParameter: "create the parameter",
        s3Object: "upload the object",
        file: "create the file",
      }[r.kind];
      const where = r.kind === "file" ? "" : " in this account and region";
      return this.notFound(r, stream, `not found (${name})`, `${create}${where}`, err);
    }
    if (name === "AccessDeniedException" || name === "AccessDenied" || status === 403 || name === "EACCES") {
      const action = {
        secretsManager: "secretsmanager:GetSecretValue",
        ssmParameter: "ssm:GetParameter",
        s3Object: "s3:GetObject",
        file: "read permission",
      }[r.kind];
      return this.notFound(
        r,
        stream,
        `could not be read: access denied (${name})`,
        `grant ${action} (and kms:Decrypt for its KMS key)`,
        err,
      );
    }
    // A failure on a 2xx response (deserialisation) carries the raw response, i.e. possibly the secret: drop it.
    const keep = status !== undefined && status >= 200 && status < 300 ? undefined : err;
    return this.notFound(r, stream, `could not be read (${name}: ${(err as Error).message})`, "try again later", keep);
  }

  async fetch(r: RefInfo, stream: string): Promise<string> {
    const client = <T>(c: T | undefined, what: string): T => {
      if (!c)
        throw this.notFound(r, stream, `cannot be read: no ${what} client was given to the resolver`, "configure one");
      return c;
    };
    try {
      switch (r.kind) {
        case "secretsManager": {
          const res = await client(this.deps.secretsManager, "Secrets Manager").send(
            new GetSecretValueCommand({ SecretId: r.id }),
          );
          if (res.SecretString !== undefined) return res.SecretString;
          if (res.SecretBinary) return Buffer.from(res.SecretBinary).toString("utf8");
          throw this.notFound(r, stream, "has no value", "put a value in the secret");
        }
        case "ssmParameter": {
          const res = await client(this.deps.ssm, "SSM").send(
            new GetParameterCommand({ Name: r.id, WithDecryption: true }),
          );
          if (res.Parameter?.Value === undefined)
            throw this.notFound(r, stream, "has no value", "put a value in the parameter");
          return res.Parameter.Value;
        }
        case "s3Object": {
          const uri = parseS3Uri(r.id);
          if (!uri) throw this.notFound(r, stream, "is not an s3://bucket/key URI", "use s3://bucket/key");
          // An SSE-KMS object is decrypted by S3 itself when the caller may use the key: nothing to do here.
          const res = await client(this.deps.s3, "S3").send(new GetObjectCommand({ Bucket: uri.bucket, Key: uri.key }));
          if (!res.Body) throw this.notFound(r, stream, "has no body", "upload the object again");
          return await res.Body.transformToString("utf-8");
        }
        case "file": {
          if (!this.deps.allowFiles) {
            throw new CredentialsError(
              "CREDENTIALS_INVALID",
              `stream ${stream}: credentials ${describeRef(r)}: local credential files are not allowed here; use secretsManager, ssmParameter or s3Object in streams.${stream}.sftp.credentials`,
              { context: context(r, stream) },
            );
          }
          const path = isAbsolute(r.id) ? r.id : resolvePath(this.deps.baseDir ?? process.cwd(), r.id);
          return await readFile(path, "utf8");
        }
      }
    } catch (err) {
      if (err instanceof CredentialsError) throw err;
      throw this.failed(r, stream, err);
    }
  }
}

/**
 * A resolver that caches each reference's value per container for `ttlMs`. Concurrent resolves of the same reference
 * share one request; failures are not cached, so a secret created after a failed run is picked up by the next one.
 */
export function createCredentialResolver(deps: CredentialResolverDeps): CredentialResolver {
  const ttlMs = deps.ttlMs ?? DEFAULT_CREDENTIALS_TTL_MS;
  const clock = deps.clock ?? Date.now;
  const fetcher = new Fetcher(deps);
  const cache = new Map<string, { expires: number; value: Promise<ResolvedCredentials> }>();

  return {
    resolve(ref, stream) {
      const r = refInfo(ref);
      const key = `${r.kind}\0${r.id}`;
      const now = clock();
      const hit = cache.get(key);
      if (hit && hit.expires > now) return hit.value.then((c) => redacted({ ...c }));
      const value = fetcher.fetch(r, stream).then((raw) => {
        const where = `stream ${stream}: credentials ${describeRef(r)}`;
        return parseCredentialContent(raw, where, context(r, stream));
      });
      cache.set(key, { expires: ttlMs > 0 ? now + ttlMs : now, value });
      value.catch(() => {
        if (cache.get(key)?.value === value) cache.delete(key);
      });
      return value.then((c) => redacted({ ...c }));
    },
    clear() {
      cache.clear();
    },
  };
}
