/**
 * Builds the Lambda deployment package: one esbuild bundle of lambda/handler.ts in a reproducible zip.
 *
 *   node -r @swc-node/register scripts/package.ts [--arch arm64|x86_64] [--out build] [--github-output FILE]
 *
 * Writes <out>/bridge-<arch>-<the zip's SHA-256 in hex>.zip (older zips of that architecture in <out> are
 * removed) and <out>/bridge-<arch>.json ({zip, sha256, size, architecture}; `zip` is the file name, next to the
 * manifest), prints size and hash, and with --github-output appends zip-path, sha256 and size to FILE in GitHub's
 * key=value format. actions/build-lambda runs exactly this, on the runner or inside Amazon Linux.
 *
 * Decisions, measured on the project's machine (Debian 12, 2 shared cores, Node 24.21) with this lockfile; zip sizes
 * include the ~9 KB licence file:
 *
 * - ssh2's native addons are left out. The crypto binding (sshcrypto.node) and cpu-features stay external require()s
 *   that fail in Lambda, so ssh2 takes its JavaScript path (ciphers through node:crypto, i.e. OpenSSL, per packet) and
 *   the zip is the same for arm64 and x86_64: the architecture only names the file. scripts/package/bench-native.ts
 *   runs one client bundle with and without the binding (compiled for Node 24) dropped in where the bundle looks for
 *   it, ssh2 fastPut/fastGet of 256 MiB against OpenSSH on loopback, median of 5, two sessions:
 *     aes128-gcm@openssh.com (what ssh2 negotiates with OpenSSH and most servers)
 *       put 129-133 -> 246-258 MB/s, get 151-166 -> 253-275 MB/s; 204-227 -> 451-490 MB per CPU-second (x2.0-2.4)
 *     aes128-ctr: x1.6-2.2 per CPU-second; chacha20-poly1305 (only if a server offers nothing else): x3.2-4.2
 *   That is plain ssh2. The engine's own transport fixes (AES-GCM keys as KeyObjects, pooled padding, corked writes;
 *   docs/benchmarks.md) remove most of what the binding saves: measured on the engine's push, the binding cut only ~5%
 *   of its CPU (1.63-1.83 vs 1.73-1.86 CPU s per 256 MiB). We leave it out: the bridge moves business files
 *   to partners across the internet, where a file's time goes to round trips (handshake, open, write window, close,
 *   rename) and the partner's link; 130+ MB/s per core is more than such links carry, and a function that does move
 *   large files at a fractional CPU share is better served by a larger MemorySize (more CPU) than by a native addon.
 *   Including it costs a compile per architecture against Amazon Linux's glibc and the runtime's Node ABI, two zips,
 *   and an arm64 artefact no test here can load. Should that change, the bundle already requires
 *   ./crypto/build/Release/sshcrypto.node: adding that one entry (built by npm ci in the build container) switches it
 *   on, and the bench shows the effect.
 * - The AWS SDK v3 is bundled although nodejs24.x ships one: the runtime's copy changes under us without a deploy, a
 *   bundled one is the version the tests ran. esbuild prefers the SDK's ES-module builds (mainFields module,main) so
 *   unused commands and schemas drop out: 862 KB instead of 1,023 KB with its CommonJS builds. Leaving the SDK to the
 *   runtime would give 517 KB: pinning costs about 345 KB, and the zip stays at 82% of the 1 MiB budget.
 * - zod 4 re-exports its 40-odd message locales through `z.locales`, so esbuild keeps them all; only English (zod's
 *   default) is bundled, the others throw a clear error if called: -52 KB.
 * - Whitespace and syntax are minified, identifiers are not, and names are kept (keepNames): the engine's errors take
 *   their `name` from `new.target.name`, which renamed or deduplicated classes would change. Mangled identifiers
 *   shrink index.js by 73 KB in the zip but grow index.js.map by 162 KB (the names table and denser mappings): +89 KB
 *   in all. Unmangled, stack traces read well even without a source map.
 * - index.js.map is linked (//# sourceMappingURL) and shipped, without sourcesContent: stack traces need only the
 *   mappings, and the sources would take the zip to 1.57 MB. Node applies it with NODE_OPTIONS=--enable-source-maps.
 *   Cold init (require of index.js in a fresh Node 24 process, measured by test/integration/package.test.ts) is about
 *   130 ms, and about 10-40 ms more with source maps enabled.
 * - Reproducible: entries sorted, DOS timestamps fixed (1980-01-01 00:00, or SOURCE_DATE_EPOCH when set), mode 0644,
 *   no extended-timestamp fields, no absolute paths in the bundle or map. The same sources and lockfile built by the
 *   same Node version give the same bytes (deflate is Node's bundled zlib): test/integration/package.test.ts builds
 *   twice, in different processes, directories and time zones, and compares.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import path from "node:path";
import { parseArgs } from "node:util";
import { build, type BuildOptions, type Metafile, type Plugin } from "esbuild";
import { ZipFile } from "yazl";
import { thirdPartyNotices } from "./package/licenses";

export const ARCHITECTURES = ["arm64", "x86_64"] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** The project's budget for the zip (issue 4): small zips load and deploy fast. */
export const SIZE_BUDGET = 1024 * 1024;

