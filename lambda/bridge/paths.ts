import { posix } from "node:path";
import picomatch from "picomatch";
import type { PullConfig } from "./config/schema";
import { InvalidKeyError } from "./errors";

/**
 * Key and path rules shared by push, pull, resend and the config validator. Every S3 key that becomes a remote path
 * and every remote path that becomes a key goes through here, so "a key can never climb out of its root" is enforced
 * in one place rather than trusted to each caller.
 */

// C0 controls and DEL: legal in S3 keys, but in a remote file name they break listings, logs and partners' scripts.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Why a single path segment is unsafe, or undefined when it is fine. */
function segmentProblem(segment: string): string | undefined {
  if (segment === "") return "it has an empty path segment (//, or a leading or trailing /)";
  if (segment === "." || segment === "..") return `it has a "${segment}" path segment`;
  return undefined;
}

/**
 * Why a string is unsafe anywhere in a path, or undefined. Backslash is refused because Windows-based SFTP servers
 * treat it as a separator, so `a\..\..\x` could climb out.
 */
function charProblem(value: string): string | undefined {
  if (value.includes("\0")) return "it contains a NUL character";
  if (value.includes("\\")) return "it contains a backslash (a path separator on some SFTP servers)";
  if (CONTROL_CHARS.test(value)) return "it contains a control character";
  return undefined;
}

/** The checks for a relative path (key below a prefix, or a path below a remote root); throws InvalidKeyError. */
function assertSafeRelative(relative: string, shownAs: string): void {
  if (relative === "") throw new InvalidKeyError(shownAs, "the path below the root is empty");
  if (relative.startsWith("/")) throw new InvalidKeyError(shownAs, "the path below the root starts with /");
  const bad =
    charProblem(relative) ??
    relative
      .split("/")
      .map(segmentProblem)
      .find((p) => p !== undefined);
  if (bad) throw new InvalidKeyError(shownAs, bad);
}

/**
 * An S3 key prefix in canonical form: no leading "/", no "//", a trailing "/" unless empty (the whole bucket).
 * Idempotent, so callers may normalise twice. `..`/`.` segments, NUL, backslash and control characters are refused.
 */
export function normalizePrefix(p: string): string {
  const bad = prefixProblem(p);
  if (bad) throw new InvalidKeyError(p, bad);
  const segments = p.split("/").filter((s) => s !== "");
  return segments.length ? segments.join("/") + "/" : "";
}

/** Why normalizePrefix would refuse `p`, or undefined: for the validator, which reports rather than throws. */
export function prefixProblem(p: string): string | undefined {
  const dots = p.split("/").find((s) => s === "." || s === "..");
  return charProblem(p) ?? (dots ? `it has a "${dots}" path segment` : undefined);
}

/** Why a configured remote directory is unsafe (`..`, NUL, backslash, control characters), or undefined. */
export function remotePathProblem(p: string): string | undefined {
  const dots = p.split("/").some((s) => s === "..");
  return charProblem(p) ?? (dots ? 'it has a ".." path segment' : undefined);
}

/** Joins prefixes that are each relative to the previous one (`s3.prefix` + `push.from`), normalising each. */
export function joinPrefixes(...parts: string[]): string {
  return parts.map(normalizePrefix).join("");
}

/** True when two normalised prefixes can both hold the same key (one is a prefix of the other, "" holds everything). */
export function prefixesOverlap(a: string, b: string): boolean {
  return a.startsWith(b) || b.startsWith(a);
}

/**
 * The key as it is in the bucket, from an S3 event notification: S3 form-encodes keys there (`+` is a space,
 * everything else percent-encoded). A literal `+` in a key arrives as `%2B`, so replacing `+` first is correct.
 */
export function decodeS3EventKey(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, " "));
  } catch (err) {
    throw new InvalidKeyError(raw, `malformed URL encoding in an S3 event key (${(err as Error).message})`);
  }
}

/** The pull's done dir as a remote path: `doneDir` itself when absolute, else below `from`. */
export function doneDirOf(pullConfig: Pick<PullConfig, "from" | "doneDir">): string {
  return posix.isAbsolute(pullConfig.doneDir)
    ? posix.normalize(pullConfig.doneDir)
    : posix.join(pullConfig.from, pullConfig.doneDir);
}

/** `s3://bucket/key` as its parts (the key may hold any character, "/" included), or undefined for anything else. */
export function parseS3Uri(uri: string): { bucket: string; key: string } | undefined {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  return m ? { bucket: m[1] as string, key: m[2] as string } : undefined;
}

/** S3 "folders" created by the console are zero-byte keys ending in "/": they are skipped, never transferred. */
export function isFolderMarker(key: string): boolean {
  return key.endsWith("/");
}

/**
 * The part of `key` below `prefix` (normalised here), which becomes the path below the remote root. Throws
 * InvalidKeyError saying why when the key is not under the prefix or the rest could escape the root or confuse a
 * server.
 */
export function relativeKey(key: string, prefix: string): string {
  const root = normalizePrefix(prefix);
  if (!key.startsWith(root)) throw new InvalidKeyError(key, `it is not under the prefix "${root}"`, { prefix: root });
  const relative = key.slice(root.length);
  if (relative === "") throw new InvalidKeyError(key, `it is the prefix "${root}" itself, not a file below it`);
  assertSafeRelative(relative, key);
  return relative;
}

