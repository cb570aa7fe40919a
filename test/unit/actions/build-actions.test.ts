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

  // Each action carries only the engine parts it uses: resend invokes the function and never reads the bridge's
  // config, so the config schema and loader stay out of its bundle (smoke-test reads the config and has them).
  it("leaves the config loader out of the resend bundle", async () => {
    const byName = (name: string) => findActions().find((a) => a.name === name)!;
    const resend = (await bundle(byName("resend"))).toString("utf8");
    const smoke = (await bundle(byName("smoke-test"))).toString("utf8");
    // A message of the config schema's own, which esbuild cannot rename.
    const schemaText = "stream names are letters, digits, - and _";
    expect(smoke).toContain(schemaText);
    expect(resend).not.toContain(schemaText);
  }, 60_000);
});