export const ROOT = path.resolve(__dirname, "..");
const ENTRY = "lambda/handler.ts";

/** The require() strings ssh2 uses for its optional native parts; they stay in the bundle, unresolved. */
export const SSH2_NATIVE = {
  binding: "./crypto/build/Release/sshcrypto.node",
  cpuFeatures: "cpu-features",
} as const;

/** The DOS epoch: the earliest time a zip entry can carry. */
const DEFAULT_ZIP_TIME = { year: 1980, month: 0, day: 1, hours: 0, minutes: 0, seconds: 0 };

export interface PackageEntry {
  name: string;
  data: Buffer;
}

export interface PackageOptions {
  architecture: Architecture;
  /** Output directory (created if missing). */
  outDir: string;
  /** Repository root; default: this script's parent directory. */
  root?: string;
  /** Entry timestamp; default from SOURCE_DATE_EPOCH, else 1980-01-01 00:00. */
  mtime?: Date;
}

export interface PackageResult {
  architecture: Architecture;
  zipPath: string;
  manifestPath: string;
  sha256: string;
  size: number;
  entries: { name: string; size: number }[];
}

const isSsh2 = (importer: string) => /[\\/]node_modules[\\/]ssh2[\\/]lib[\\/]/.test(importer);

/** Leaves ssh2's optional native addons unresolved (see the header); any other native addon stops the build. */
export function nativeAddons(root: string): Plugin {
  const refuse = (what: string, importer: string) => ({
    errors: [
      {
        text:
          `${what} (required by ${path.relative(root, importer)}) is a native addon: ` +
          `decide in scripts/package.ts whether to compile it for Amazon Linux or leave it out`,
      },
    ],
  });
  return {
    name: "native-addons",
    setup(b) {
      b.onResolve({ filter: /\.node$/ }, (args) =>
        args.path === SSH2_NATIVE.binding && isSsh2(args.importer)
          ? { path: args.path, external: true }
          : refuse(args.path, args.importer),
      );
      b.onResolve({ filter: /^cpu-features$/ }, (args) =>
        isSsh2(args.importer) ? { path: args.path, external: true } : refuse(args.path, args.importer),
      );
    },
  };
}

/**
 * zod 4 re-exports every locale through `z.locales`, so none can be tree-shaken. Keep English (zod's default, set in
 * its classic entry) and replace the others by functions that explain why they are missing.
 */
