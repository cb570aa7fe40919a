#!/usr/bin/env node
"use strict";
// The `bridge` command (package.json "bin"); its code is scripts/cli/main.ts, compiled on load by SWC as Jest and
// `npm start` do, so there is nothing to build first. A direct require hook on @swc/core rather than
// @swc-node/register: that one loads the TypeScript compiler to read tsconfig.json, which tripled the start-up time
// of every command (2.4 s -> 0.7 s).
const fs = require("node:fs");
const swc = require("@swc/core");

require.extensions[".ts"] = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, "utf8"), {
    filename,
    sourceMaps: "inline",
    jsc: { parser: { syntax: "typescript" }, target: "es2023" },
    module: { type: "commonjs" },
  });
  module._compile(code, filename);
};
// --debug stack traces then point at TypeScript lines.
process.setSourceMapsEnabled(true);

const { main } = require("./cli/main.ts");

const io = {
  out: (line) => process.stdout.write(line + "\n"),
  err: (line) => process.stderr.write(line + "\n"),
  env: process.env,
};

main(process.argv.slice(2), io).then(
  (code) => exit(code),
  (err) => {
    // main() turns every error into a line and an exit code; reaching this is a bug in the CLI itself.
    process.stderr.write(`internal error: ${err && err.stack ? err.stack : err}\n`);
    exit(2);
  },
);

// Exit once the output is flushed, without waiting on idle keep-alive sockets or timers a library left behind.
function exit(code) {
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}
