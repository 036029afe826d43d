/**
 * B4: one scheduling decision at 1,000 and 10,000 hosts, and decisions per second with
 * 1 and 3 scheduler processes.
 *
 * Hosts are written straight into Postgres (service, provider, inventory, with some
 * usage and a few aggregates) so that the scheduler is measured alone: no agent takes
 * the spawn jobs, no conductor work competes. Waiting boots are copies, in SQL, of one
 * boot the API accepted (instance row and its create action), as B3 seeds servers.
 *
 * - decision latency: placeBatch() for one boot at a time in this process, against a
 *   warm HostStateView: refresh of what changed, lock, filter, weigh, claim (the
 *   compare-and-set), the instance update, the spawn job in the outbox, the action event,
 *   commit. The in-memory part (filters and ranking) is what placeBatch reports of it
 *   (PlacementDeps.onDecided, the scheduler's cirrus_scheduler_decision_seconds): timed
 *   inside the decision, not by a second pass of the bench's own, which cost 1.1 to 1.5 ms
 *   of CPU per decision on the cores the decisions run on.
 * - decisions/s: K waiting boots and their schedule jobs are committed at once while S
 *   scheduler processes run; the time until none is waiting.
 */
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import type { Knex } from "knex";
import { createLogger } from "../common/logger.js";
import { DEFAULT_VIEW_OPTIONS, HostStateView } from "../scheduler/host-state-view.js";
import { placeBatch, type PlacementDeps } from "../scheduler/place.js";
import { TARGETS, type FigureRow } from "./lib/figures.js";
import { CpuMeter } from "./lib/proc-cpu.js";
import { median, percentile, round } from "./lib/http-load.js";
import { startStack, waitUntil, type Stack } from "./stack.js";

export const covers = ["B4"];

const DOWN_TIME_SEC = 86_400;

export async function seedHosts(db: Knex, n: number): Promise<void> {
  await db.raw(
    `WITH s AS (
       INSERT INTO compute_services (id, host, hypervisor_type, hypervisor_version, hypervisor_hostname, host_ip, libvirt_uri, cpu_arch, availability_zone)
       SELECT gen_random_uuid(), 'b4-host-' || g, 'QEMU', 8002000, 'b4-host-' || g, '10.0.' || (g / 250) || '.' || (g % 250), 'fake://', 'x86_64',
              CASE WHEN g % 10 = 0 THEN 'az-b' ELSE NULL END
         FROM generate_series(0, ? - 1) g
       RETURNING id, host),
     p AS (
       INSERT INTO resource_providers (id, name, compute_service_id)
       SELECT gen_random_uuid(), s.host, s.id FROM s RETURNING id)
     INSERT INTO inventories (provider_id, resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio)
     SELECT p.id, rc.name, rc.total, rc.reserved, 1, rc.total, 1, rc.ratio
       FROM p, (VALUES ('VCPU', 64, 0, 4.0), ('MEMORY_MB', 262144, 512, 1.0), ('DISK_GB', 4000, 0, 1.0)) AS rc(name, total, reserved, ratio)`,
    [n],
  );
  // Some usage, so hosts differ and the weighers have something to weigh.
  await db.raw(
    `INSERT INTO allocations (provider_id, consumer_id, resource_class, used)
     SELECT p.id, c.consumer, rc.name, rc.amount
       FROM resource_providers p
       CROSS JOIN LATERAL (SELECT gen_random_uuid() AS consumer FROM generate_series(1, (abs(hashtext(p.name)) % 8))) c
       CROSS JOIN (VALUES ('VCPU', 2), ('MEMORY_MB', 4096), ('DISK_GB', 40)) AS rc(name, amount)`,
  );
  const [agg] = await db("aggregates").insert({ uuid: randomUUID(), name: "b4-ssd", metadata: { ssd: "true" } }).returning("id");
  await db.raw(`INSERT INTO aggregate_hosts (aggregate_id, host) SELECT ?, host FROM compute_services WHERE host LIKE 'b4-host-%' AND right(host, 1) = '7'`, [
    (agg as { id: number }).id,
  ]);
  // What autovacuum would do a few seconds after such a burst of inserts, done now so the
  // measurement does not depend on when it gets round to it.
  await db.raw("ANALYZE compute_services, resource_providers, inventories, allocations, aggregate_hosts");
}