function zodEnglishOnly(): Plugin {
  return {
    name: "zod-english-only",
    setup(b) {
      b.onLoad({ filter: /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => {
        const original = readFileSync(args.path, "utf8");
        const names = [...original.matchAll(/export \{ default as (\w+) \} from "\.\/([\w-]+)\.js";/g)];
        const en = names.find((m) => m[1] === "en");
        if (!en) {
          return {
            errors: [{ text: `zod's locales/index.js changed shape (no "en" export): revisit zodEnglishOnly()` }],
          };
        }
        const lines = [`export { default as en } from "./${en[2]}.js";`];
        for (const [, name] of names) {
          if (name === "en") continue;
          lines.push(
            `export function ${name}() { throw new Error("zod locale '${name}' is not in the Lambda bundle (scripts/package.ts keeps English only)"); }`,
          );
        }
        return { contents: `${lines.join("\n")}\n`, loader: "js", resolveDir: path.dirname(args.path) };
      });
    },
  };
}

export function esbuildOptions(root = ROOT): BuildOptions & { metafile: true; write: false } {
  return {
    absWorkingDir: root,
    entryPoints: [ENTRY],
    // Virtual (write: false): fixes where the map's relative source paths start, i.e. at the repository root.
    outfile: "index.js",
    bundle: true,
    platform: "node",
    target: "node24",
    format: "cjs",
    mainFields: ["module", "main"],
    minifyWhitespace: true,
    minifySyntax: true,
    minifyIdentifiers: false,
    keepNames: true,
    sourcemap: "linked",
    sourcesContent: false,
    legalComments: "eof",
    charset: "utf8",
    metafile: true,
    write: false,
    logLevel: "silent",
    plugins: [nativeAddons(root), zodEnglishOnly()],
  };
}

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Every require() left in the bundle must be satisfied by Node itself or be one of ssh2's optional addons. */
function checkExternals(metafile: Metafile): void {
  const allowed = new Set<string>([SSH2_NATIVE.binding, SSH2_NATIVE.cpuFeatures]);
  const unexpected = new Set<string>();
  for (const output of Object.values(metafile.outputs)) {
    for (const imp of output.imports) {
      if (imp.external && !BUILTINS.has(imp.path) && !allowed.has(imp.path)) unexpected.add(imp.path);
    }
  }
  if (unexpected.size) {
    throw new Error(
      `the bundle would require modules that are not in the Lambda runtime: ${[...unexpected].sort().join(", ")}`,
    );
  }
}

/** index.js, index.js.map and THIRD-PARTY-LICENSES.txt, in memory. */
export async function bundleHandler(root = ROOT): Promise<{ entries: PackageEntry[]; metafile: Metafile }> {
  const result = await build(esbuildOptions(root));
  if (result.warnings.length) {
    // A warning here (a dynamic require, import.meta under CommonJS...) is a runtime failure in Lambda: stop.
    const text = result.warnings.map(
      (w) => `  ${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ""}`,
    );
    throw new Error(`esbuild warned while bundling ${ENTRY}:\n${text.join("\n")}`);
  }
  checkExternals(result.metafile);
  const byName = new Map(result.outputFiles.map((f) => [path.basename(f.path), Buffer.from(f.contents)]));
  const js = byName.get("index.js");
  const map = byName.get("index.js.map");
  if (!js || !map) throw new Error(`esbuild produced ${[...byName.keys()].join(", ")}, expected index.js and its map`);
  // The container builds in /var/task, CI in its workspace: an absolute path in the output would change the bytes.
  for (const [name, data] of [
    ["index.js", js],
    ["index.js.map", map],
  ] as const) {
    if (data.includes(root))
      throw new Error(`${name} contains the build directory ${root}: the zip would not be reproducible`);
  }
  const notices = Buffer.from(thirdPartyNotices(result.metafile, root), "utf8");
  return {
    entries: [
      { name: "index.js", data: js },
      { name: "index.js.map", data: map },
      { name: "THIRD-PARTY-LICENSES.txt", data: notices },
    ],
    metafile: result.metafile,
  };
}

/**
 * The zip timestamp. yazl writes DOS date/time fields from the Date's *local* fields, so the Date is built from local
 * fields: the same wall-clock value in every time zone. SOURCE_DATE_EPOCH (reproducible-builds.org) is read as UTC.
 */
export function zipTimestamp(env: NodeJS.ProcessEnv = process.env): Date {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === "") {
    const t = DEFAULT_ZIP_TIME;
    return new Date(t.year, t.month, t.day, t.hours, t.minutes, t.seconds);
  }
  const seconds = Number(raw);
  // Zip (DOS) dates cover 1980-01-01 to 2107-12-31.
  if (!/^\d+$/.test(raw) || seconds < 315_532_800 || seconds >= 4_354_819_200) {
    throw new Error(`SOURCE_DATE_EPOCH=${JSON.stringify(raw)} must be whole seconds between 1980 and 2107 (UTC)`);
  }
  const u = new Date(seconds * 1000);
  return new Date(
    u.getUTCFullYear(),
    u.getUTCMonth(),
    u.getUTCDate(),
    u.getUTCHours(),
    u.getUTCMinutes(),
    u.getUTCSeconds(),
  );
}

