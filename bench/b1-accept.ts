/**
 * B1: `POST /v2.1/servers` acceptance over real HTTP against the API process. Each
 * repeat starts the API on a fresh database, warms it up (WARMUP_BOOTS), then sends 1,000 boots from one
 * client and 1,000 from 16 concurrent clients (keep-alive). No scheduler runs: the
 * accepted boots are committed with their outbox rows, which the API's relay publishes to
 * the schedule queue, where they wait.
 */
import os from "node:os";
import { fileURLToPath } from "node:url";
import { startApiProcess } from "./lib/api-process.js";
import { bootBody, createBootFixtures } from "./lib/boot-fixtures.js";
import { median, medianOfRuns, round, runLoad, type LoadResult } from "./lib/http-load.js";
import { TARGETS, type FigureRow } from "./lib/figures.js";
import { CpuMeter } from "./lib/proc-cpu.js";

/**
 * Boots before the measured runs: acceptance latency is a running API's, with its code
 * optimised by V8. bench/api-warmup-curve.ts shows how long that takes: at 16 clients the
 * API's CPU per boot falls from 0.9 ms (first 1,000 boots) to 0.53 (boots 2,000 to 3,000,
 * where B1 measured with 1,000 warm-up boots). On 27 November, with the look-up remembered
 * and the rate limit decided in the process, it was 0.5 to 0.62 in boots 3,000 to 7,000
 * (where B1 measured with 5,000 warm-up boots) and 0.36 to 0.5 from 7,000 on, to 40,000;
 * V8 still optimised 170 functions for the first time in boots 5,000 to 13,000, 12 % of
 * the API's CPU there (perf). So B1 measures from 10,000 on. B1_WARMUP overrides it.
 */
const WARMUP_BOOTS = Number(process.env.B1_WARMUP ?? "") || 10_000;
const DATABASE = "cirrus_bench_b1";

type CpuPerRequest = Record<string, number>;

/** The median over runs of each role's CPU milliseconds per request. */
function medianCpu(runs: CpuPerRequest[]): CpuPerRequest {
  const roles = Object.keys(runs[0] ?? {});
  return Object.fromEntries(roles.map((role) => [role, round(median(runs.map((r) => r[role] ?? 0)), 3)]));
}

export async function run(opts: { quick: boolean; profileDir?: string }): Promise<Record<string, unknown>> {
  const repeats = opts.quick ? 1 : 3;
  const total = opts.quick ? 300 : 1000;
  const warmup = opts.quick ? 100 : WARMUP_BOOTS;
  const sequential: LoadResult[] = [];
  const concurrent: LoadResult[] = [];
  const sequentialCpu: CpuPerRequest[] = [];
  const concurrentCpu: CpuPerRequest[] = [];
  const loadAverages: number[] = [];
  let published = { outboxRows: 0, unpublished: 0 };
  for (let r = 0; r < repeats; r++) {
    const api = await startApiProcess({ database: DATABASE, ...(opts.profileDir ? { cpuProfileDir: opts.profileDir } : {}) });
    try {
      const fixtures = await createBootFixtures(api.apiUrl, api.headers);
      const post = (prefix: string) => (i: number) => ({ method: "POST", path: "/v2.1/servers", body: bootBody(fixtures, `${prefix}-${i}`) });
      const load = { baseUrl: api.apiUrl, headers: api.headers, total, expectStatus: 202 };
      await runLoad({ ...load, total: warmup, clients: 16, next: post("warm") });
      const cpu = new CpuMeter(api.db, DATABASE, { api: api.pid });
      const measured = async (clients: number, prefix: string, results: LoadResult[], cpuRuns: CpuPerRequest[]) => {
        await cpu.start();
        results.push(await runLoad({ ...load, clients, next: post(prefix) }));
        const used = await cpu.stop();
        cpuRuns.push(Object.fromEntries(Object.entries(used).map(([role, ms]) => [role, ms / total])));
      };
      loadAverages.push(round(os.loadavg()[0]!));
      await measured(1, "seq", sequential, sequentialCpu);
      await measured(16, "c16", concurrent, concurrentCpu);
      // The relay publishes within a second; what is still unpublished then is reported.
      await new Promise((res) => setTimeout(res, 1500));
      const [counts] = await api.db("outbox").select(api.db.raw("count(*)::int AS rows"), api.db.raw("count(*) FILTER (WHERE published_at IS NULL)::int AS unpublished"));
      published = { outboxRows: counts.rows, unpublished: counts.unpublished };
    } finally {
      await api.stop();
    }
  }
  return {
    bench: "B1 POST /v2.1/servers acceptance",
    setup:
      "one API process (auth dev, quotas enforced with the admin project's raised to unlimited, rate limiting on with a high limit), fresh database per repeat; " +
      "boot body: flavor, image, one network (port and fixed IP allocated in the boot transaction), 2 metadata items; " +
      "no scheduler running: accepted boots wait in the schedule queue (published by the API's outbox relay)",
    requestsPerRun: total,
    warmupBoots: warmup,
    sequential: { ...medianOfRuns(sequential), cpuMsPerRequest: medianCpu(sequentialCpu) },
    clients16: { ...medianOfRuns(concurrent), cpuMsPerRequest: medianCpu(concurrentCpu) },
    machineLoadAverage1mAtStart: loadAverages,
    outboxAfterLastRun: published,
    target: "p50 <= 5 ms at 16 clients",
  };
}

type Summary = ReturnType<typeof medianOfRuns> & { cpuMsPerRequest: Record<string, number> };

/** The rows of docs/benchmarks.md's table. */
export function figures(result: Record<string, unknown>): FigureRow[] {
  const runs = `${result.requestsPerRun} boots after ${result.warmupBoots} warm-up, median of ${(result.sequential as Summary).repeats}`;
  const row = (label: string, s: Summary, target?: string): FigureRow => ({
    id: "B1",
    figure: `POST /v2.1/servers, ${label} (${runs})`,
    value: `${s.requestsPerSec}/s, p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms; CPU per boot: api ${s.cpuMsPerRequest.api} ms, postgres ${s.cpuMsPerRequest.postgres} ms`,
    ...(target ? { target } : {}),
  });
  return [row("1 client", result.sequential as Summary), row("16 clients", result.clients16 as Summary, TARGETS.B1)];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const profileAt = process.argv.indexOf("--cpu-prof");
  const profileDir = profileAt > 0 ? process.argv[profileAt + 1] : undefined;
  console.log(JSON.stringify(await run({ quick: process.argv.includes("--quick"), ...(profileDir ? { profileDir } : {}) }), null, 2));
}
