import { InvalidKeyError } from "../../lambda/bridge/errors";
import {
  utcStamp,
  decodeS3EventKey,
  doneName,
  isFolderMarker,
  isRemoteDescendant,
  joinPrefixes,
  matchesPatterns,
  normalizePrefix,
  normalizeRemoteRoot,
  prefixesOverlap,
  relativeKey,
  remotePath,
  remoteRelative,
} from "../../lambda/bridge/paths";

function thrown(fn: () => unknown): InvalidKeyError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidKeyError);
    return err as InvalidKeyError;
  }
  throw new Error("expected an InvalidKeyError");
}

describe("normalizePrefix", () => {
  it.each([
    ["", ""],
    ["/", ""],
    ["a", "a/"],
    ["a/", "a/"],
    ["/a/b", "a/b/"],
    ["//a//b//", "a/b/"],
    ["a b/c+d", "a b/c+d/"],
    ["...hidden/", "...hidden/"],
  ])("%j -> %j", (input, expected) => {
    expect(normalizePrefix(input)).toBe(expected);
    expect(normalizePrefix(expected)).toBe(expected); // idempotent
  });

  it.each([["a/../b"], [".."], ["./a"], ["a/."], ["a\0b"], ["a\\b"], ["a\nb"]])("refuses %j", (input) => {
    expect(thrown(() => normalizePrefix(input)).code).toBe("INVALID_KEY");
  });

  it("joins stream prefix and direction prefix", () => {
    expect(joinPrefixes("psp", "/outbound")).toBe("psp/outbound/");
    expect(joinPrefixes("", "")).toBe("");
    expect(prefixesOverlap("a/", "a/b/")).toBe(true);
    expect(prefixesOverlap("", "x/")).toBe(true);
    expect(prefixesOverlap("a/", "ab/")).toBe(false);
  });
});

describe("decodeS3EventKey", () => {
  it("turns + into a space, then percent-decodes", () => {
    expect(decodeS3EventKey("out/red+flower.jpg")).toBe("out/red flower.jpg");
    expect(decodeS3EventKey("out/a%2Bb.xml")).toBe("out/a+b.xml");
    expect(decodeS3EventKey("out/caf%C3%A9%40x.csv")).toBe("out/café@x.csv");
    expect(decodeS3EventKey("out/100%25.txt")).toBe("out/100%.txt");
  });

  it("refuses malformed encoding", () => {
    const err = thrown(() => decodeS3EventKey("out/bad%E0%A4%A.xml"));
    expect(err.message).toMatch(/malformed URL encoding/);
    thrown(() => decodeS3EventKey("out/%zz"));
  });
});