/** A zip whose bytes depend only on the entries' names and contents and `mtime`. */
export async function reproducibleZip(entries: PackageEntry[], mtime: Date): Promise<Buffer> {
  const names = entries.map((e) => e.name);
  if (new Set(names).size !== names.length) throw new Error(`duplicate zip entries: ${names.join(", ")}`);
  const zip = new ZipFile();
  // Byte order, not locale order: the same on every machine.
  for (const entry of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    zip.addBuffer(entry.data, entry.name, {
      mtime,
      mode: 0o100644,
      compressionLevel: 9,
      // No extended-timestamp extra field: only the (fixed) DOS time goes in.
      forceDosTimestamp: true,
    });
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

export async function buildPackage(options: PackageOptions): Promise<PackageResult> {
  const { architecture } = options;
  if (!ARCHITECTURES.includes(architecture)) {
    throw new Error(`architecture ${JSON.stringify(architecture)} is not one of ${ARCHITECTURES.join(", ")}`);
  }
  const root = options.root ?? ROOT;
  const { entries, metafile } = await bundleHandler(root);
  const zip = await reproducibleZip(entries, options.mtime ?? zipTimestamp());
  if (zip.length > SIZE_BUDGET) {
    throw new Error(
      `the zip is ${zip.length} bytes, over the ${SIZE_BUDGET}-byte budget; largest packages in index.js:\n` +
        largestPackages(metafile)
          .slice(0, 10)
          .map(([name, bytes]) => `  ${name} ${bytes}`)
          .join("\n"),
    );
  }
  const hash = sha256(zip);
  const outDir = path.resolve(options.outDir);
  const fileName = `bridge-${architecture}-${hash}.zip`;
  await mkdir(outDir, { recursive: true });
  // One zip per architecture in the output directory, so a glob or a person never picks a stale one.
  for (const old of await readdir(outDir)) {
    if (old !== fileName && old.startsWith(`bridge-${architecture}-`) && old.endsWith(".zip")) {
      await rm(path.join(outDir, old));
    }
  }
  const zipPath = path.join(outDir, fileName);
  const manifestPath = path.join(outDir, `bridge-${architecture}.json`);
  await writeFile(zipPath, zip);
  const manifest = { zip: fileName, sha256: hash, size: zip.length, architecture };
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return {
    architecture,
    zipPath,
    manifestPath,
    sha256: hash,
    size: zip.length,
    entries: entries.map((e) => ({ name: e.name, size: e.data.length })),
  };
}

/** Bytes in index.js per npm package (or first-party directory), largest first. */
export function largestPackages(metafile: Metafile): [string, number][] {
  const totals = new Map<string, number>();
  const output = metafile.outputs["index.js"];
  for (const [input, { bytesInOutput }] of Object.entries(output?.inputs ?? {})) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input.replace(/\\/g, "/"));
    const key = m?.[1] ?? input.split(/[\\/]/)[0] ?? input;
    totals.set(key, (totals.get(key) ?? 0) + bytesInOutput);
  }
  return [...totals.entries()].sort((a, b) => b[1] - a[1]);
}

export interface CliOptions {
  architecture: Architecture;
  outDir: string;
  githubOutput?: string;
}

const USAGE = "usage: package.ts [--arch arm64|x86_64] [--out DIR] [--github-output FILE]";

export function parseCli(argv: string[]): CliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        arch: { type: "string", default: "arm64" },
        out: { type: "string", default: "build" },
        "github-output": { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${USAGE}`);
  }
  const arch = values.arch;
  if (!(ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new Error(`--arch ${JSON.stringify(arch)}: expected one of ${ARCHITECTURES.join(", ")}\n${USAGE}`);
  }
  return { architecture: arch as Architecture, outDir: values.out, githubOutput: values["github-output"] };
}

const posixRelative = (p: string) => path.relative(process.cwd(), p).split(path.sep).join("/");

async function main(argv: string[]): Promise<void> {
  const cli = parseCli(argv);
  const result = await buildPackage({ architecture: cli.architecture, outDir: cli.outDir });
  const zipPath = posixRelative(result.zipPath);
  const lines = [
    ...result.entries.map((e) => `  ${e.name.padEnd(26)} ${e.size.toLocaleString("en-US").padStart(11)} bytes`),
    `zip     ${zipPath}`,
    `size    ${result.size.toLocaleString("en-US")} bytes (${(result.size / 1024).toFixed(1)} KiB, ` +
      `${((100 * result.size) / SIZE_BUDGET).toFixed(0)}% of the 1 MiB budget)`,
    `sha256  ${result.sha256}`,
    `manifest ${posixRelative(result.manifestPath)}`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  if (cli.githubOutput) {
    const out = `zip-path=${zipPath}\nsha256=${result.sha256}\nsize=${result.size}\n`;
    await writeFile(cli.githubOutput, out, { flag: "a" });
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`package: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
