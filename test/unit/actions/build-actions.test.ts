import { resolve } from "node:path";
import { bundle, findActions } from "../../../scripts/build-actions";

const ROOT = resolve(__dirname, "../../..");

describe("scripts/build-actions.ts", () => {
  it("bundles every action with a src/index.ts, and skips composite ones", () => {
    const names = findActions().map((a) => a.name);
    expect(names).toEqual(expect.arrayContaining(["deploy-stack", "publish"]));
    expect(names).not.toContain("lib");
    expect(names).not.toContain("build-lambda");
  });

  // check:dist compares bytes: a build that varied from run to run or machine to machine would fail it forever.
  it("builds the same bytes twice, with no machine-specific path inside", async () => {
    const publish = findActions().find((a) => a.name === "publish")!;
    const [a, b] = [await bundle(publish), await bundle(publish)];
    expect(a.equals(b)).toBe(true);
    const text = a.toString("utf8");
    expect(text).not.toContain(ROOT);
    expect(text).toContain("// actions/publish/src/main.ts");
    // CommonJS for Node: what the repository's package.json (no "type") makes of dist/index.js.
    expect(text).toMatch(/^"use strict";/);
    expect(text).not.toMatch(/^import /m);
  }, 30_000);
});
