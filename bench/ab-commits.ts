/**
 * A/B of two versions of Cirrus on this machine, not part of `npm run bench`, each version
 * in turn, ROUNDS rounds, so that the machine's drift hits both alike. These machines drift
 * by a third within an hour (see docs/benchmarks.md), more than most changes are worth:
 * comparing a change with figures recorded earlier says little, comparing it in turns with
 * its parent says what it did. Two scenarios:
 *
 * - `b2` (the default): B2's 1,000 servers over 100 hosts (bench/b2-boot-delete.ts runOnce):
 *   boots/s, and B7's CPU per server created and deleted, by process;
 * - `b4`: B4's decision latency at 10,000 hosts (bench/b4-decide.ts latency, 500 decisions):
 *   p50 and p99 of a whole decision and of its filters and weighers;
 * - `b4t`: B4's decisions per second at 1,000 hosts, 2,000 boots each with its own job, with
 *   1 and with 3 scheduler processes (bench/b4-decide.ts throughput);
 * - `b1`: B1 as `npm run bench` runs it (bench/b1-accept.ts, median of its 3 repeats): p50 and
 *   requests/s at 16 clients and at 1, and the API's and Postgres' CPU per boot at 16.
 *
 *   npx tsx bench/ab-commits.ts <commit> [<other commit> | . (this checkout, the default)] [rounds=3] [b2|b4|b4t|b1]
 *
 * A commit is checked out as a git worktree in a temporary folder, with this checkout's
 * node_modules linked in (its dependencies must be the same); each run is a child process
 * that imports that version's own bench module and prints one line of JSON numbers.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { median, round } from "./lib/http-load.js";
import { repoRoot } from "./stack.js";

const [base, other = ".", roundsArg = "3", scenario = "b2"] = process.argv.slice(2);
if (!base || !["b2", "b4", "b4t", "b1"].includes(scenario)) {
  throw new Error("usage: npx tsx bench/ab-commits.ts <commit> [<other commit> | .] [rounds=3] [b2|b4|b4t|b1]");
}
const ROUNDS = Number(roundsArg);

type Figures = Record<string, number>;

const RUN_B2 = `
const { runOnce } = await import(process.argv[2] + "/bench/b2-boot-delete.ts");
const servers = 1000;
const r = await runOnce({ name: "1k", servers, hosts: 100, repeats: 1, deletes: true }, { multiCreate: false });
// CPU milliseconds per server, of the whole stack or of one process.
const ms = (c, role) => ((role ? c.byRole[role] : c.stackSec) * 1000) / servers;
console.log(JSON.stringify({
  bootsPerSec: r.bootsPerSec,
  cpuMsPerServer: ms(r.createCpu) + ms(r.deleteCpu),
  ...Object.fromEntries(Object.keys(r.createCpu.byRole).map((k) => ["createMs_" + k, ms(r.createCpu, k)])),
}));
`;

const RUN_B4 = `
const { latency } = await import(process.argv[2] + "/bench/b4-decide.ts");
const r = await latency(10000, 500);
console.log(JSON.stringify({
  decisionP50Ms: r.decision.p50_ms, decisionP99Ms: r.decision.p99_ms,
  inMemoryP50Ms: r.filter_and_weigh.p50_ms, inMemoryP99Ms: r.filter_and_weigh.p99_ms,
  // CPU per decision by process, where the version measures it (from 0123848).
  ...Object.fromEntries(Object.entries(r.cpu_ms_per_decision ?? {}).map(([k, v]) => ["cpuMs_" + k, v])),
}));
`;

const RUN_B4T = `
const { throughput } = await import(process.argv[2] + "/bench/b4-decide.ts");
const one = await throughput(1000, 1, 2000);
const three = await throughput(1000, 3, 2000);
console.log(JSON.stringify({ decisionsPerSec1: one.decisions_per_s, decisionsPerSec3: three.decisions_per_s }));
`;

const RUN_B1 = `
const { run } = await import(process.argv[2] + "/bench/b1-accept.ts");
const r = await run({ quick: false });
console.log(JSON.stringify({
  c16P50Ms: r.clients16.p50Ms, c16PerSec: r.clients16.requestsPerSec,
  c16ApiCpuMs: r.clients16.cpuMsPerRequest.api, c16PostgresCpuMs: r.clients16.cpuMsPerRequest.postgres,
  seqP50Ms: r.sequential.p50Ms,
}));
`;

async function checkout(ref: string, dir: string): Promise<string> {
  if (ref === ".") return repoRoot;
  const at = path.join(dir, ref.replace(/[^\w.-]/g, "_"));
  execFileSync("git", ["-C", repoRoot, "worktree", "add", "--detach", "--quiet", at, ref]);
  await symlink(path.join(repoRoot, "node_modules"), path.join(at, "node_modules"));
  return at;
}

async function runOne(script: string, root: string): Promise<Figures> {
  const child = spawn(process.execPath, ["--import", "tsx", script, root], { cwd: root, stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  const line = out.trim().split("\n").pop() ?? "";
  if (code !== 0 || !line.startsWith("{")) throw new Error(`the run in ${root} failed (exit ${code}): ${out.slice(-500)}`);
  return JSON.parse(line) as Figures;
}

/** Every run's figures, and the median of each. */
function summary(runs: Figures[]) {
  return Object.fromEntries(
    Object.keys(runs[0]!).map((k) => [k, { median: round(median(runs.map((r) => r[k] ?? 0)), 2), runs: runs.map((r) => round(r[k] ?? 0, 2)) }]),
  );
}

const dir = await mkdtemp(path.join(os.tmpdir(), "cirrus-ab-"));
const roots: string[] = [];
try {
  const script = path.join(dir, "run-one.mts");
  await writeFile(script, { b1: RUN_B1, b2: RUN_B2, b4: RUN_B4, b4t: RUN_B4T }[scenario]!);
  for (const ref of [base, other]) roots.push(await checkout(ref, dir));
  const runs: Figures[][] = [[], []];
  for (let r = 0; r < ROUNDS; r++) {
    // A B, B A, A B, …: whatever a run leaves behind for the next one (a database dropped,
    // WAL to flush, autovacuum) does not always fall on the same version.
    for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
      process.stderr.write(`round ${r + 1}/${ROUNDS}: ${[base, other][i]}\n`);
      runs[i]!.push(await runOne(script, roots[i]!));
    }
  }
  console.log(JSON.stringify({ machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model}`, scenario, [base]: summary(runs[0]!), [other]: summary(runs[1]!) }, null, 2));
} finally {
  for (const root of roots) if (root !== repoRoot) execFileSync("git", ["-C", repoRoot, "worktree", "remove", "--force", root]);
  await rm(dir, { recursive: true, force: true });
}