/** Copies the template boot `count` times as boots waiting to be scheduled; returns their ids. */
export async function cloneWaiting(db: Knex, templateId: string, count: number, withJobs: boolean): Promise<string[]> {
  return db.transaction(async (trx) => {
    const { rows } = (await trx.raw(
      `WITH tpl AS (SELECT * FROM instances WHERE id = ?),
       inst AS (
         INSERT INTO instances (id, name, description, project_id, user_id, vm_state, task_state, power_state,
                                availability_zone, flavor, image_id, image, requested_networks, metadata, config_drive, user_data,
                                key_name, reservation_id, launch_index, progress, attempts, alternates, tried_hosts, scheduler_hints)
         SELECT gen_random_uuid(), tpl.name || '-' || g, tpl.description, tpl.project_id, tpl.user_id, 'building', 'scheduling', 0,
                tpl.availability_zone, tpl.flavor, tpl.image_id, tpl.image, tpl.requested_networks, tpl.metadata, tpl.config_drive, tpl.user_data,
                tpl.key_name, 'r-' || substr(md5(random()::text), 1, 8), 0, 0, 0, '[]', '[]', '{}'
           FROM tpl, generate_series(1, ?) g
         RETURNING id, project_id, user_id),
       act AS (
         INSERT INTO instance_actions (instance_id, action, request_id, project_id, user_id)
         SELECT inst.id, 'create', 'req-' || inst.id, inst.project_id, inst.user_id FROM inst RETURNING instance_id, request_id)
       SELECT instance_id AS id, request_id FROM act`,
      [templateId, count],
    )) as { rows: { id: string; request_id: string }[] };
    if (withJobs) {
      await trx.batchInsert(
        "outbox",
        rows.map((r) => ({
          queue: "schedule",
          job_name: "schedule",
          job_id: `schedule-${r.id}`,
          payload: JSON.stringify({ instance_id: r.id, request_id: r.request_id }),
        })),
        1000,
      );
      await trx.raw("SELECT pg_notify('cirrus_outbox', '')");
    }
    return rows.map((r) => r.id);
  });
}

export async function templateBoot(stack: Stack): Promise<string> {
  const f = stack.fixtures!;
  const res = await fetch(`${stack.apiUrl}/v2.1/servers`, {
    method: "POST",
    headers: { ...stack.headers, "content-type": "application/json" },
    body: JSON.stringify({ server: { name: "b4", flavorRef: f.flavorRef, imageRef: f.imageRef, networks: "none" } }),
  });
  if (res.status !== 202) throw new Error(`template boot: ${res.status} ${await res.text()}`);
  const id = ((await res.json()) as { server: { id: string } }).server.id;
  // Keep the template out of the way of the schedulers.
  await stack.db("instances").where({ id }).update({ vm_state: "error", task_state: null });
  return id;
}

/** The local redis-server's pid, 0 when none is found (its CPU then reads as 0). */
function redisPid(): number {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, "utf8").trim() === "redis-server") return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return 0;
}

const stats = (ms: number[]) => {
  const sorted = [...ms].sort((a, b) => a - b);
  return { p50_ms: round(percentile(sorted, 50), 3), p99_ms: round(percentile(sorted, 99), 3), n: ms.length };
};

export async function latency(hosts: number, decisions: number) {
  const stack = await startStack({ hosts: 0, schedulers: 0, env: { CIRRUS_SERVICE_DOWN_TIME: String(DOWN_TIME_SEC) } });
  try {
    await seedHosts(stack.db, hosts);
    const template = await templateBoot(stack);
    const ids = await cloneWaiting(stack.db, template, decisions + 20, false);
    // As the scheduler runs it (scheduler/main.ts): liveness re-read by a timer, not by decisions.
    const view = new HostStateView(stack.db, { ...DEFAULT_VIEW_OPTIONS, livenessMaxAgeMs: 10_000, freshWithinMs: (DOWN_TIME_SEC * 1000) / 2 });
    const liveness = setInterval(() => void view.refreshLiveness().catch(() => {}), 2000);
    let decidedMs = 0;
    const deps: PlacementDeps = {
      db: stack.db,
      log: createLogger("b4", "silent"),
      serviceDownTimeSec: DOWN_TIME_SEC,
      maxAttempts: 3,
      view,
      onDecided: (ms) => (decidedMs += ms),
    };
    const t0 = performance.now();
    await view.refresh();
    const fullLoadMs = performance.now() - t0;
    const whole: number[] = [];
    const inMemory: number[] = [];
    const database = new URL(stack.databaseUrl).pathname.slice(1);
    // The decisions run in this process; the API relays each spawn job from the outbox to Redis.
    const cpu = new CpuMeter(stack.db, database, { api: stack.pids().api![0]!, redis: redisPid() });
    for (const [i, id] of ids.entries()) {
      if (i === 20) await cpu.start();
      decidedMs = 0;
      const a = performance.now();
      const out = await placeBatch(deps, { ids: [id] });
      const b = performance.now();
      if (out.get(id) !== "placed") throw new Error(`boot ${id}: ${out.get(id)}`);
      if (i >= 20) {
        whole.push(b - a);
        inMemory.push(decidedMs);
      }
    }
    const used = await cpu.stop();
    clearInterval(liveness);
    const { loadClient, ...others } = used;
    const perDecision = Object.fromEntries(Object.entries({ scheduler: loadClient ?? 0, ...others }).map(([k, ms]) => [k, round(ms / whole.length, 3)]));
    return { hosts, full_view_load_ms: round(fullLoadMs, 1), decision: stats(whole), filter_and_weigh: stats(inMemory), cpu_ms_per_decision: perDecision };
  } finally {
    await stack.stop();
  }
}

