/**
 * B2 end to end: from the first POST until every server is ACTIVE, 1,000 servers over
 * 100 simulated hosts and 10,000 over 1,000, posted by 16 concurrent clients, one
 * server per request. B5: deleting the 1,000 until the list is empty and no allocation
 * is left. B6: resident memory of api, scheduler and sim agent at the end of B2. B7: CPU
 * seconds of every process of the stack (api, scheduler, sim, every Postgres process
 * but other databases' backends, redis-server) per server created and deleted.
 * Multi-create (one request for 50 servers) is measured apart, as B2m.
 * Each run starts a fresh stack (bench/stack.ts) and warms it with a few boots first.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import { median, round, runLoad, type LoadResult } from "./lib/http-load.js";
import { TARGETS, type FigureRow } from "./lib/figures.js";
import { dbActivity } from "./lib/db-activity.js";
import { logOffset, statementCosts } from "./lib/pg-statements.js";
import { cpuByRole, rssMb, sampleCpu, stackProcessesByRole } from "./lib/stack-usage.js";
import { serverCounts, waitForCounts } from "./lib/server-counts.js";
import { startStack, type BenchFixtures, type Stack } from "./stack.js";

export const covers = ["B2", "B5", "B6", "B7"];

const CLIENTS = 16;
/** Boots (and their deletes) before each measured run; B2_WARMUP overrides it, to see how much of a run is start-up cost. */
const WARMUP = Number(process.env.B2_WARMUP ?? "") || 50;
const MULTI_PER_REQUEST = 50;
const IDLE_SAMPLE_MS = 10_000;

interface Scenario {
  name: string;
  servers: number;
  hosts: number;
  repeats: number;
  deletes: boolean;
  /** TypeScript through tsx (as `npm run api` and the tests run) instead of compiled JavaScript (as `npm start` runs). */
  tsx?: boolean;
}

function scenarios(quick: boolean): Scenario[] {
  if (quick) {
    return [
      { name: "1k", servers: 300, hosts: 30, repeats: 1, deletes: true },
      { name: "10k", servers: 2_000, hosts: 200, repeats: 1, deletes: false },
      { name: "1k-tsx", servers: 300, hosts: 30, repeats: 1, deletes: false, tsx: true },
    ];
  }
  return [
    { name: "1k", servers: 1_000, hosts: 100, repeats: 3, deletes: true },
    // One run: bringing up 1,000 hosts and 10,000 servers takes minutes.
    { name: "10k", servers: 10_000, hosts: 1_000, repeats: 1, deletes: false },
    { name: "1k-tsx", servers: 1_000, hosts: 100, repeats: 1, deletes: false, tsx: true },
  ];
}

const bootBody = (f: BenchFixtures, name: string, count = 1) =>
  JSON.stringify({
    server: {
      name,
      flavorRef: f.flavorRef,
      imageRef: f.imageRef,
      networks: [{ uuid: f.networkId }],
      ...(count > 1 ? { min_count: count, max_count: count } : {}),
    },
  });

/** Every process's pids, the roles for CPU accounting, and a sample to measure from. */
function meter(stack: Stack) {
  const database = decodeURIComponent(new URL(stack.databaseUrl).pathname.slice(1));
  const roles = stackProcessesByRole(stack.pids(), database);
  const all = Object.values(roles).flat();
  const before = sampleCpu(all);
  const client = process.cpuUsage();
  return () => {
    const used = cpuByRole(before, sampleCpu(all), roles);
    const c = process.cpuUsage(client);
    return { ...used, benchClientSec: round((c.user + c.system) / 1e6) };
  };
}

async function boot(stack: Stack, servers: number, prefix: string, perRequest = 1): Promise<{ load: LoadResult; activeMs: number; errors: number; refused: number; polls: number }> {
  const f = stack.fixtures!;
  const before = await serverCounts(stack.db);
  const started = Date.now();
  const load = await runLoad({
    baseUrl: stack.apiUrl,
    headers: stack.headers,
    clients: CLIENTS,
    total: servers / perRequest,
    expectStatus: 202,
    next: (i) => ({ method: "POST", path: "/v2.1/servers", body: bootBody(f, `${prefix}-${i}`, perRequest) }),
  });
  // A refused POST (reported, not retried) creates nothing: the target is what was accepted.
  const refused = Object.values(load.unexpected).reduce((a, b) => a + b, 0);
  const target = before.active + servers - refused * perRequest;
  const { ms, counts, polls } = await waitForCounts(stack.db, started, (c) => c.active + c.error - before.error >= target, {
    everyMs: servers > 2_000 ? 250 : 100,
    timeoutMs: 60_000 + servers * 100,
    what: `${servers} servers ACTIVE`,
  });
  return { load, activeMs: ms, errors: counts.error - before.error, refused, polls: polls + 1 };
}

