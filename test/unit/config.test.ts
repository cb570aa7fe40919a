import { readFileSync } from "node:fs";
import path from "node:path";
import {
  formatPath,
  parseConfigDocument,
  parseConfigLocation,
  parseConfigText,
  validateConfig,
} from "../../lambda/bridge/config";
import { ConfigError, type ConfigIssue, ConfigNotFoundError } from "../../lambda/bridge/errors";

const KEY = "SHA256:pUlCyONl83hPOLjUN/nXCCkNtgc4sAzc+5NMMtG+l/M";
const ROOT = path.resolve(__dirname, "../..");

type Doc = Record<string, unknown>;

/** A valid push+pull stream; tests change one thing at a time. */
function stream(overrides: Doc = {}): Doc {
  return {
    s3: { bucket: "acme-sftp", prefix: "psp/" },
    sftp: { host: "sftp.example", username: "acme", credentials: { secretsManager: "bridge/psp" }, hostKeys: [KEY] },
    push: { from: "outbound/", to: "/IN" },
    pull: { from: "/OUT", to: "inbound/" },
    ...overrides,
  };
}

function issuesOf(doc: unknown, options = {}): ConfigIssue[] {
  try {
    validateConfig(doc, "test.yaml", options);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error("expected a ConfigError");
}

function issueAt(doc: unknown, at: string, options = {}): string {
  const all = issuesOf(doc, options);
  const found = all.filter((i) => i.path === at);
  if (found.length === 0)
    throw new Error(`no issue at ${at}; got:\n${all.map((i) => `${i.path}: ${i.message}`).join("\n")}`);
  return found.map((i) => i.message).join("\n");
}

describe("validateConfig: the schema", () => {
  it("accepts a valid config, applies defaults and normalises prefixes", () => {
    const config = validateConfig(
      { streams: { psp: stream({ s3: { bucket: "acme-sftp", prefix: "/psp" }, push: { from: "out", to: "/IN/" } }) } },
      "t",
    );
    const psp = config.streams.psp!;
    expect(psp.s3.prefix).toBe("psp/");
    expect(psp.push).toMatchObject({ from: "out/", to: "/IN", patterns: ["**"], atomic: true, after: "keep" });
    expect(psp.pull).toMatchObject({ from: "/OUT", to: "inbound/", doneDir: ".done", after: "move" });
    expect(psp.sftp.port).toBe(22);
    expect(config.receipts).toEqual({
      enabled: true,
      prefix: "_bridge/receipts/",
      claimLeaseSeconds: 900,
      claimWaitSeconds: 30,
    });
  });

  it("says `required` for a missing field, by dotted path", () => {
    const doc = { streams: { psp: stream({ push: { from: "outbound/" } }) } };
    expect(issueAt(doc, "streams.psp.push.to")).toBe("required");
  });

  it("names unknown fields and suggests the likely one", () => {
    const s = stream();
    (s.sftp as Doc).prot = 22;
    (s.pull as Doc).donedir = ".done";
    const doc = { streams: { psp: s }, recipts: {} };
    expect(issueAt(doc, "streams.psp.sftp.prot")).toMatch(/^unknown field "prot" \(did you mean "port"\?/);
    expect(issueAt(doc, "streams.psp.pull.donedir")).toMatch(/did you mean "doneDir"\?/);
    expect(issueAt(doc, "recipts")).toMatch(
      /unknown field "recipts" \(did you mean "receipts"\? allowed here: version, receipts, streams\)/,
    );
  });

  it("reports type and range problems readably", () => {
    const s = stream({ schedule: "every hour" });
    (s.sftp as Doc).port = "22";
    (s.sftp as Doc).hostKeys = ["md5:aa"];
    (s.push as Doc).after = "archive";
    const doc = { streams: { psp: s } };
    expect(issueAt(doc, "streams.psp.sftp.port")).toBe('expected number, got string "22"');
    expect(issueAt(doc, "streams.psp.sftp.hostKeys[0]")).toMatch(/OpenSSH SHA256 fingerprint/);
    expect(issueAt(doc, "streams.psp.push.after")).toBe('must be one of "keep", "delete"');
    expect(issueAt(doc, "streams.psp.schedule")).toMatch(/rate\(N unit\)/);
  });

  it("refuses bad stream names, and still checks their contents", () => {
    const doc = { streams: { "psp.merchants": stream({ sftp: undefined }) } };
    expect(issueAt(doc, 'streams["psp.merchants"]')).toMatch(/letters, digits/);
    expect(issueAt(doc, 'streams["psp.merchants"].sftp')).toBe("required");
  });

  it("refuses an empty or non-mapping document and a config without streams", () => {
    expect(issueAt(null, "")).toMatch(/empty/);
    expect(issueAt([], "")).toBe("expected a mapping, got a list");
    expect(issueAt({}, "streams")).toBe("required");
    expect(issueAt({ streams: {} }, "streams")).toBe("define at least one stream");
  });

  it("formats paths", () => {
    expect(formatPath(["streams", "a", "sftp", "hostKeys", 0])).toBe("streams.a.sftp.hostKeys[0]");
    expect(formatPath(["streams", "a b"])).toBe('streams["a b"]');
    expect(formatPath([])).toBe("");
  });
});

describe("validateConfig: cross-field rules", () => {
  it("needs push or pull", () => {
    const doc = { streams: { psp: stream({ push: undefined, pull: undefined }) } };
    expect(issueAt(doc, "streams.psp")).toBe("a stream needs push, pull or both");
    expect(() => validateConfig({ streams: { psp: stream({ pull: undefined }) } }, "t")).not.toThrow();
    expect(() => validateConfig({ streams: { psp: stream({ push: undefined }) } }, "t")).not.toThrow();
  });

  it("refuses a pull destination inside the same stream's push source", () => {
    const doc = { streams: { psp: stream({ push: { from: "", to: "/IN" } }) } };
    expect(issueAt(doc, "streams.psp.pull.to")).toMatch(
      /pull destination "psp\/inbound\/" \(bucket acme-sftp\) overlaps this stream's push source "psp\/" .*pushed back/,
    );
  });

  it("refuses equal defaults: push.from and pull.to both empty", () => {
    const doc = { streams: { psp: stream({ push: { to: "/IN" }, pull: { from: "/OUT" } }) } };
    expect(issueAt(doc, "streams.psp.pull.to")).toMatch(/overlaps this stream's push source/);
  });

  it("refuses a pull destination that another stream pushes from", () => {
    const doc = {
      streams: {
        a: stream({ pull: undefined, s3: { bucket: "acme-sftp", prefix: "shared/" }, push: { to: "/IN" } }),
        b: stream({ push: undefined, s3: { bucket: "acme-sftp", prefix: "shared/b/" } }),
      },
    };
    expect(issueAt(doc, "streams.b.pull.to")).toMatch(/overlaps stream "a"'s push source "shared\/"/);
  });

  it("allows the same prefixes in different buckets", () => {
    const doc = {
      receipts: { bucket: "acme-receipts" },
      streams: {
        a: stream({ pull: undefined, s3: { bucket: "bucket-a", prefix: "" }, push: { to: "/IN" } }),
        b: stream({ push: undefined, s3: { bucket: "bucket-b", prefix: "" } }),
      },
    };
    expect(() => validateConfig(doc, "t")).not.toThrow();
  });

  it("refuses a key prefix claimed by two streams' push sources (nested or equal)", () => {
    const nested = {
      streams: {
        a: stream({ pull: undefined, s3: { bucket: "acme-sftp", prefix: "psp/" }, push: { to: "/IN" } }),
        b: stream({ pull: undefined, s3: { bucket: "acme-sftp", prefix: "psp/" }, push: { from: "x/", to: "/IN" } }),
      },
    };
    expect(issueAt(nested, "streams.b.push.from")).toMatch(
      /push source "psp\/x\/" .* overlaps stream "a"'s push source "psp\/" .*at most one stream/,
    );
    const equal = {
      streams: {
        a: stream({ pull: undefined, push: { from: "out", to: "/IN" } }),
        b: stream({ pull: undefined, push: { from: "/out/", to: "/IN" } }),
      },
    };
    expect(issueAt(equal, "streams.b.push.from")).toMatch(/"psp\/out\/" .* overlaps .*"psp\/out\/"/);
    const siblings = {
      streams: {
        a: stream({ pull: undefined, push: { from: "out", to: "/IN" } }),
        b: stream({ pull: undefined, push: { from: "outbox", to: "/IN" } }),
      },
    };
    expect(() => validateConfig(siblings, "t")).not.toThrow();
  });

  it("refuses a receipts prefix that overlaps a push source, in the stream's bucket or receipts.bucket", () => {
    const inStreamBucket = {
      streams: { psp: stream({ pull: undefined, s3: { bucket: "acme-sftp", prefix: "" }, push: { to: "/IN" } }) },
    };
    expect(issueAt(inStreamBucket, "receipts.prefix")).toMatch(
      /receipts prefix "_bridge\/receipts\/" \(bucket acme-sftp\) overlaps streams\.psp\.push\.from, stream "psp"'s push source "" .*pushed to the partner/,
    );
    const explicit = { receipts: { bucket: "acme-sftp", prefix: "psp/outbound/receipts" }, streams: { psp: stream() } };
    expect(issueAt(explicit, "receipts.prefix")).toMatch(
      /overlaps streams\.psp\.push\.from, stream "psp"'s push source "psp\/outbound\/"/,
    );
    const elsewhere = { receipts: { bucket: "acme-receipts" }, ...inStreamBucket };
    expect(() => validateConfig(elsewhere, "t")).not.toThrow();
    const disabled = { receipts: { enabled: false }, ...inStreamBucket };
    expect(() => validateConfig(disabled, "t")).not.toThrow();
  });

  it("refuses a receipts prefix that overlaps a pull destination, this stream's or another's", () => {
    const own = { receipts: { prefix: "psp/inbound/receipts/" }, streams: { psp: stream() } };
    expect(issueAt(own, "receipts.prefix")).toMatch(
      /receipts prefix "psp\/inbound\/receipts\/" \(bucket acme-sftp\) overlaps streams\.psp\.pull\.to, stream "psp"'s pull destination "psp\/inbound\/" .*fake or overwrite/,
    );
    // The pull destination inside the receipts prefix is the same clash seen from the other side.
    const wide = {
      receipts: { bucket: "acme-sftp", prefix: "feeds/" },
      streams: {
        psp: stream(),
        feeds: stream({
          push: undefined,
          s3: { bucket: "acme-sftp", prefix: "feeds/" },
          pull: { from: "/OUT", to: "in/" },
        }),
      },
    };
    expect(issueAt(wide, "receipts.prefix")).toMatch(
      /overlaps streams\.feeds\.pull\.to, stream "feeds"'s pull destination "feeds\/in\/"/,
    );
    // A pull destination in another bucket is no clash when receipts go to the stream's own bucket.
    const apart = { streams: { psp: stream({ s3: { bucket: "other-bucket", prefix: "psp/" } }) } };
    expect(() => validateConfig(apart, "t")).not.toThrow();
  });

  it("refuses a receipts location inside a stream's s3.prefix in the same bucket", () => {
    const doc = { streams: { psp: stream({ s3: { bucket: "acme-sftp", prefix: "" } }) } };
    const message = issueAt(doc, "receipts.prefix");
    expect(message).toMatch(
      /receipts prefix "_bridge\/receipts\/" \(bucket acme-sftp\) lies inside streams\.psp\.s3\.prefix, stream "psp"'s S3 prefix "" .*set receipts\.bucket/,
    );
    // Only that message: push.from and pull.to do not overlap the receipts, so nothing else is reported.
    expect(issuesOf(doc)).toHaveLength(1);
    const nested = { receipts: { prefix: "psp/_receipts" }, streams: { psp: stream() } };
    expect(issueAt(nested, "receipts.prefix")).toMatch(/"psp\/_receipts\/" .* lies inside streams\.psp\.s3\.prefix/);
    // receipts.bucket defaults to the stream's bucket: naming that bucket explicitly changes nothing.
    const explicit = { receipts: { bucket: "acme-sftp" }, ...doc };
    expect(issueAt(explicit, "receipts.prefix")).toMatch(/lies inside streams\.psp\.s3\.prefix/);
    const elsewhere = { receipts: { bucket: "acme-receipts" }, ...doc };
    expect(() => validateConfig(elsewhere, "t")).not.toThrow();
    const sibling = { receipts: { prefix: "pspx/" }, streams: { psp: stream() } };
    expect(() => validateConfig(sibling, "t")).not.toThrow();
    const disabled = { receipts: { enabled: false }, ...doc };
    expect(() => validateConfig(disabled, "t")).not.toThrow();
  });

  it("reports a receipts clash once although every stream shares receipts.bucket", () => {
    const doc = {
      receipts: { bucket: "acme-sftp", prefix: "psp/inbound/" },
      streams: { psp: stream(), other: stream({ s3: { bucket: "other-bucket", prefix: "o/" } }) },
    };
    expect(issuesOf(doc).filter((i) => i.path === "receipts.prefix")).toHaveLength(1);
  });

  it.each([
    ["s3.prefix", { s3: { bucket: "acme-sftp", prefix: "psp/../other" } }, /S3 prefix .* "\.\." path segment/],
    ["s3.prefix", { s3: { bucket: "acme-sftp", prefix: "psp\\x" } }, /backslash/],
    ["push.from", { push: { from: "out/\0", to: "/IN" } }, /NUL/],
    ["push.to", { push: { from: "out/", to: "/IN/../../etc" } }, /remote path .*"\.\." path segment/],
    ["pull.from", { pull: { from: "C:\\OUT", to: "in/" } }, /backslash/],
    ["pull.to", { pull: { from: "/OUT", to: "./in" } }, /"\." path segment/],
  ])("refuses unsafe paths: %s", (field, overrides, why) => {
    expect(issueAt({ streams: { psp: stream(overrides) } }, `streams.psp.${field}`)).toMatch(why);
  });

  it("keeps pull.doneDir inside pull.from", () => {
    const at = (doneDir: string, from = "/OUT") => ({
      streams: { psp: stream({ pull: { from, to: "in/", doneDir } }) },
    });
    expect(issueAt(at("../archive"), "streams.psp.pull.doneDir")).toMatch(/"\.\." path segment/);
    expect(issueAt(at("/ARCHIVE"), "streams.psp.pull.doneDir")).toMatch(/inside pull.from \("\/OUT"\)/);
    expect(issueAt(at("/OUT"), "streams.psp.pull.doneDir")).toMatch(/inside pull.from/);
    expect(issueAt(at("."), "streams.psp.pull.doneDir")).toMatch(/inside pull.from/);
    expect(() => validateConfig(at(".done"), "t")).not.toThrow();
    expect(() => validateConfig(at("archive/2026"), "t")).not.toThrow();
    expect(() => validateConfig(at("/OUT/.done"), "t")).not.toThrow();
    expect(() => validateConfig(at(".done", "outbox"), "t")).not.toThrow();
  });

  it("refuses inline secrets anywhere under a stream, with a friendly message", () => {
    const s = stream();
    (s.sftp as Doc).password = "hunter2";
    (s.sftp as Doc).private_key = "-----BEGIN OPENSSH PRIVATE KEY-----";
    const t = stream({
      s3: { bucket: "acme-sftp", prefix: "t/" },
      sftp: { host: "h", credentials: { passphrase: "p" }, hostKeys: [KEY] },
    });
    const u = stream({ s3: { bucket: "acme-sftp", prefix: "u/" } });
    (u.sftp as Doc).credentials = { secretsManager: "x", privateKey: "k" };
    const doc = { streams: { psp: s, t, u } };
    const expected =
      "inline secrets are not allowed; reference them with sftp.credentials.secretsManager / ssmParameter / s3Object";
    expect(issueAt(doc, "streams.psp.sftp.password")).toBe(expected);
    expect(issueAt(doc, "streams.psp.sftp.private_key")).toBe(expected);
    expect(issueAt(doc, "streams.t.sftp.credentials.passphrase")).toBe(expected);
    expect(issueAt(doc, "streams.u.sftp.credentials.privateKey")).toBe(expected);
    // One message per secret: no extra "unknown field" or "credentials must be" noise for the same mistake.
    const all = issuesOf(doc);
    expect(all).toHaveLength(4);
    // And the value itself never appears in the error.
    expect(JSON.stringify(all)).not.toMatch(/hunter2|BEGIN OPENSSH/);
  });

  it("allows credentials.file only when the caller does", () => {
    const doc = {
      streams: { psp: stream({ sftp: { host: "h", credentials: { file: "keys/psp" }, hostKeys: [KEY] } }) },
    };
    expect(issueAt(doc, "streams.psp.sftp.credentials.file")).toMatch(/only allowed for the CLI and the local stack/);
    expect(issueAt(doc, "streams.psp.sftp.credentials.file", { allowFileCredentials: false })).toMatch(/only allowed/);
    expect(() => validateConfig(doc, "t", { allowFileCredentials: true })).not.toThrow();
  });

  it("explains a credentials block that is not one reference", () => {
    const doc = { streams: { psp: stream({ sftp: { host: "h", credentials: { vault: "x" }, hostKeys: [KEY] } }) } };
    expect(issueAt(doc, "streams.psp.sftp.credentials")).toMatch(/exactly one reference/);
  });
});

describe("validateConfig: every problem at once", () => {
  it("lists schema and cross-field problems of all streams in one ConfigError", () => {
    const a = stream({ push: { from: "", to: "/IN/../x" } });
    (a.sftp as Doc).prot = 22; // a schema problem in the same stream as cross-field problems
    (a.sftp as Doc).password = "hunter2";
    const doc = {
      receipts: { prefix: "psp/", colour: "red" },
      streams: {
        a,
        b: stream({ push: undefined, pull: undefined }),
        c: stream({ s3: { bucket: "x" }, sftp: { host: "h", credentials: { file: "k" }, hostKeys: [] } }),
      },
    };
    let error: ConfigError | undefined;
    try {
      validateConfig(doc, "bridge.yaml");
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.code).toBe("CONFIG_INVALID");
    const paths = error!.issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "receipts.colour",
        "receipts.prefix", // overlaps stream a's push source: found although receipts has an unknown field
        "streams.a.sftp.prot",
        "streams.a.sftp.password",
        "streams.a.push.to",
        "streams.a.pull.to",
        "streams.b",
        "streams.c.s3.bucket",
        "streams.c.sftp.hostKeys",
      ]),
    );
    expect(error!.message).toMatch(/^config bridge\.yaml has \d+ problem\(s\):\n {2}receipts\.colour: unknown field/);
    for (const issue of error!.issues) expect(error!.message).toContain(`${issue.path}: ${issue.message}`);
    expect(error!.message).not.toContain("hunter2");
  });
});

describe("parseConfigText / parseConfigDocument", () => {
  it("reads JSON as well as YAML", () => {
    const json = JSON.stringify({ streams: { psp: stream() } });
    expect(parseConfigText(json, "c.json").streams.psp!.push!.to).toBe("/IN");
  });

  it("reports YAML syntax errors with line and column", () => {
    const text = "streams:\n  psp:\n    s3: { bucket: acme\n    sftp: x\n";
    let error: ConfigError | undefined;
    try {
      parseConfigDocument(text, "bad.yaml");
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.issues[0]!.message).toMatch(/^YAML syntax error at line \d+, column \d+: /);
  });

  it("refuses duplicate keys rather than silently keeping one", () => {
    expect(() => parseConfigDocument("streams: {}\nstreams: {}\n", "dup.yaml")).toThrow(
      /line 2, column 1: Map keys must be unique/,
    );
  });

  it("supports YAML merge keys to share settings between streams", () => {
    const text = `
x-sftp: &sftp { host: sftp.example, credentials: { secretsManager: s }, hostKeys: ["${KEY}"] }
streams:
  a: { s3: { bucket: acme-sftp, prefix: a/ }, sftp: { <<: *sftp, username: a }, push: { to: /IN } }
`;
    // x-sftp is not a config field: the anchor must live somewhere the schema accepts, so this reports it.
    expect(() => parseConfigText(text, "m.yaml")).toThrow(/x-sftp: unknown field/);
    const inline = `
streams:
  a: { s3: { bucket: acme-sftp, prefix: a/ }, sftp: &sftp { host: sftp.example, credentials: { secretsManager: s }, hostKeys: ["${KEY}"] }, push: { to: /IN } }
  b: { s3: { bucket: acme-sftp, prefix: b/ }, sftp: { <<: *sftp, port: 2222 }, push: { to: /IN } }
`;
    expect(parseConfigText(inline, "m.yaml").streams.b!.sftp).toMatchObject({ host: "sftp.example", port: 2222 });
  });
});

describe("parseConfigLocation", () => {
  it.each([
    ["s3://cfg-bucket/bridge/config.yaml", { kind: "s3", bucket: "cfg-bucket", key: "bridge/config.yaml" }],
    ["ssm:/bridge/config", { kind: "ssm", name: "/bridge/config" }],
    ["ssm:bridge-config", { kind: "ssm", name: "bridge-config" }],
    ["/bridge/config", { kind: "ssm", name: "/bridge/config" }],
    ["/var/task/bridge.config.yaml", { kind: "file", path: "/var/task/bridge.config.yaml" }],
    ["examples/bridge.config.yaml", { kind: "file", path: "examples/bridge.config.yaml" }],
    ["file:/etc/bridge/config", { kind: "file", path: "/etc/bridge/config" }],
  ])("%s", (location, expected) => {
    expect(parseConfigLocation(location)).toEqual(expected);
  });

  it("refuses a malformed s3 location", () => {
    expect(() => parseConfigLocation("s3://bucket-only")).toThrow(ConfigNotFoundError);
  });
});

describe("the example configs", () => {
  const read = (name: string) => readFileSync(path.join(ROOT, "examples", name), "utf8");

  it("bridge.config.yaml validates as the Lambda would load it", () => {
    const config = parseConfigText(read("bridge.config.yaml"), "bridge.config.yaml", { allowFileCredentials: false });
    expect(Object.keys(config.streams)).toEqual(["psp-merchants", "bank-payroll"]);
    const psp = config.streams["psp-merchants"]!;
    expect(psp.push && psp.pull).toBeTruthy();
    expect(psp.sftp.credentials).toEqual({ secretsManager: "bridge/psp-merchants" });
    const bank = config.streams["bank-payroll"]!;
    expect(bank.pull).toBeUndefined();
    expect(bank.sftp.credentials).toEqual({ ssmParameter: "/bridge/bank-payroll/password" });
  });

  it("local.config.yaml validates for the local stack, and only there", () => {
    const config = parseConfigText(read("local.config.yaml"), "local.config.yaml", { allowFileCredentials: true });
    const demo = config.streams.demo!;
    expect(demo.s3).toEqual({ bucket: "bridge-local", prefix: "demo/" });
    expect(demo.push).toMatchObject({ from: "outbound/", to: "/inbound" });
    expect(demo.pull).toMatchObject({ from: "/outbound", to: "inbound/" });
    expect(demo.schedule).toBe("rate(5 seconds)");
    expect(demo.sftp.credentials).toEqual({ file: ".bridge/keys/demo_user" });
    expect(() => parseConfigText(read("local.config.yaml"), "local.config.yaml")).toThrow(/credentials\.file/);
  });
});
