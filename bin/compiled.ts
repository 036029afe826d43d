/**
 * `npm start` runs its processes as compiled JavaScript, not through tsx: tsx's loader
 * keeps a second V8 isolate (the module-hooks thread) with the transpiled sources, about
 * 37 MB per process (docs/memory.md). The sources are transpiled with
 * `tsc -p tsconfig.build.json --noCheck` (no type check, as tsx does none either) into
 * .cirrus/dist, and only again when a source file, the tsconfigs or package.json changed
 * since the last build (newest mtime and file count, kept in a stamp file).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const DIST_DIR = path.join(repoRoot, ".cirrus", "dist");
const STAMP = path.join(DIST_DIR, ".build-stamp");
/** tsconfig.build.json's include list. */
const SOURCE_DIRS = ["api", "scheduler", "compute-agent", "common", "migrations", "openapi", "bin"];
const CONFIG_FILES = ["tsconfig.json", "tsconfig.build.json", "package.json"];

/**
 * Node options of the API process: a young generation of 2 × 4 MB instead of V8's
 * 2 × 16 MB (about 24 MB less resident, no measurable CPU cost; docs/memory.md). The
 * API also sets --heap-growing-percent itself (api/server.ts).
 */
export const API_NODE_OPTIONS = ["--max-semi-space-size=4"];

async function sourceState(): Promise<string> {
  let newest = 0;
  let files = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.name.endsWith(".ts") || entry.name.endsWith(".json")) {
        files++;
        newest = Math.max(newest, (await stat(full)).mtimeMs);
      }
    }
  };
  for (const dir of SOURCE_DIRS) if (existsSync(path.join(repoRoot, dir))) await walk(path.join(repoRoot, dir));
  for (const file of CONFIG_FILES) newest = Math.max(newest, (await stat(path.join(repoRoot, file))).mtimeMs);
  return `${newest} ${files}`;
}

/** Transpiles the sources into DIST_DIR unless that is up to date; resolves to DIST_DIR. */
export async function buildCompiled(say: (line: string) => void = () => {}): Promise<string> {
  const state = await sourceState();
  if ((await readFile(STAMP, "utf8").catch(() => "")) === state) return DIST_DIR;
  const started = Date.now();
  const tsc = path.join(repoRoot, "node_modules", "typescript", "bin", "tsc");
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [tsc, "-p", "tsconfig.build.json", "--noCheck", "--outDir", DIST_DIR], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d));
    child.stderr.on("data", (d: Buffer) => (output += d));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`tsc -p tsconfig.build.json --noCheck failed (${code}):\n${output}`))));
  });
  await writeFile(STAMP, state);
  say(`✓ compiled to ${path.relative(process.cwd(), DIST_DIR) || DIST_DIR} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return DIST_DIR;
}

/** The compiled counterpart of a source file (api/server.ts → <dist>/api/server.js). */
export function compiledPath(distDir: string, sourceFromRepoRoot: string): string {
  return path.join(distDir, sourceFromRepoRoot.replace(/\.ts$/, ".js"));
}