async function deleteAll(stack: Stack): Promise<{ load: LoadResult; emptyMs: number; listEmpty: boolean; polls: number }> {
  const ids = (await stack.db("instances").whereNot("vm_state", "deleted").pluck("id")) as string[];
  const started = Date.now();
  const watching = waitForCounts(stack.db, started, (c) => c.live === 0 && c.allocations === 0, {
    everyMs: 100,
    timeoutMs: 60_000 + ids.length * 100,
    what: "every server deleted and no allocation left",
    allocations: true,
  });
  watching.catch(() => {});
  const load = await runLoad({
    baseUrl: stack.apiUrl,
    headers: stack.headers,
    clients: CLIENTS,
    total: ids.length,
    expectStatus: 204,
    next: (i) => ({ method: "DELETE", path: `/v2.1/servers/${ids[i]}` }),
  });
  const refused = Object.values(load.unexpected).reduce((a, b) => a + b, 0);
  if (refused > 0) throw new Error(`${refused} DELETEs were not accepted: ${JSON.stringify(load.unexpected)}`);
  const { ms, polls } = await watching;
  const list = (await (await fetch(`${stack.apiUrl}/v2.1/servers`, { headers: stack.headers })).json()) as { servers: unknown[] };
  return { load, emptyMs: ms, listEmpty: list.servers.length === 0, polls: polls + 1 };
}

function rssOf(stack: Stack): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [role, pids] of Object.entries(stack.pids())) out[role] = round(pids.reduce((sum, pid) => sum + rssMb(pid), 0), 1);
  return out;
}

async function warmUp(stack: Stack): Promise<void> {
  await boot(stack, WARMUP, "warm");
  await deleteAll(stack);
}

export async function runOnce(s: Scenario, opts: { profileDir?: string; multiCreate: boolean }) {
  const { profileDir } = opts;
  const stack = await startStack({
    hosts: s.hosts,
    compiled: !s.tsx,
    // B2_LOG_LEVEL=info (with BENCH_KEEP_LOGS=1) keeps every non-routine placement outcome in the scheduler's log.
    ...(process.env.B2_LOG_LEVEL ? { logLevel: process.env.B2_LOG_LEVEL } : {}),
    ...(profileDir ? { cpuProf: ["api", "scheduler", "sim"], logStatements: true } : {}),
  });
  const database = decodeURIComponent(new URL(stack.databaseUrl).pathname.slice(1));
  try {
    await warmUp(stack);
    // What the stack burns doing nothing (timers, heartbeats, idle workers), to tell fixed cost from cost per boot.
    const idleCpu = meter(stack);
    await new Promise((r) => setTimeout(r, IDLE_SAMPLE_MS));
    const idle = idleCpu();
    const logFrom = await logOffset();
    const createDb = await dbActivity(stack.db);
    const createCpu = meter(stack);
    const created = await boot(stack, s.servers, "b2");
    const create = createCpu();
    const rss = rssOf(stack);
    const createDbUse = await createDb(s.servers);
    const statements = profileDir ? await statementCosts(database, logFrom) : undefined;
    const out: Record<string, unknown> = {
      servers: s.servers,
      hosts: s.hosts,
      activeSec: round(created.activeMs / 1000, 2),
      bootsPerSec: round(s.servers / (created.activeMs / 1000), 1),
      postsAcceptedSec: created.load.seconds,
      postP50Ms: created.load.p50Ms,
      postP99Ms: created.load.p99Ms,
      errors: created.errors,
      refusedPosts: created.load.unexpected,
      rssMb: rss,
      idleCpuPerSec: Object.fromEntries(Object.entries(idle.byRole).map(([role, sec]) => [role, round(sec / idle.wallSec, 3)])),
      createCpu: create,
      // The bench's own polling queries are in these (one transaction each): see pollsPerServer.
      createDb: { ...createDbUse, pollsPerServer: round(created.polls / s.servers, 2) },
      ...(statements ? { createStatements: { msPerServer: round(statements.totalMs / s.servers, 2), top: statements.statements } } : {}),
    };
    if (s.deletes) {
      const deleteLogFrom = await logOffset();
      const deleteDb = await dbActivity(stack.db);
      const deleteCpu = meter(stack);
      const deleted = await deleteAll(stack);
      out.delete = { emptySec: round(deleted.emptyMs / 1000, 2), deletesPerSec: round(s.servers / (deleted.emptyMs / 1000), 1), listEmpty: deleted.listEmpty, deleteP50Ms: deleted.load.p50Ms };
      out.deleteCpu = deleteCpu();
      out.deleteDb = { ...(await deleteDb(s.servers)), pollsPerServer: round(deleted.polls / s.servers, 2) };
      if (profileDir) {
        const st = await statementCosts(database, deleteLogFrom);
        out.deleteStatements = { msPerServer: round(st.totalMs / s.servers, 2), top: st.statements };
      }
      if (!opts.multiCreate) return out;
      const multiCpu = meter(stack);
      const multi = await boot(stack, s.servers, "b2m", MULTI_PER_REQUEST);
      out.multiCreate = {
        perRequest: MULTI_PER_REQUEST,
        activeSec: round(multi.activeMs / 1000, 2),
        bootsPerSec: round(s.servers / (multi.activeMs / 1000), 1),
        errors: multi.errors,
        cpu: multiCpu(),
      };
    }
    return out;
  } finally {
    await stack.stop();
    if (profileDir) {
      await collectProfiles(stack.logsDir, profileDir, s.name);
      await rm(stack.logsDir, { recursive: true, force: true });
    }
  }
}