export async function throughput(hosts: number, schedulers: number, boots: number) {
  const stack = await startStack({ hosts: 0, schedulers, logLevel: process.env.B4_LOG_LEVEL, env: { CIRRUS_SERVICE_DOWN_TIME: String(DOWN_TIME_SEC) } });
  try {
    await seedHosts(stack.db, hosts);
    const template = await templateBoot(stack);
    await new Promise((r) => setTimeout(r, 1000)); // the schedulers' first view load is not a decision
    const t0 = performance.now();
    await cloneWaiting(stack.db, template, boots, true);
    await waitUntil(
      `${boots} boots placed`,
      async () => {
        const [row] = await stack.db("instances").where({ task_state: "scheduling" }).count<{ n: string }[]>("* as n");
        return Number(row!.n) === 0;
      },
      600_000,
      50,
    );
    const seconds = (performance.now() - t0) / 1000;
    const [placed] = await stack.db("instances").whereNotNull("host").where({ task_state: "spawning" }).count<{ n: string }[]>("* as n");
    return { hosts, schedulers, boots, placed: Number(placed!.n), seconds: round(seconds, 2), decisions_per_s: round(boots / seconds, 1) };
  } finally {
    await stack.stop();
  }
}

export async function run(opts: { quick: boolean }): Promise<Record<string, unknown>> {
  const sizes = opts.quick ? [1000] : [1000, 10_000];
  const repeats = opts.quick ? 1 : 3;
  const out: Record<string, unknown> = {};
  for (const hosts of sizes) {
    const runs: Awaited<ReturnType<typeof latency>>[] = [];
    for (let r = 0; r < repeats; r++) runs.push(await latency(hosts, opts.quick ? 200 : 500));
    out[`latency_${hosts}_hosts`] = {
      hosts,
      decision_p50_ms: median(runs.map((x) => x.decision.p50_ms)),
      decision_p99_ms: median(runs.map((x) => x.decision.p99_ms)),
      filter_and_weigh_p50_ms: median(runs.map((x) => x.filter_and_weigh.p50_ms)),
      filter_and_weigh_p99_ms: median(runs.map((x) => x.filter_and_weigh.p99_ms)),
      full_view_load_ms: median(runs.map((x) => x.full_view_load_ms)),
      cpu_ms_per_decision: Object.fromEntries(Object.keys(runs[0]!.cpu_ms_per_decision).map((k) => [k, median(runs.map((x) => x.cpu_ms_per_decision[k] ?? 0))])),
      runs,
    };
    for (const schedulers of [1, 3]) {
      const truns = [];
      // At 10,000 hosts one run each: seeding and starting the stack dominate the bench's time.
      const times = hosts >= 10_000 ? 1 : repeats;
      for (let r = 0; r < times; r++) truns.push(await throughput(hosts, schedulers, opts.quick ? 1000 : 2000));
      out[`throughput_${hosts}_hosts_${schedulers}_schedulers`] = {
        hosts,
        schedulers,
        decisions_per_s: median(truns.map((x) => x.decisions_per_s)),
        runs: truns,
      };
    }
  }
  return out;
}

export function figures(result: Record<string, unknown>): FigureRow[] {
  const rows: FigureRow[] = [];
  for (const [key, v] of Object.entries(result)) {
    const r = v as Record<string, number>;
    if (key.startsWith("latency_")) {
      rows.push({ id: "B4", figure: `one decision at ${r.hosts} hosts, p50 / p99 (ms)`, value: `${r.decision_p50_ms} / ${r.decision_p99_ms}`, target: r.hosts === 10_000 ? TARGETS.B4 : undefined });
      rows.push({ id: "B4", figure: `of which filters + weighers in memory at ${r.hosts} hosts (timed inside the decision), p50 / p99 (ms)`, value: `${r.filter_and_weigh_p50_ms} / ${r.filter_and_weigh_p99_ms}` });
      const cpu = (v as { cpu_ms_per_decision?: Record<string, number> }).cpu_ms_per_decision;
      if (cpu) rows.push({ id: "B4", figure: `CPU per decision at ${r.hosts} hosts (ms)`, value: Object.entries(cpu).map(([k, ms]) => `${k} ${ms}`).join(", ") });
    } else {
      rows.push({ id: "B4", figure: `decisions/s at ${r.hosts} hosts, ${r.schedulers} scheduler process(es)`, value: String(r.decisions_per_s) });
    }
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes("--quick") }), null, 2));
}
