const t0=Date.now();
const fs = require("node:fs");
const swc = require("@swc/core");
require.extensions[".ts"] = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, "utf8"), {
    filename, sourceMaps: "inline",
    jsc: { parser: { syntax: "typescript" }, target: "es2023" },
    module: { type: "commonjs" },
  });
  module._compile(code, filename);
};
const { main } = require("./main.ts");
console.error("loaded", Date.now()-t0);
main(["validate", "examples/bridge.config.yaml"], {out: console.log, err: console.error, env: process.env}).then(c => console.error("done", c, Date.now()-t0));