/** Keeps each process's main-thread profile (the largest of its folder) as b2-<scenario>-<process>.cpuprofile. */
async function collectProfiles(from: string, to: string, scenario: string): Promise<void> {
  const { copyFile, mkdir, readdir, stat } = await import("node:fs/promises");
  await mkdir(to, { recursive: true });
  for (const dir of (await readdir(from)).filter((f) => f.endsWith(".cpuprofiles"))) {
    const files = await Promise.all((await readdir(path.join(from, dir))).map(async (f) => ({ f, size: (await stat(path.join(from, dir, f))).size })));
    const main = files.sort((a, b) => b.size - a.size)[0];
    if (main) await copyFile(path.join(from, dir, main.f), path.join(to, `b2-${scenario}-${dir.replace(/\.cpuprofiles$/, "")}.cpuprofile`));
  }
}

type Run = Awaited<ReturnType<typeof runOnce>>;
const med = (runs: Run[], pick: (r: Run) => unknown) => round(median(runs.map((r) => Number(pick(r)))), 3);

function cpuPerServer(runs: Run[], key: "createCpu" | "deleteCpu", servers: number) {
  type Cpu = ReturnType<ReturnType<typeof meter>>;
  const cpus = runs.map((r) => r[key] as Cpu | undefined).filter((c): c is Cpu => !!c);
  if (cpus.length === 0) return undefined;
  const roles = Object.keys(cpus[0]!.byRole);
  return {
    stackMsPerServer: round(median(cpus.map((c) => (c.stackSec * 1000) / servers)), 2),
    byRoleMsPerServer: Object.fromEntries(roles.map((role) => [role, round(median(cpus.map((c) => ((c.byRole[role] ?? 0) * 1000) / servers)), 2)])),
    otherProcessesSec: round(median(cpus.map((c) => c.otherSec)), 2),
    wallSec: round(median(cpus.map((c) => c.wallSec)), 2),
    benchClientSec: round(median(cpus.map((c) => c.benchClientSec)), 2),
  };
}

function summarize(s: Scenario, runs: Run[]) {
  const rss = runs.map((r) => r.rssMb as Record<string, number>);
  const del = (r: Run) => r.delete as { emptySec: number; deletesPerSec: number; listEmpty: boolean } | undefined;
  const multi = (r: Run) => r.multiCreate as { activeSec: number; bootsPerSec: number } | undefined;
  return {
    servers: s.servers,
    hosts: s.hosts,
    repeats: runs.length,
    warmupBoots: WARMUP,
    compiled: !s.tsx,
    B2: {
      activeSec: med(runs, (r) => r.activeSec),
      bootsPerSec: med(runs, (r) => r.bootsPerSec),
      bootsPerSecPerRun: runs.map((r) => r.bootsPerSec),
      postsAcceptedSec: med(runs, (r) => r.postsAcceptedSec),
      postP50Ms: med(runs, (r) => r.postP50Ms),
      postP99Ms: med(runs, (r) => r.postP99Ms),
      errors: runs.map((r) => r.errors),
    },
    ...(s.deletes
      ? {
          B5: {
            emptySec: med(runs, (r) => del(r)?.emptySec),
            deletesPerSec: med(runs, (r) => del(r)?.deletesPerSec),
            listEmptyEveryRun: runs.every((r) => del(r)?.listEmpty),
          },
          B2m: {
            perRequest: MULTI_PER_REQUEST,
            runs: runs.filter((r) => multi(r)).length,
            activeSec: med(runs.filter((r) => multi(r)), (r) => multi(r)?.activeSec),
            bootsPerSec: med(runs.filter((r) => multi(r)), (r) => multi(r)?.bootsPerSec),
          },
        }
      : {}),
    /** CPU seconds per second of an idle stack, by process (first run). */
    idleCpuPerSec: runs[0]?.idleCpuPerSec,
    B6: Object.fromEntries(Object.keys(rss[0] ?? {}).map((role) => [role, round(median(rss.map((x) => x[role] ?? 0)), 1)])),
    B7: {
      create: cpuPerServer(runs, "createCpu", s.servers),
      ...(s.deletes ? { delete: cpuPerServer(runs, "deleteCpu", s.servers) } : {}),
    },
    /** Database work per server (first run): commits, rows, scans. */
    dbPerServer: { create: runs[0]?.createDb, ...(s.deletes ? { delete: runs[0]?.deleteDb } : {}) },
    runs,
  };
}

