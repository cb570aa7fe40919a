/**
 * THIRD-PARTY-LICENSES.txt for the Lambda zip. The bundle inlines about 45 npm packages (MIT, ISC, BSD, Apache-2.0,
 * MIT-0); MIT, ISC and BSD ask for their notice to travel with copies, Apache-2.0 also for any NOTICE file, and the
 * zip is published (actions/publish) and handed to others. Identical texts are written once, under the list of
 * packages that ship them, so the file costs about 8 KB in the zip. Deterministic: packages and texts are sorted.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Metafile } from "esbuild";

interface PackageInfo {
  name: string;
  version: string;
  license: string;
  /** Contents of LICENSE / COPYING / NOTICE files, in file-name order. */
  texts: string[];
}

const NOTICE_FILE = /^(licen[cs]e|copying|notice)([.-].*)?$/i;

/** The package directories (relative to `root`) that contributed bytes to the bundle. */
export function bundledPackageDirs(metafile: Metafile): string[] {
  const dirs = new Set<string>();
  for (const [output, meta] of Object.entries(metafile.outputs)) {
    if (output.endsWith(".map")) continue;
    for (const [input, { bytesInOutput }] of Object.entries(meta.inputs)) {
      if (bytesInOutput === 0) continue;
      const normal = input.replace(/\\/g, "/");
      const at = normal.lastIndexOf("node_modules/");
      if (at < 0) continue;
      const [scopeOrName, name] = normal.slice(at + "node_modules/".length).split("/");
      if (!scopeOrName) continue;
      const pkg = scopeOrName.startsWith("@") && name ? `${scopeOrName}/${name}` : scopeOrName;
      dirs.add(`${normal.slice(0, at)}node_modules/${pkg}`);
    }
  }
  return [...dirs].sort();
}

function readPackage(root: string, dir: string): PackageInfo {
  const abs = path.join(root, dir);
  const manifestPath = path.join(abs, "package.json");
  if (!existsSync(manifestPath)) throw new Error(`third-party notices: ${dir} has no package.json`);
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as {
    name?: string;
    version?: string;
    license?: string | { type?: string };
  };
  const license = typeof manifest.license === "string" ? manifest.license : (manifest.license?.type ?? "UNKNOWN");
  const texts = readdirSync(abs)
    .filter((f) => NOTICE_FILE.test(f))
    .sort()
    .map((f) => readFileSync(path.join(abs, f), "utf8").replace(/\r\n/g, "\n").trim());
  return { name: manifest.name ?? dir, version: manifest.version ?? "0.0.0", license, texts };
}

export function thirdPartyNotices(metafile: Metafile, root: string): string {
  const packages = bundledPackageDirs(metafile).map((dir) => readPackage(root, dir));
  // One entry per distinct set of texts; packages that ship none are listed with their declared licence.
  const byText = new Map<string, string[]>();
  const withoutText: string[] = [];
  for (const p of packages) {
    const id = `${p.name}@${p.version} (${p.license})`;
    if (p.texts.length === 0) withoutText.push(id);
    else byText.set(p.texts.join("\n\n"), [...(byText.get(p.texts.join("\n\n")) ?? []), id]);
  }
  const groups = [...byText.entries()]
    .map(([text, ids]) => ({ text, ids: ids.sort() }))
    .sort((a, b) => (a.ids[0]! < b.ids[0]! ? -1 : a.ids[0]! > b.ids[0]! ? 1 : 0));

  const rule = "=".repeat(100);
  const parts = [
    "Third-party software bundled into index.js",
    `${packages.length} packages. Each section lists packages and the licence and notice texts they ship.`,
  ];
  for (const g of groups) parts.push(`${rule}\n${g.ids.join("\n")}\n${"-".repeat(100)}\n${g.text}`);
  if (withoutText.length) {
    parts.push(
      `${rule}\nPackages that ship no licence file (their package.json declares the licence in brackets):\n` +
        withoutText.sort().join("\n"),
    );
  }
  return `${parts.join("\n\n")}\n`;
}
