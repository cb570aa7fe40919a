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
    // The AWS wiring the Lambda function and the CLI share: neither adapter may reach the other through it.
    files: ["lambda/bridge-runtime.ts", "lambda/event-sinks.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["aws-lambda", "@types/aws-lambda"], message: "The shared wiring must not know about Lambda." },
            { group: ["@aws-lambda-powertools/*"], message: "Powertools belongs to the Lambda handler." },
            { group: ["@actions/*"], message: "The shared wiring must not know about GitHub Actions." },
            {
              group: ["./handler", "./env", "./events", "../scripts/*", "../actions/*"],
              message: "Adapters depend on the shared wiring, never the reverse.",
            },
          ],
        },
      ],
      "no-restricted-properties": [
        "error",
        { object: "process", property: "env", message: "Each adapter reads its own settings and passes them in." },
      ],
    },
  },
  {
    // The engine is a plain library: adapters depend on it, never the reverse.
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
              group: ["../handler", "../env", "../bridge-runtime", "../../scripts/*", "../../actions/*"],
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