export async function run(opts: { quick: boolean; profileDir?: string }): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  // A profiled run is slowed down and only shows where the time goes: the first scenario once.
  for (const s of opts.profileDir ? scenarios(opts.quick).slice(0, 1) : scenarios(opts.quick)) {
    const runs: Run[] = [];
    const repeats = opts.profileDir ? 1 : s.repeats;
    for (let i = 0; i < repeats; i++) {
      process.stderr.write(`B2 ${s.name}: run ${i + 1}/${repeats} (${s.servers} servers over ${s.hosts} hosts)\n`);
      // Multi-create is a side figure: measured in the first run only, to keep the bench short.
      runs.push(await runOnce(s, { ...(opts.profileDir ? { profileDir: opts.profileDir } : {}), multiCreate: i === 0 }));
    }
    out[s.name] = summarize(s, runs);
  }
  return out;
}

type Summary = ReturnType<typeof summarize>;

/** The rows of docs/benchmarks.md's table. */
export function figures(result: Record<string, unknown>): FigureRow[] {
  const rows: FigureRow[] = [];
  for (const [name, value] of Object.entries(result)) {
    const s = value as Summary;
    const warm = s.warmupBoots && s.warmupBoots !== 50 ? `, after ${s.warmupBoots.toLocaleString("en")} warm-up boots` : "";
    const how = `${s.compiled === false ? "tsx, " : ""}${s.repeats > 1 ? `median of ${s.repeats}` : "1 run"}${warm}`;
    const scale = `${s.servers.toLocaleString("en")} servers / ${s.hosts.toLocaleString("en")} hosts (${how})`;
    const create = s.B7.create;
    const others = create && create.wallSec > 0 ? ` (other processes: ${round(create.otherProcessesSec / create.wallSec, 2)} cores)` : "";
    rows.push({ id: "B2", figure: `${scale}: first POST → all ACTIVE`, value: `${s.B2.activeSec} s = ${s.B2.bootsPerSec} boots/s${others}`, target: TARGETS.B2 });
    rows.push({ id: "B2", figure: `${scale}: POST p50 / p99 under that load`, value: `${s.B2.postP50Ms} / ${s.B2.postP99Ms} ms` });
    if (s.B2m) rows.push({ id: "B2m", figure: `${s.servers.toLocaleString("en")} servers / ${s.hosts.toLocaleString("en")} hosts, multi-create ${s.B2m.perRequest} per request (${s.B2m.runs} run): all ACTIVE`, value: `${s.B2m.activeSec} s = ${s.B2m.bootsPerSec} boots/s` });
    if (s.B5) rows.push({ id: "B5", figure: `delete ${s.servers.toLocaleString("en")}: list empty, allocations zero`, value: `${s.B5.emptySec} s = ${s.B5.deletesPerSec} deletes/s` });
    rows.push({ id: "B6", figure: `RSS at the end of B2 (${name})`, value: Object.entries(s.B6).map(([role, mb]) => `${role} ${mb} MB`).join(", "), target: TARGETS.B6 });
    const perRole = (c: NonNullable<Summary["B7"]["create"]>) => Object.entries(c.byRoleMsPerServer).map(([role, ms]) => `${role} ${ms}`).join(", ");
    const { delete: del } = s.B7 as { create?: NonNullable<Summary["B7"]["create"]>; delete?: NonNullable<Summary["B7"]["create"]> };
    if (create && del) {
      rows.push({ id: "B7", figure: `CPU per server created and deleted (${name})`, value: `${round(create.stackMsPerServer + del.stackMsPerServer, 1)} ms`, target: TARGETS.B7 });
    }
    if (create) rows.push({ id: "B7", figure: `CPU per server created (${name}), ms by process`, value: `${create.stackMsPerServer} ms: ${perRole(create)}` });
    if (del) rows.push({ id: "B7", figure: `CPU per server deleted (${name}), ms by process`, value: `${del.stackMsPerServer} ms: ${perRole(del)}` });
  }
  return rows;
}
