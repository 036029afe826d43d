/**
 * `npx tsx bench/api-warmup-curve.ts [windows] [clients]`: how B1's acceptance changes as one
 * API process warms up. Starts the API on a fresh database as B1 does (no warm-up), then
 * sends windows of 1,000 boots from 16 clients (by default 20 windows) and prints, per
 * window, requests/s, p50, p99 and the CPU milliseconds per boot of the API and of its
 * Postgres backends. It shows how many boots V8 needs before the API's code stops being
 * compiled, which is what B1's WARMUP_BOOTS must cover (docs/benchmarks.md).
 */
import { readFileSync } from "node:fs";
import { startApiProcess } from "./lib/api-process.js";
import { bootBody, createBootFixtures } from "./lib/boot-fixtures.js";
import { round, runLoad } from "./lib/http-load.js";
import { CpuMeter } from "./lib/proc-cpu.js";

const WINDOW = 1000;

/** The machine's busy and total jiffies from /proc/stat. */
function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

const windows = Number(process.argv[2] ?? "") || 20;
const clients = Number(process.argv[3] ?? "") || 16;
const DATABASE = "cirrus_bench_b1_curve";

const api = await startApiProcess({ database: DATABASE });
try {
  const fixtures = await createBootFixtures(api.apiUrl, api.headers);
  const cpu = new CpuMeter(api.db, DATABASE, { api: api.pid });
  console.log("boots_before\trequests_per_s\tp50_ms\tp99_ms\tapi_cpu_ms_per_boot\tpostgres_cpu_ms_per_boot\tmachine_busy_cores");
  for (let w = 0; w < windows; w++) {
    await cpu.start();
    const m0 = machineJiffies();
    const r = await runLoad({
      baseUrl: api.apiUrl,
      headers: api.headers,
      total: WINDOW,
      clients,
      expectStatus: 202,
      next: (i) => ({ method: "POST", path: "/v2.1/servers", body: bootBody(fixtures, `w${w}-${i}`) }),
    });
    const used = await cpu.stop();
    const m1 = machineJiffies();
    const busyCores = round(((m1.busy - m0.busy) / (m1.total - m0.total)) * 2, 2);
    console.log([w * WINDOW, r.requestsPerSec, r.p50Ms, r.p99Ms, round(used.api! / WINDOW, 3), round(used.postgres! / WINDOW, 3), busyCores].join("\t"));
  }
} finally {
  await api.stop();
}
