import { ActionInputError, errorMessage } from "../../../actions/lib/errors";
import { Inputs, inputsFromRecord } from "../../../actions/lib/inputs";
import { actionsLogger, maskCredentials } from "../../../actions/lib/log";
import { cell, code, runUrl, table } from "../../../actions/lib/summary";
import { readEndpoint, readRegion } from "../../../actions/lib/aws";

describe("Inputs", () => {
  it("reports every invalid input in one error, each by its name", () => {
    const inputs = new Inputs(
      inputsFromRecord({ flag: "yes", count: "12x", mode: "sideways", pairs: "A=1\nnot a pair\nA=2" }),
    );
    inputs.required("stack-name");
    inputs.boolean("flag", false);
    inputs.integer("count", { fallback: 1, min: 0, max: 10 });
    inputs.choice("mode", ["deploy", "plan"] as const, "deploy");
    inputs.keyValues("pairs");
    let caught: unknown;
    try {
      inputs.finish();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ActionInputError);
    const issues = (caught as ActionInputError).issues.map((i) => `${i.input}: ${i.message}`);
    expect(issues).toEqual([
      "stack-name: is required",
      'flag: "yes" is not a boolean; use true or false',
      'count: "12x" is not a whole number between 0 and 10',
      'mode: "sideways" is not one of: deploy, plan',
      'pairs: line 2 "not a pair" is not Key=Value',
      "pairs: line 3 sets A a second time",
    ]);
    expect((caught as Error).message).toMatch(/^6 invalid input\(s\):\n {2}stack-name: is required/);
  });

  it("parses valid values and falls back to defaults for absent ones", () => {
    const inputs = new Inputs(
      inputsFromRecord({
        flag: " False ",
        count: "7",
        list: "a, b\nc,,\n",
        pairs: "# comment\nUrl=https://x/?a=b\n\n Empty= \nList=a,b",
      }),
    );
    expect(inputs.boolean("flag", true)).toBe(false);
    expect(inputs.optionalBoolean("unset")).toBeUndefined();
    expect(inputs.integer("count", { fallback: 1, max: 10 })).toBe(7);
    expect(inputs.integer("absent", { fallback: 3 })).toBe(3);
    expect(inputs.list("list")).toEqual(["a", "b", "c"]);
    expect(inputs.keyValues("pairs")).toEqual({ Url: "https://x/?a=b", Empty: "", List: "a,b" });
    expect(inputs.choice("mode", ["deploy", "plan"] as const, "plan")).toBe("plan");
    expect(() => inputs.finish()).not.toThrow();
  });

  it("takes the region from the input, else from AWS_REGION, else asks for it", () => {
    const given = new Inputs(inputsFromRecord({ "aws-region": "eu-central-1" }));
    expect(readRegion(given, { AWS_REGION: "us-east-1" })).toBe("eu-central-1");
    const fromEnv = new Inputs(inputsFromRecord({}));
    expect(readRegion(fromEnv, { AWS_REGION: "us-east-1" })).toBe("us-east-1");
    const missing = new Inputs(inputsFromRecord({ "endpoint-url": "ftp://x" }));
    readRegion(missing, {});
    readEndpoint(missing);
    expect(() => missing.finish()).toThrow(/aws-region: is required when AWS_REGION is not set[\s\S]*endpoint-url/);
  });
});

describe("actionsLogger", () => {
  it("maps engine levels to Actions commands and appends fields readably", () => {
    const lines: string[] = [];
    const sink = {
      debug: (m: string) => lines.push(`debug ${m}`),
      info: (m: string) => lines.push(`info ${m}`),
      warning: (m: string) => lines.push(`warning ${m}`),
      error: (m: string) => lines.push(`error ${m}`),
    };
    const log = actionsLogger(sink);
    log.info("moved", { stream: "psp", files: 3, note: "two words", skipped: undefined });
    log.warn("slow");
    log.error("failed", { detail: { code: "X" } });
    log.debug("d");
    expect(lines).toEqual([
      'info moved (stream=psp files=3 note="two words")',
      "warning slow",
      'error failed (detail="{\\"code\\":\\"X\\"}")',
      "debug d",
    ]);
  });

  it("masks credential values from the environment and extra secrets", () => {
    const masked: string[] = [];
    maskCredentials((v) => masked.push(v), { AWS_SECRET_ACCESS_KEY: "sk", AWS_ACCESS_KEY_ID: "id" }, ["tok", ""]);
    expect(masked).toEqual(["sk", "tok"]);
  });
});

describe("summary markdown", () => {
  it("escapes table cells so values cannot break the table or inject HTML", () => {
    expect(cell("a|b\n<c>")).toBe("a\\|b<br>&lt;c&gt;");
    expect(cell(undefined)).toBe("-");
    expect(table(["A", "B"], [["x", 1]])).toBe("| A | B |\n| --- | --- |\n| x | 1 |");
  });

  it("fences inline code longer than any backtick run inside it", () => {
    expect(code("plain")).toBe("`plain`");
    expect(code("a`b")).toBe("`` a`b ``");
  });

  it("links the run attempt", () => {
    const env = { GITHUB_SERVER_URL: "https://github.com", GITHUB_REPOSITORY: "o/r", GITHUB_RUN_ID: "9" };
    expect(runUrl({ ...env, GITHUB_RUN_ATTEMPT: "2" })).toBe("https://github.com/o/r/actions/runs/9/attempts/2");
    expect(runUrl({})).toBeUndefined();
  });
});

describe("errorMessage", () => {
  it("appends causes that add information", () => {
    const err = new Error("publish failed", { cause: new Error("socket hang up") });
    expect(errorMessage(err)).toBe("publish failed: socket hang up");
    expect(errorMessage(new Error("x: boom", { cause: new Error("boom") }))).toBe("x: boom");
  });
});
