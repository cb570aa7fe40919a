// Four projects, one per tier, so `npm test` (unit + integration), `npm run test:faults` and `npm run test:interop`
// each select theirs.
const transform = { "^.+\\.(t|j)s$": ["@swc/jest", { jsc: { target: "es2023" } }] };
const common = { testEnvironment: "node", transform, moduleFileExtensions: ["ts", "js", "json"] };

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    { ...common, displayName: "unit", testMatch: ["<rootDir>/test/unit/**/*.test.ts"] },
    { ...common, displayName: "integration", testMatch: ["<rootDir>/test/integration/**/*.test.ts"] },
    { ...common, displayName: "interop", testMatch: ["<rootDir>/test/interop/**/*.test.ts"] },
    { ...common, displayName: "faults", testMatch: ["<rootDir>/test/faults/**/*.test.ts"] },
  ],
};
