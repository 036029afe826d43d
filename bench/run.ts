/**
 * `npm run bench [-- --quick] [-- --only B2,B5] [-- --profile]`: runs every benchmark
 * module (bench/b<N>-*.ts, each exporting `run({ quick })`), writes
 * bench/results/<date>-<commit>.json with the machine it ran on, and regenerates the
 * figures table of docs/benchmarks.md from the newest result of every module.
 * --profile: the modules that support it run once under `node --cpu-prof` and leave
 * their profiles in bench/results/profiles/ (summarise one with bench/profile-summary.ts).
 * --docs: only regenerate the table from the results already there.
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import pg from "pg";
import { flattenFigures, renderFigures, replaceBetween, type FigureRow, type ResultSource } from "./lib/figures.js";
import { machineInfo, syscallCostNs, type MachineInfo } from "./lib/machine.js";
import { repoRoot } from "./stack.js";

interface BenchModule {
  run(opts: { quick: boolean; profileDir?: string }): Promise<Record<string, unknown>>;
  /** The benchmark ids a module measures (default: B<N> from its file name). */
  covers?: string[];
  figures?(result: Record<string, unknown>): FigureRow[];
}

interface ResultFile {
  machine: MachineInfo;
  quick: boolean;
  profile: boolean;
  results: Record<string, Record<string, unknown>>;
  errors: Record<string, string>;
  secondsByModule: Record<string, number>;
}

const benchDir = path.join(repoRoot, "bench");
const resultsDir = path.join(benchDir, "results");
const docFile = path.join(repoRoot, "docs", "benchmarks.md");

function parseArgs(argv: string[]) {
  const args = { quick: false, only: null as string[] | null, profile: false, docsOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") continue;
    if (a === "--quick") args.quick = true;
    else if (a === "--profile") args.profile = true;
    else if (a === "--docs") args.docsOnly = true;
    else if (a === "--only") args.only = (argv[++i] ?? "").split(",").map((x) => x.trim().toUpperCase()).filter(Boolean);
    else throw new Error(`unknown option ${a}; usage: npm run bench [-- --quick] [-- --only B2,B5] [-- --profile] [-- --docs]`);
  }
  return args;
}

async function moduleFiles(): Promise<string[]> {
  return (await readdir(benchDir)).filter((f) => /^b\d+[a-z]?-[\w-]+\.ts$/.test(f)).sort((a, b) => Number(/\d+/.exec(a)![0]) - Number(/\d+/.exec(b)![0]));
}

const idOf = (file: string) => `B${/^b(\d+)/.exec(file)![1]}`;
const nameOf = (file: string) => file.replace(/\.ts$/, "");

async function load(file: string): Promise<BenchModule> {
  return (await import(pathToFileURL(path.join(benchDir, file)).href)) as BenchModule;
}

/** The newest result of every module, across all result files. */
async function newestResults(): Promise<Map<string, ResultSource>> {
  const newest = new Map<string, ResultSource>();
  const files = (await readdir(resultsDir)).filter((f) => f.endsWith(".json")).sort();
  for (const file of files) {
    const data = JSON.parse(await readFile(path.join(resultsDir, file), "utf8")) as ResultFile;
    if (data.quick || data.profile) continue;
    for (const [module, result] of Object.entries(data.results)) {
      const prev = newest.get(module);
      if (!prev || prev.date <= data.machine.date) newest.set(module, { module, result, date: data.machine.date, commit: data.machine.commit, file });
    }
  }
  return newest;
}

