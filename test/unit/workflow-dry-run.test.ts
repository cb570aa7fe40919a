import { evaluate, interpolate } from "../support/workflow-dry-run";

/**
 * The expression subset the rollout dry run evaluates, held to GitHub's rules where the workflows depend on them: a
 * wrong `||` or `==` here would let the dry run take a branch the runner would not.
 */
const context = {
  github: { ref: "refs/tags/v1.2.0", event: { action: "closed", pull_request: { number: 7 } } },
  vars: { SMOKE_STREAM: "", AWS_REGION: "eu-west-1" },
  steps: { current: { outputs: { deploy: "true" } } },
  needs: { build: { outputs: { "zip-name": "bridge-arm64-ab.zip" } } },
};
const ok = { failed: false };

describe("workflow dry run: expressions", () => {
  it("|| gives the first truthy operand, as GitHub does (an unset variable falls back)", () => {
    expect(evaluate("vars.SMOKE_STREAM || 'smoke'", context, ok)).toBe("smoke");
    expect(evaluate("vars.AWS_REGION || 'us-east-1'", context, ok)).toBe("eu-west-1");
    expect(evaluate("vars.NOT_SET || ''", context, ok)).toBe("");
  });

  it("compares strings without case, and reads missing properties as null", () => {
    expect(evaluate("steps.current.outputs.deploy == 'TRUE'", context, ok)).toBe(true);
    expect(evaluate("steps.other.outputs.deploy == 'true'", context, ok)).toBe(false);
    expect(evaluate("steps.other.outputs.deploy != ''", context, ok)).toBe(false);
    expect(evaluate("github.event.pull_request.number == 7", context, ok)).toBe(true);
  });

  it("knows the functions and operators the workflows use", () => {
    expect(evaluate("github.ref == 'refs/heads/main' || startsWith(github.ref, 'refs/tags/v')", context, ok)).toBe(
      true,
    );
    expect(evaluate("github.event.action != 'closed' && true", context, ok)).toBe(false);
    expect(evaluate("!(github.event.action == 'closed')", context, ok)).toBe(false);
    expect(evaluate("success()", context, { failed: true })).toBe(false);
    expect(evaluate("failure() || always()", context, { failed: true })).toBe(true);
    expect(() => evaluate("toJSON(github)", context, ok)).toThrow("does not implement toJSON()");
  });

  it("interpolates ${{ }} in text, dashed names included", () => {
    expect(interpolate("artifact/${{ needs.build.outputs.zip-name }}", context, ok)).toBe(
      "artifact/bridge-arm64-ab.zip",
    );
    expect(interpolate("n=${{ github.event.pull_request.number }}, x=${{ vars.NOPE }}", context, ok)).toBe("n=7, x=");
  });
});
