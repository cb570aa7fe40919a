import { generateKeyPairSync } from "node:crypto";
import { inspect } from "node:util";
import { utils } from "ssh2";
import { parseCredentialContent } from "../../lambda/bridge/credentials";
import { CredentialsError } from "../../lambda/bridge/errors";

// Real keys in every form the bridge accepts, so "accepted" below also means "ssh2 can use it".
const PKCS8 = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const RSA = generateKeyPairSync("rsa", { modulusLength: 1024 })
  .privateKey.export({ type: "pkcs1", format: "pem" })
  .toString();
const OPENSSH = utils.generateKeyPairSync("ed25519").private;
const WHERE = 'stream psp: credentials secret "bridge/psp"';

function refused(raw: string): CredentialsError {
  try {
    parseCredentialContent(raw, WHERE, { stream: "psp" });
  } catch (err) {
    expect(err).toBeInstanceOf(CredentialsError);
    const e = err as CredentialsError;
    expect(e.code).toBe("CREDENTIALS_INVALID");
    expect(e.message.startsWith(`${WHERE}: `)).toBe(true);
    expect(e.cause).toBeUndefined();
    // No line of the value may reach the message, the JSON form or the inspected error.
    const shown = [e.message, JSON.stringify(e), inspect(e, { depth: 10 })].join("\n");
    for (const line of raw.split(/\\n|\r?\n/)) {
      const body = line.replace(/^[\s{"]+|[\s}",]+$/g, "");
      if (body.length >= 8 && !/^-----(BEGIN|END) [A-Z ]+-----$/.test(body)) expect(shown).not.toContain(body);
    }
    return e;
  }
  throw new Error("expected CREDENTIALS_INVALID");
}

const escapeNewlines = (key: string) => key.replace(/\n/g, "\\n");
const lines = (key: string) => key.trim().split("\n");

describe("parseCredentialContent: a value that starts with { is JSON or an error, never a password", () => {
  it.each([
    [
      "a JSON secret missing its closing brace, holding a key",
      JSON.stringify({ username: "acme", privateKey: PKCS8 }).slice(0, -1),
    ],
    ["the same with its newlines escaped", `{"username":"acme","privateKey":"${escapeNewlines(PKCS8)}"`],
    ["a brace-led password", "{not json but a password"],
    ["a brace-led value after whitespace", "  \n{x-7f3a-secret-value"],
    ["JSON with a trailing comma", '{"password":"correct-horse-battery",}'],
  ])("%s", (_name, raw) => {
    const err = refused(raw);
    expect(err.message).toMatch(/starts with "\{" but is not valid JSON/);
    expect(err.message).toMatch(/not used as a password/);
  });

  it("still accepts well-formed JSON, and a password with braces inside", () => {
    expect(parseCredentialContent(JSON.stringify({ password: "x{y}z" }), WHERE)).toEqual({ password: "x{y}z" });
    expect(parseCredentialContent("pass{word}", WHERE)).toEqual({ password: "pass{word}" });
  });
});

describe("parseCredentialContent: text containing PRIVATE KEY is a usable key or an error, never a password", () => {
  it.each([
    ["RSA PEM", RSA],
    ["OpenSSH", OPENSSH],
    ["PEM with CRLF line ends", RSA.replace(/\n/g, "\r\n")],
    ["PEM with blank lines around it", `\n\n${RSA}\n\n`],
  ])("accepts %s, which ssh2 can parse", (_name, raw) => {
    const creds = parseCredentialContent(raw, WHERE);
    expect(creds.password).toBeUndefined();
    expect(creds.privateKey).toBe(raw.trim() + "\n");
    expect(utils.parseKey(creds.privateKey!)).not.toBeInstanceOf(Error);
  });

  it("accepts a PKCS#8 PEM by its shape (whether ssh2 can use it is for the connection to say)", () => {
    expect(parseCredentialContent(PKCS8, WHERE)).toEqual({ privateKey: PKCS8 });
  });

  it.each([
    ["leading junk before the BEGIN line", `key for acme:\n${PKCS8}`],
    ["text before BEGIN on the same line", `id_rsa=${RSA}`],
    ["a truncated PEM (no END line)", lines(RSA).slice(0, 4).join("\n")],
    ["a PEM cut mid-way through its END line", RSA.slice(0, RSA.length - 10)],
    ["an END line of another type", `${lines(RSA).slice(0, -1).join("\n")}\n-----END OPENSSH PRIVATE KEY-----`],
    ["text after the END line", `${PKCS8}ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJunkPublicKeyLine acme@laptop`],
    ["a bare BEGIN line", "-----BEGIN OPENSSH PRIVATE KEY-----"],
    ["PRIVATE KEY mid-text", "my PRIVATE KEY is in the vault"],
  ])("refuses %s", (_name, raw) => {
    const err = refused(raw);
    expect(err.message).toMatch(/looks like a private key but is not a well-formed PEM\/OpenSSH\/PuTTY key/);
    expect(err.message).toMatch(/BEGIN line first.*matching END line last/);
  });

  it("a JSON password holding a key is refused: the key is in the wrong field", () => {
    const err = refused(JSON.stringify({ username: "acme", password: PKCS8 }));
    expect(err.message).toMatch(/JSON field "password" holds a private key; put it in "privateKey"/);
  });

  it("a JSON username holding a key is refused too: it would be sent to the server", () => {
    const err = refused(JSON.stringify({ username: PKCS8, privateKey: PKCS8 }));
    expect(err.message).toMatch(/JSON field "username" holds a private key/);
  });

  it("a JSON privateKey must be well-formed too, after repairing escaped newlines", () => {
    const truncated = escapeNewlines(lines(RSA).slice(0, 4).join("\n"));
    const err = refused(`{"privateKey":"${truncated}"}`);
    expect(err.message).toMatch(/JSON field "privateKey" looks like a private key but is not a well-formed/);
    expect(parseCredentialContent(`{"privateKey":"${escapeNewlines(RSA)}"}`, WHERE)).toEqual({ privateKey: RSA });
  });

  it("PuTTY keys (no PRIVATE KEY text) are keys", () => {
    const putty = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: acme\n";
    expect(parseCredentialContent(putty, WHERE)).toEqual({ privateKey: putty });
  });
});