async function regenerateDoc(): Promise<void> {
  const newest = await newestResults();
  const sources: { rows: FigureRow[]; source: ResultSource }[] = [];
  for (const file of await moduleFiles()) {
    const source = newest.get(nameOf(file));
    if (!source) continue;
    const mod = await load(file).catch(() => null);
    sources.push({ rows: mod?.figures?.(source.result) ?? flattenFigures(nameOf(file), source.result), source });
  }
  const machines = new Map<string, MachineInfo>();
  for (const s of sources.map((x) => x.source)) {
    const data = JSON.parse(await readFile(path.join(resultsDir, s.file), "utf8")) as ResultFile;
    machines.set(s.file, data.machine);
  }
  const machineLines = [...machines].map(
    ([file, m]) =>
      `- \`bench/results/${file}\`: ${m.date}, commit \`${m.commit}\`${m.uncommittedFiles ? ` (+${m.uncommittedFiles} uncommitted files)` : ""}, ${m.cpuModel}, ${m.cores} cores, ${m.ramGb} GB, Node ${m.node}, PostgreSQL ${m.postgres}, Redis ${m.redis}, load average ${m.loadAverage1m} at the start${m.syscallNs ? `, a system call ${m.syscallNs.start} ns at the start${m.syscallNs.end !== undefined ? ` and ${m.syscallNs.end} at the end` : ""}` : ""}`,
  );
  const doc = await readFile(docFile, "utf8");
  await writeFile(docFile, replaceBetween(doc, "bench:figures", `${renderFigures(sources)}\n\nMeasured on:\n\n${machineLines.join("\n")}`));
}

const args = parseArgs(process.argv.slice(2));
if (args.docsOnly) {
  await regenerateDoc();
  console.error(`figures: ${path.relative(repoRoot, docFile)} (from the results already in bench/results)`);
  process.exit(0);
}
const databaseRoot = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const machine = await machineInfo(repoRoot, databaseRoot, redisUrl);
const profileDir = args.profile ? path.join(resultsDir, "profiles", machine.date.replace(/[:.]/g, "-")) : undefined;
const out: ResultFile = { machine, quick: args.quick, profile: args.profile, results: {}, errors: {}, secondsByModule: {} };
await mkdir(resultsDir, { recursive: true });
const resultFile = path.join(resultsDir, `${machine.date.replace(/[:]/g, "-").replace(/\.\d+Z$/, "Z")}-${machine.commit}${args.quick ? "-quick" : ""}${args.profile ? "-profile" : ""}.json`);
// Written after every module, so a module that fails or hangs later does not lose the others' figures.
const save = () => writeFile(resultFile, `${JSON.stringify(out, null, 2)}\n`);
/**
 * Writes every dirty page of the previous module to disk before the next one starts. B0's
 * pgbench leaves seconds of them, and the checkpointer flushing them slowed the first of
 * B1's repeats after it (p50 10.2 ms against 8.4 and 6.5, the machine's load average 2.5 at
 * its start). Skipped where the bench's user may not (CHECKPOINT needs pg_checkpoint).
 */
async function checkpoint(): Promise<void> {
  const client = new pg.Client({ connectionString: databaseRoot });
  try {
    await client.connect();
    await client.query("CHECKPOINT");
  } catch {
    // not allowed here: the modules run as before
  } finally {
    await client.end().catch(() => {});
  }
}

for (const file of await moduleFiles()) {
  const mod = await load(file);
  const covers = mod.covers ?? [idOf(file)];
  if (args.only && !covers.some((id) => args.only!.includes(id))) continue;
  await checkpoint();
  console.error(`== ${nameOf(file)} (${covers.join(", ")})${args.quick ? " --quick" : ""}`);
  const started = Date.now();
  try {
    out.results[nameOf(file)] = await mod.run({ quick: args.quick, ...(profileDir ? { profileDir } : {}) });
  } catch (err) {
    out.errors[nameOf(file)] = err instanceof Error ? (err.stack ?? err.message) : String(err);
    console.error(`!! ${nameOf(file)} failed: ${out.errors[nameOf(file)]}`);
  }
  out.secondsByModule[nameOf(file)] = Math.round((Date.now() - started) / 1000);
  await save();
}
const endCost = syscallCostNs();
if (out.machine.syscallNs && endCost !== null) {
  out.machine.syscallNs.end = endCost;
  await save();
}
console.error(`results: ${path.relative(repoRoot, resultFile)}`);
// Quick and profiled runs are smaller or slowed down: they never make the published table.
if (!args.quick && !args.profile) {
  await regenerateDoc();
  console.error(`figures: ${path.relative(repoRoot, docFile)}`);
}
console.log(JSON.stringify(out.results, (k, v) => (k === "runs" ? undefined : v), 2));
if (Object.keys(out.errors).length > 0) process.exitCode = 1;
