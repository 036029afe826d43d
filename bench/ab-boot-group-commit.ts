/**
 * A/B of the boot group commit (api/servers/boot-batch.ts), not part of `npm run bench`:
 * the API process started as B1 starts it (bench/lib/api-process.ts: compiled as `npm start`
 * runs it, quotas enforced, the admin project unlimited), 1,000 boots from 16 clients (and 200 from one), with
 * CIRRUS_BOOT_GROUP_COMMIT=0 (every boot its own write) and with grouping (1 and 2 batches
 * in flight). The modes alternate, ROUNDS rounds, so the machine's noise hits each alike;
 * medians are reported, with the write statements and commits per boot and CPU per boot.
 *
 *   npx tsx bench/ab-boot-group-commit.ts [rounds=3] [modes=off,on1,on2]
 */
import os from "node:os";
import { startApiProcess } from "./lib/api-process.js";
import { bootBody, createBootFixtures } from "./lib/boot-fixtures.js";
import { median, round, runLoad } from "./lib/http-load.js";
import { CpuMeter } from "./lib/proc-cpu.js";

const DATABASE = "cirrus_ab_boot_group_commit";
const ROUNDS = Number(process.argv[2] ?? 3);
const MODES: Record<string, Record<string, string>> = {
  off: { CIRRUS_BOOT_GROUP_COMMIT: "0" },
  on1: { CIRRUS_BOOT_GROUP_COMMIT: "1", CIRRUS_BOOT_GROUP_COMMIT_IN_FLIGHT: "1" },
  on2: { CIRRUS_BOOT_GROUP_COMMIT: "1", CIRRUS_BOOT_GROUP_COMMIT_IN_FLIGHT: "2" },
};
const modes = (process.argv[3] ?? "off,on1,on2").split(",");

interface Run {
  rps16: number; p50_16: number; p99_16: number;
  commitsPerBoot16: number; apiCpuMs16: number; pgCpuMs16: number;
  rps1: number; p50_1: number; p99_1: number;
  load: number;
}

async function commits(db: import("knex").Knex): Promise<number> {
  // pg_stat_database is flushed by backends at most once a second (Postgres 15).
  await new Promise((r) => setTimeout(r, 1200));
  const { rows } = await db.raw("SELECT xact_commit FROM pg_stat_database WHERE datname = ?", [DATABASE]);
  return Number(rows[0].xact_commit);
}

async function once(mode: string): Promise<Run> {
  const api = await startApiProcess({ database: DATABASE, env: MODES[mode]! });
  try {
    const fixtures = await createBootFixtures(api.apiUrl, api.headers);
    const post = (prefix: string) => (i: number) => ({ method: "POST", path: "/v2.1/servers", body: bootBody(fixtures, `${prefix}-${i}`) });
    const load = { baseUrl: api.apiUrl, headers: api.headers, expectStatus: 202 };
    await runLoad({ ...load, total: 100, clients: 4, next: post("warm") });
    const load1m = round(os.loadavg()[0]!);
    const one = await runLoad({ ...load, total: 200, clients: 1, next: post("seq") });
    const cpu = new CpuMeter(api.db, DATABASE, { api: api.pid });
    const c0 = await commits(api.db);
    await cpu.start();
    const r16 = await runLoad({ ...load, total: 1000, clients: 16, next: post("c16") });
    const used = await cpu.stop();
    const c1 = await commits(api.db);
    for (const r of [one, r16]) if (Object.keys(r.unexpected).length) throw new Error(`unexpected statuses ${JSON.stringify(r.unexpected)}`);
    return {
      rps16: r16.requestsPerSec, p50_16: r16.p50Ms, p99_16: r16.p99Ms,
      // Commits include the API's outbox relay and the meter's own reads, as they would in B1.
      commitsPerBoot16: round((c1 - c0) / 1000, 2),
      apiCpuMs16: round(used.api! / 1000, 2), pgCpuMs16: round(used.postgres! / 1000, 2),
      rps1: one.requestsPerSec, p50_1: one.p50Ms, p99_1: one.p99Ms,
      load: load1m,
    };
  } finally {
    await api.stop();
  }
}

const runs: Record<string, Run[]> = Object.fromEntries(modes.map((m) => [m, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
    const run = await once(mode);
    runs[mode]!.push(run);
    console.error(`round ${r + 1} ${mode}: ${JSON.stringify(run)}`);
  }
}
const summary = Object.fromEntries(
  modes.map((m) => {
    const keys = Object.keys(runs[m]![0]!) as (keyof Run)[];
    return [m, Object.fromEntries(keys.map((k) => [k, round(median(runs[m]!.map((x) => x[k])), 2)]))];
  }),
);
console.log(JSON.stringify({ rounds: ROUNDS, medians: summary }, null, 2));
