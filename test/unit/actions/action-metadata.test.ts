import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse } from "yaml";

/**
 * What a caller of `uses: <owner>/<repo>/actions/<name>@v1` relies on: every action documents each input and output,
 * JavaScript actions run on node24 from their committed bundle, and each has one entry point with one run().
 */
const ROOT = resolve(__dirname, "../../..");
const ACTIONS = join(ROOT, "actions");

interface ActionYaml {
  name?: string;
  description?: string;
  inputs?: Record<string, { description?: string; required?: boolean; default?: unknown }>;
  outputs?: Record<string, { description?: string }>;
  runs?: { using?: string; main?: string };
}

const actions = readdirSync(ACTIONS, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(ACTIONS, d.name, "action.yml")))
  .map((d) => ({ name: d.name, meta: parse(readFileSync(join(ACTIONS, d.name, "action.yml"), "utf8")) as ActionYaml }));

describe("action metadata", () => {
  it("covers every action", () => {
    expect(actions.map((a) => a.name).sort()).toEqual(
      ["build-lambda", "deploy-stack", "publish", "resend", "smoke-test"].sort(),
    );
  });

  it.each(actions.map((a) => [a.name, a.meta] as const))("%s documents itself, every input and output", (_n, meta) => {
    const undocumented = [
      ...(meta.name ? [] : ["name"]),
      ...((meta.description ?? "").length > 20 ? [] : ["description"]),
      ...Object.entries(meta.inputs ?? {})
        .filter(([, spec]) => (spec.description ?? "").trim().length < 10)
        .map(([input]) => `input ${input}`),
      ...Object.entries(meta.outputs ?? {})
        .filter(([, spec]) => (spec.description ?? "").trim().length < 10)
        .map(([output]) => `output ${output}`),
    ];
    expect(undocumented).toEqual([]);
    // An optional input without a default reads as "" anyway; saying so keeps the contract test's view simple.
    const optionalWithoutDefault = Object.entries(meta.inputs ?? {})
      .filter(([, spec]) => spec.required !== true && spec.default === undefined)
      .map(([input]) => input);
    expect(optionalWithoutDefault).toEqual([]);
  });

  it.each(actions.filter((a) => a.meta.runs?.using !== "composite").map((a) => [a.name, a.meta] as const))(
    "%s runs on node24 from its committed bundle, entered through src/index.ts -> run()",
    (name, meta) => {
      expect(meta.runs).toEqual({ using: "node24", main: "dist/index.js" });
      expect(existsSync(join(ACTIONS, name, "dist", "index.js"))).toBe(true);
      expect(readFileSync(join(ACTIONS, name, "src", "index.ts"), "utf8")).toBe(
        'import { run } from "./main";\n\nvoid run();\n',
      );
      const main = readFileSync(join(ACTIONS, name, "src", "main.ts"), "utf8");
      expect(main.match(/export async function run\(\)/g)).toHaveLength(1);
    },
  );
});
