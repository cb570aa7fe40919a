// Who may log in: the configured users, checked by password or by public key.
import { timingSafeEqual } from "node:crypto";
import type { AuthContext, ParsedKey } from "ssh2";
import { parseOneKey } from "./keys";

export interface SftpUser {
  username: string;
  password?: string;
  /** OpenSSH public key line ("ssh-ed25519 AAAA... comment"). */
  publicKey?: string;
}

/** A user's credentials in the form they are compared in, parsed once at start so a bad key fails the start. */
export interface PreparedUser {
  password?: Buffer;
  key?: ParsedKey;
}

export function prepareUsers(users: SftpUser[]): Map<string, PreparedUser> {
  const prepared = new Map<string, PreparedUser>();
  for (const user of users) {
    if (prepared.has(user.username)) throw new Error(`users: "${user.username}" is listed twice`);
    if (user.password === undefined && user.publicKey === undefined) {
      throw new Error(`users: "${user.username}" needs a password or a publicKey`);
    }
    prepared.set(user.username, {
      password: user.password === undefined ? undefined : Buffer.from(user.password),
      key:
        user.publicKey === undefined ? undefined : parseOneKey(user.publicKey, `users["${user.username}"].publicKey`),
    });
  }
  return prepared;
}

/** "accept", "failure" (a wrong credential, counted), or "skip" (a method we do not offer, such as the "none" probe). */
export function authenticate(ctx: AuthContext, users: Map<string, PreparedUser>): "accept" | "failure" | "skip" {
  const user = users.get(ctx.username);
  switch (ctx.method) {
    case "password": {
      if (user?.password === undefined) return "failure";
      const given = Buffer.from(ctx.password);
      // timingSafeEqual needs equal lengths; on a mismatch compare the input with itself so the time taken stays alike.
      const lengthsMatch = given.length === user.password.length;
      const same = timingSafeEqual(given, lengthsMatch ? user.password : given);
      return lengthsMatch && same ? "accept" : "failure";
    }
    case "publickey": {
      if (user?.key === undefined || !ctx.key.data.equals(user.key.getPublicSSH())) return "failure";
      // Without a signature the client only asks whether this key would do; it signs in the next attempt.
      if (ctx.signature === undefined || ctx.blob === undefined) return "accept";
      return user.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true ? "accept" : "failure";
    }
    default:
      return "skip";
  }
}
