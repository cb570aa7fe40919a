import type { BridgeConfig, StreamConfig } from "./config/schema";
import { UnknownStreamError } from "./errors";
import { joinPrefixes, prefixesOverlap, relativeKey } from "./paths";

/**
 * Which stream an S3 object belongs to. The validator guarantees that push sources never overlap each other, pull
 * destinations or the receipts prefix; routing still refuses those keys on its own, so a config that bypassed the
 * validator cannot make the bridge push back what it pulled or push its own receipts.
 */

export interface Route {
  stream: string;
  /** The key below the stream's push source: the path the file gets below `push.to`. */
  relative: string;
}

/** The key prefix (normalised, relative to the bucket) whose objects the stream pushes; undefined without `push`. */
export function pushSourcePrefix(stream: StreamConfig): string | undefined {
  return stream.push ? joinPrefixes(stream.s3.prefix, stream.push.from) : undefined;
}

/** The key prefix (normalised) pulled files are written to; undefined without `pull`. */
export function pullDestPrefix(stream: StreamConfig): string | undefined {
  return stream.pull ? joinPrefixes(stream.s3.prefix, stream.pull.to) : undefined;
}

/** The bucket and prefix receipts for this stream go to (receipts.bucket, else the stream's own bucket). */
export function receiptsLocation(config: BridgeConfig, stream: StreamConfig): { bucket: string; prefix: string } {
  return { bucket: config.receipts.bucket ?? stream.s3.bucket, prefix: joinPrefixes(config.receipts.prefix) };
}

function isReservedKey(config: BridgeConfig, bucket: string, key: string): boolean {
  return Object.values(config.streams).some((s) => {
    const receipts = receiptsLocation(config, s);
    if (config.receipts.enabled && receipts.bucket === bucket && key.startsWith(receipts.prefix)) return true;
    const dest = pullDestPrefix(s);
    return s.s3.bucket === bucket && dest !== undefined && key.startsWith(dest);
  });
}

/**
 * The stream whose push source claims `bucket`/`key` (an already decoded key), with the key's path below that source.
 * Undefined when no stream claims it, or when it lies in a pull destination or (receipts enabled) the receipts prefix.
 * Throws InvalidKeyError when a stream claims the key but its relative part is unsafe (`..`, NUL, `//`, a folder
 * marker): callers that want to skip folder markers quietly check `isFolderMarker(key)` first.
 */
export function routeObject(config: BridgeConfig, bucket: string, key: string): Route | undefined {
  if (isReservedKey(config, bucket, key)) return undefined;
  let best: { stream: string; prefix: string } | undefined;
  for (const [name, stream] of Object.entries(config.streams)) {
    const prefix = pushSourcePrefix(stream);
    if (stream.s3.bucket !== bucket || prefix === undefined || !key.startsWith(prefix)) continue;
    // The validator forbids nested push sources; if one slipped through, the most specific claim surprises least.
    if (!best || prefix.length > best.prefix.length) best = { stream: name, prefix };
  }
  return best && { stream: best.stream, relative: relativeKey(key, best.prefix) };
}

/** The stream's config, or UnknownStreamError listing the streams the config defines. */
export function requireStream(config: BridgeConfig, name: string): StreamConfig {
  const stream = Object.hasOwn(config.streams, name) ? config.streams[name] : undefined;
  if (!stream) throw new UnknownStreamError(name, Object.keys(config.streams).sort());
  return stream;
}

/** An S3 prefix the config reserves for one purpose: the validator checks that no two purposes share a key. */
export interface PrefixClaim {
  kind: "push" | "pull" | "receipts";
  stream: string;
  bucket: string;
  prefix: string;
}

/** Push sources, pull destinations and (when enabled) receipts prefixes of every stream, normalised. */
export function prefixClaims(config: BridgeConfig): PrefixClaim[] {
  const claims: PrefixClaim[] = [];
  for (const [name, stream] of Object.entries(config.streams)) {
    const push = pushSourcePrefix(stream);
    const pull = pullDestPrefix(stream);
    if (push !== undefined) claims.push({ kind: "push", stream: name, bucket: stream.s3.bucket, prefix: push });
    if (pull !== undefined) claims.push({ kind: "pull", stream: name, bucket: stream.s3.bucket, prefix: pull });
    if (config.receipts.enabled) claims.push({ kind: "receipts", stream: name, ...receiptsLocation(config, stream) });
  }
  return claims;
}

/** True when two claims can hold the same object. */
export function claimsOverlap(a: PrefixClaim, b: PrefixClaim): boolean {
  return a.bucket === b.bucket && prefixesOverlap(a.prefix, b.prefix);
}