describe("relativeKey", () => {
  it("returns the part below the prefix", () => {
    expect(relativeKey("psp/out/a.xml", "psp/out/")).toBe("a.xml");
    expect(relativeKey("psp/out/2026/11/a.xml", "psp/out")).toBe("2026/11/a.xml");
    expect(relativeKey("a.xml", "")).toBe("a.xml");
    expect(relativeKey("psp/out/.hidden", "psp/out/")).toBe(".hidden");
    expect(relativeKey("psp/out/..a", "psp/out/")).toBe("..a");
  });

  it.each([
    ["other/a.xml", "psp/out/", /not under the prefix/],
    ["psp/outbound/a.xml", "psp/out/", /not under the prefix/],
    ["psp/out/", "psp/out/", /prefix "psp\/out\/" itself/],
    ["psp/out//a.xml", "psp/out/", /starts with \//],
    ["psp/out/../a.xml", "psp/out/", /"\.\." path segment/],
    ["psp/out/a/../../b", "psp/out/", /"\.\." path segment/],
    ["psp/out/./a", "psp/out/", /"\." path segment/],
    ["psp/out/a//b", "psp/out/", /empty path segment/],
    ["psp/out/sub/", "psp/out/", /empty path segment/],
    ["psp/out/a\0.xml", "psp/out/", /NUL/],
    ["psp/out/a\u0007.xml", "psp/out/", /control character/],
    ["psp/out/a\u007f.xml", "psp/out/", /control character/],
    ["psp/out/..\\..\\etc", "psp/out/", /backslash/],
  ])("refuses %j under %j", (key, prefix, why) => {
    const err = thrown(() => relativeKey(key, prefix));
    expect(err.message).toMatch(why);
    expect(err.context.key).toBe(key);
  });

  it("knows folder markers", () => {
    expect(isFolderMarker("out/sub/")).toBe(true);
    expect(isFolderMarker("out/a.xml")).toBe(false);
  });
});

describe("remotePath / remoteRelative", () => {
  it.each([
    ["/IN", "a.xml", "/IN/a.xml"],
    ["/IN/", "2026/a.xml", "/IN/2026/a.xml"],
    ["IN", "a.xml", "IN/a.xml"],
    ["/", "a.xml", "/a.xml"],
    [".", "a.xml", "a.xml"],
    ["//IN//sub/", "a.xml", "/IN/sub/a.xml"],
  ])("remotePath(%j, %j) = %j and back", (root, rel, full) => {
    expect(remotePath(root, rel)).toBe(full);
    expect(remoteRelative(root, full)).toBe(rel);
  });

  it.each([["../etc/passwd"], ["a/../../b"], ["/abs"], [""], ["a//b"], ["a\0"], ["a\\..\\b"], ["."]])(
    "never leaves the root: remotePath('/IN', %j) throws",
    (rel) => {
      thrown(() => remotePath("/IN", rel));
    },
  );

  it("refuses listing results outside the root", () => {
    expect(thrown(() => remoteRelative("/OUT", "/OUTBOX/a.xml")).message).toMatch(
      /not under the remote directory "\/OUT"/,
    );
    thrown(() => remoteRelative("/OUT", "/OUT/../etc/passwd"));
    thrown(() => remoteRelative("/OUT", "/OUT/"));
    expect(remoteRelative(".", "./a.xml")).toBe("a.xml");
  });

  it("normalises roots and knows descendants", () => {
    expect(normalizeRemoteRoot("/IN/")).toBe("/IN");
    expect(normalizeRemoteRoot("")).toBe(".");
    expect(isRemoteDescendant("/OUT", "/OUT/.done")).toBe(true);
    expect(isRemoteDescendant("/OUT", "/OUT")).toBe(false);
    expect(isRemoteDescendant("/OUT", "/OUTBOX")).toBe(false);
    expect(isRemoteDescendant("/", "/x")).toBe(true);
    expect(isRemoteDescendant(".", ".done")).toBe(true);
    expect(isRemoteDescendant(".", "../x")).toBe(false);
  });
});

describe("matchesPatterns", () => {
  it("matches slash-free patterns against the base name at any depth", () => {
    expect(matchesPatterns("a.xml", ["*.xml"])).toBe(true);
    expect(matchesPatterns("2026/11/a.xml", ["*.xml"])).toBe(true);
    expect(matchesPatterns("a.xml.part", ["*.xml"])).toBe(false);
    expect(matchesPatterns("a.XML", ["*.xml"])).toBe(false);
    expect(matchesPatterns(".hidden.xml", ["*.xml"])).toBe(true); // dot: true
    expect(matchesPatterns("dir/.part", [".*"])).toBe(true);
  });

  it("matches patterns with a slash against the whole relative path", () => {
    expect(matchesPatterns("reports/a.csv", ["reports/*.csv"])).toBe(true);
    expect(matchesPatterns("x/reports/a.csv", ["reports/*.csv"])).toBe(false);
    expect(matchesPatterns("x/reports/a.csv", ["**/reports/*.csv"])).toBe(true);
    expect(matchesPatterns("deep/er/.x", ["**"])).toBe(true);
  });

  it("is any-of, and an empty list matches nothing", () => {
    expect(matchesPatterns("a.csv", ["*.xml", "*.csv"])).toBe(true);
    expect(matchesPatterns("a.txt", ["*.xml", "*.csv"])).toBe(false);
    expect(matchesPatterns("a.txt", [])).toBe(false);
  });
});

describe("doneName", () => {
  const at = new Date("2026-11-23T19:04:05.678Z");
  const taken = (...names: string[]) => {
    const set = new Set(names);
    return (candidate: string) => set.has(candidate);
  };

  it("stamps as UTC to the second", () => {
    expect(utcStamp(at)).toBe("20261123T190405Z");
  });

  it("keeps the name when free", async () => {
    await expect(doneName("report.csv", at, taken())).resolves.toBe("report.csv");
  });

  it("adds the archive time before the extension, then a counter", async () => {
    await expect(doneName("report.csv", at, taken("report.csv"))).resolves.toBe("report.20261123T190405Z.csv");
    await expect(doneName("report.csv", at, taken("report.csv", "report.20261123T190405Z.csv"))).resolves.toBe(
      "report.20261123T190405Z-2.csv",
    );
    await expect(
      doneName("report.csv", at, taken("report.csv", "report.20261123T190405Z.csv", "report.20261123T190405Z-2.csv")),
    ).resolves.toBe("report.20261123T190405Z-3.csv");
  });

  it("handles names without an extension, dotfiles and double extensions", async () => {
    await expect(doneName("README", at, taken("README"))).resolves.toBe("README.20261123T190405Z");
    await expect(doneName(".env", at, taken(".env"))).resolves.toBe(".env.20261123T190405Z");
    await expect(doneName("a.tar.gz", at, taken("a.tar.gz"))).resolves.toBe("a.tar.20261123T190405Z.gz");
  });

  it("accepts an async exists and asks about each candidate in order", async () => {
    const asked: string[] = [];
    const exists = async (c: string) => {
      asked.push(c);
      return asked.length < 3;
    };
    await expect(doneName("x.xml", at, exists)).resolves.toBe("x.20261123T190405Z-2.xml");
    expect(asked).toEqual(["x.xml", "x.20261123T190405Z.xml", "x.20261123T190405Z-2.xml"]);
  });

  it("refuses path-like names and gives up on an always-taken directory", async () => {
    await expect(doneName("a/b.xml", at, taken())).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(doneName("..", at, taken())).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(doneName("a.xml", at, () => true)).rejects.toThrow(/clean up doneDir/);
  });
});