/** A remote root in canonical form: "/IN/" and "/IN//" are "/IN"; "IN" stays relative to the login directory. */
export function normalizeRemoteRoot(root: string): string {
  const bad = charProblem(root);
  if (bad) throw new InvalidKeyError(root, bad);
  if (root === "") return ".";
  const normal = posix.normalize(root);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}

/**
 * `root` joined with `relative`; the relative part is checked segment by segment, so the result always stays under
 * the root. A relative root (`IN`, `.`) yields a path relative to the SFTP login directory.
 */
export function remotePath(root: string, relative: string): string {
  const base = normalizeRemoteRoot(root);
  assertSafeRelative(relative, relative);
  if (base === ".") return relative;
  return base === "/" ? `/${relative}` : `${base}/${relative}`;
}

/** The inverse of remotePath for listing results: the part of `fullPath` below `root`, checked the same way. */
export function remoteRelative(root: string, fullPath: string): string {
  const base = normalizeRemoteRoot(root);
  let relative: string;
  if (base === ".") {
    relative = fullPath.startsWith("./") ? fullPath.slice(2) : fullPath;
  } else {
    const head = base === "/" ? "/" : `${base}/`;
    if (!fullPath.startsWith(head)) {
      throw new InvalidKeyError(fullPath, `it is not under the remote directory "${base}"`, { root: base });
    }
    relative = fullPath.slice(head.length);
  }
  assertSafeRelative(relative, fullPath);
  return relative;
}

/** True when `inner` is strictly below `outer`; both are compared after normalisation as remote paths. */
export function isRemoteDescendant(outer: string, inner: string): boolean {
  const o = normalizeRemoteRoot(outer);
  const i = normalizeRemoteRoot(inner);
  if (o === "/") return i.startsWith("/") && i !== "/";
  if (o === ".") return !i.startsWith("/") && i !== "." && i !== ".." && !i.startsWith("../");
  return i.startsWith(`${o}/`);
}

const matcherCache = new Map<string, (path: string) => boolean>();

function matcherFor(pattern: string): (path: string) => boolean {
  let matcher = matcherCache.get(pattern);
  if (!matcher) {
    const test = picomatch(pattern, { dot: true });
    // A slash-free pattern is about the file name, wherever the file sits: the usual expectation from `*.xml`.
    matcher = pattern.includes("/") ? test : (path: string) => test(path.slice(path.lastIndexOf("/") + 1));
    matcherCache.set(pattern, matcher);
  }
  return matcher;
}

/**
 * True when the relative path matches any pattern. A pattern without "/" matches the base name at any depth
 * (`*.xml` matches `a/b.xml`); a pattern with "/" matches the whole relative path (`a/*.xml`, `**`). Dotfiles are
 * matched like any other name (`dot: true`); hidden files are excluded with `pull.ignore`, not by accident. An empty
 * list matches nothing.
 */
export function matchesPatterns(relativePath: string, patterns: string[]): boolean {
  return patterns.some((p) => matcherFor(p)(relativePath));
}

/**
 * `20261123T190405Z`: UTC, second resolution (SFTP times have 1 s resolution anyway), sorts by time, safe in names and
 * keys. Archive names and receipt keys both use it.
 */
export function utcStamp(at: Date): string {
  return at
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z")
    .replace(/[-:]/g, "");
}

const MAX_DONE_ATTEMPTS = 1000;

/**
 * A name for an archived (pulled) file in `doneDir` that does not overwrite an earlier one:
 *
 * - `report.csv` when that name is free (the common case: names stay recognisable);
 * - else `report.20261123T190405Z.csv` (the archive time, UTC, inserted before the last extension so the file still
 *   opens with the right program; `archive.tar.gz` -> `archive.tar.20261123T190405Z.gz`, `README` ->
 *   `README.20261123T190405Z`, `.env` -> `.env.20261123T190405Z`);
 * - else `report.20261123T190405Z-2.csv`, `-3`, ... for several same-named files archived in the same second.
 *
 * `exists` is asked about each candidate in that order. Names containing "/" or that are "." / ".." are refused.
 */
export async function doneName(
  name: string,
  archivedAt: Date,
  exists: (candidate: string) => boolean | Promise<boolean>,
): Promise<string> {
  if (name === "" || name === "." || name === ".." || name.includes("/")) {
    throw new InvalidKeyError(name, "an archive name must be a plain file name");
  }
  if (!(await exists(name))) return name;
  const dot = name.lastIndexOf(".");
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ""];
  const stamp = utcStamp(archivedAt);
  for (let n = 1; n <= MAX_DONE_ATTEMPTS; n++) {
    const candidate = n === 1 ? `${stem}.${stamp}${ext}` : `${stem}.${stamp}-${n}${ext}`;
    if (!(await exists(candidate))) return candidate;
  }
  throw new InvalidKeyError(name, `${MAX_DONE_ATTEMPTS} archive names for it are taken for ${stamp}; clean up doneDir`);
}
