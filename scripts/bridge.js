#!/usr/bin/env node
"use strict";
// The `bridge` command (package.json "bin"). The CLI is TypeScript run through @swc-node/register, as `npm start`
// runs the local stack: nothing to build first. Its code is scripts/cli/main.ts.
require("@swc-node/register");
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
