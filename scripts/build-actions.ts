/**
 * Bundles every JavaScript action (`actions/<name>/src/index.ts`) into the committed `actions/<name>/dist/index.js`.
 *
 *   node -r @swc-node/register scripts/build-actions.ts            build all
 *   node -r @swc-node/register scripts/build-actions.ts --check    fail if a committed bundle differs from a fresh build
 *   ... [name...]                                                   only these actions
 *
 * The runner executes `dist/index.js` straight from the repository, so what is committed is what runs: `--check` in CI
 * proves the bundle was rebuilt from the sources it sits next to. Builds are deterministic (same sources, same
 * esbuild version: same bytes) because paths are relative to the repository root and nothing time- or machine-dependent
 * goes in. Composite actions (no `src/index.ts`, e.g. build-lambda) are not bundled.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { build, type BuildOptions } from "esbuild";
import { nativeAddons } from "./package";

const ROOT = resolve(__dirname, "..");
const ACTIONS = join(ROOT, "actions");

export interface ActionBundle {
  name: string;
  entry: string;
  outfile: string;
}

export function findActions(root = ROOT): ActionBundle[] {
  const dir = join(root, "actions");
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, "src", "index.ts")))
    .map((d) => ({
      name: d.name,
      entry: join(dir, d.name, "src", "index.ts"),
      outfile: join(dir, d.name, "dist", "index.js"),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function esbuildOptions(action: ActionBundle, root = ROOT): BuildOptions {
  return {
    absWorkingDir: root,
    entryPoints: [relative(root, action.entry)],
    outfile: relative(root, action.outfile),
    bundle: true,
    platform: "node",
    target: "node24",
    // CommonJS: the repository's package.json has no "type", so Node loads dist/index.js as CommonJS. ESM-only
    // dependencies (@actions/core 3, @actions/github 9) are converted by esbuild on the way in.
    format: "cjs",
    charset: "utf8",
    legalComments: "eof",
    minify: false,
    sourcemap: false,
    write: false,
    logLevel: "silent",
    // Actions that open SFTP connections (smoke-test) bundle ssh2: its optional native addons stay out, as in the
    // Lambda package, and ssh2 uses its pure-JS paths.
    plugins: [nativeAddons(root)],
  };
}

/** Builds one action in memory; the caller decides whether to write or compare. */
export async function bundle(action: ActionBundle, root = ROOT): Promise<Buffer> {
  const result = await build(esbuildOptions(action, root));
  const warnings = result.warnings.filter((w) => !isKnownHarmless(w.text));
  for (const w of warnings) {
    const at = w.location ? ` (${w.location.file}:${w.location.line})` : "";
    process.stderr.write(`warning: ${action.name}: ${w.text}${at}\n`);
  }
  const [out] = result.outputFiles ?? [];
  if (!out) throw new Error(`esbuild produced no output for ${action.entry}`);
  return Buffer.from(out.contents);
}

// Modules that feature-detect their module system read import.meta; as CommonJS it is empty and their fallbacks apply.
function isKnownHarmless(text: string): boolean {
  return text.includes('"import.meta" is not available');
}

async function main(argv: string[]): Promise<number> {
  const check = argv.includes("--check");
  const names = argv.filter((a) => !a.startsWith("--"));
  const unknownFlags = argv.filter((a) => a.startsWith("--") && a !== "--check");
  if (unknownFlags.length) {
    process.stderr.write(
      `unknown option(s): ${unknownFlags.join(" ")}\nusage: build-actions.ts [--check] [action...]\n`,
    );
    return 2;
  }
  const all = findActions();
  const missing = names.filter((n) => !all.some((a) => a.name === n));
  if (missing.length) {
    process.stderr.write(`no actions/<name>/src/index.ts for: ${missing.join(", ")}\n`);
    return 2;
  }
  const actions = names.length ? all.filter((a) => names.includes(a.name)) : all;

  const stale: string[] = [];
  for (const action of actions) {
    const fresh = await bundle(action);
    const rel = relative(ROOT, action.outfile);
    if (check) {
      const committed = existsSync(action.outfile) ? readFileSync(action.outfile) : undefined;
      if (!committed) stale.push(`${rel}: missing`);
      else if (!committed.equals(fresh))
        stale.push(`${rel}: differs from a fresh build of ${relative(ROOT, action.entry)}`);
      else process.stdout.write(`ok      ${rel}\n`);
    } else {
      await mkdir(dirname(action.outfile), { recursive: true });
      await writeFile(action.outfile, fresh);
      process.stdout.write(`built   ${rel} (${(fresh.length / 1024).toFixed(0)} KiB)\n`);
    }
  }
  if (check) {
    // A dist/ whose sources are gone still runs for anyone who uses the action: that is stale too.
    for (const d of readdirSync(ACTIONS, { withFileTypes: true })) {
      const dist = join(ACTIONS, d.name, "dist", "index.js");
      if (d.isDirectory() && existsSync(dist) && !all.some((a) => a.name === d.name)) {
        stale.push(`${relative(ROOT, dist)}: no actions/${d.name}/src/index.ts builds it`);
      }
    }
  }
  if (stale.length) {
    process.stderr.write(
      `${stale.length} action bundle(s) out of date:\n${stale.map((s) => `  ${s}`).join("\n")}\n` +
        `Run \`npm run build:actions\` and commit actions/*/dist.\n`,
    );
    return 1;
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
