// SSH keys: fresh pairs for users and hosts, parsing a key the caller gave, and the host key's public forms.
import { type ParsedKey, utils } from "ssh2";
import { fingerprint } from "../../../lambda/bridge/sftp";

/**
 * A fresh ed25519 key pair in OpenSSH format. ssh2 1.17's generator drops a leading zero byte of the public key about
 * once in 300 keys (a 31-byte key that its own parser then refuses as malformed), so a pair is only returned once both
 * halves parse.
 */
export function generateUserKey(): { privateKey: string; publicKey: string } {
  for (;;) {
    const pair = utils.generateKeyPairSync("ed25519");
    if (!(utils.parseKey(pair.public) instanceof Error) && !(utils.parseKey(pair.private) instanceof Error)) {
      return { privateKey: pair.private, publicKey: pair.public };
    }
  }
}

/** OpenSSH's fingerprint of a public key blob (the SSH wire encoding): the engine's, so the two never disagree. */
export const fingerprintOf = fingerprint;

export function parseOneKey(data: string | Buffer, what: string): ParsedKey {
  const parsed = utils.parseKey(data);
  if (parsed instanceof Error) throw new Error(`${what}: ${parsed.message}`);
  // Newer OpenSSH files may hold several keys; ssh2 parses them into an array (its own Server takes the first too).
  const key: ParsedKey | undefined = Array.isArray(parsed) ? (parsed as ParsedKey[])[0] : parsed;
  if (key === undefined) throw new Error(`${what}: no key found`);
  return key;
}

export interface HostKey {
  /** What ssh2's Server is given: the caller's key as passed, or the generated one. */
  key: string | Buffer;
  /** The private key as text (OpenSSH format when generated). */
  text: string;
  /** As a known_hosts/authorized_keys line: "ssh-ed25519 AAAA...". */
  publicKey: string;
  /** "SHA256:<base64 without padding>", as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/** The host key given, or an ed25519 key generated when absent (so the fingerprint then changes per start). */
export function hostKeyOf(given: string | Buffer | undefined): HostKey {
  const key = given === undefined ? generateUserKey().privateKey : given;
  const parsed = parseOneKey(key, "hostKey");
  if (!parsed.isPrivateKey()) throw new Error("hostKey: expected a private key");
  const blob = parsed.getPublicSSH();
  return {
    key,
    text: typeof key === "string" ? key : key.toString("utf8"),
    publicKey: `${parsed.type} ${blob.toString("base64")}`,
    fingerprint: fingerprintOf(blob),
  };
}
