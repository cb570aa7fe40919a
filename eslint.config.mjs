import js from "@eslint/js";
import tseslint from "typescript-eslint";
import globals from "globals";

export default tseslint.config(
  { ignores: ["node_modules/", "build/", "coverage/", ".bridge/", "actions/*/dist/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["**/*.js", "**/*.cjs"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // The engine is a plain library: adapters depend on it, never the reverse (DESIGN.md section 1).
    files: ["lambda/bridge/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["aws-lambda", "@types/aws-lambda"], message: "The engine must not know about Lambda." },
            { group: ["@actions/*"], message: "The engine must not know about GitHub Actions." },
            { group: ["@aws-lambda-powertools/*"], message: "Inject a Logger/MetricsSink instead." },
            {
              group: ["../handler", "../env", "../../scripts/*", "../../actions/*"],
              message: "Data flows engine <- adapters.",
            },
          ],
        },
      ],
      "no-restricted-properties": [
        "error",
        { object: "process", property: "env", message: "The engine receives config; adapters read the environment." },
      ],
    },
  },
  {
    // The CLI, local stack, bench and packaging run outside jest; what tests share with them lives under scripts/.
    files: ["scripts/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["**/test", "**/test/*"],
              message:
                "Scripts must not import test code; move the shared helper under scripts/ (e.g. scripts/interop).",
            },
          ],
        },
      ],
    },
  },
);
