/**
 * Prometheus metrics (prom-client) for every Cirrus process.
 *
 * Where a number is measured:
 * - api, per replica: HTTP latency by route and status (an onResponse hook).
 * - api, cluster-wide, collected on scrape from what the conductor already records in
 *   Postgres: boots by outcome, time from accept to ACTIVE, scheduling latency, servers
 *   by status; from Redis: queue depths (BullMQ getJobCounts) and heartbeat age per host.
 *   Every api replica answers the same values for these (aggregate them with max, not sum).
 * - compute agent: spawn duration by driver, measured around the driver's spawn and
 *   pushed to Redis (hash `<prefix>:metrics`, one field per host) every few seconds, so
 *   the api can expose it; the agent's own optional listener (CIRRUS_METRICS_PORT) also
 *   serves it with the process metrics.
 * - scheduler: jobs handled per queue and result, on its optional listener.
 */
import {
  AggregatorRegistry,
  Counter,
  collectDefaultMetrics,
  Histogram,
  Registry,
} from "prom-client";
import type { Redis } from "ioredis";
import type { Worker } from "bullmq";
import type { Db } from "./db/knex.js";
import { RequestHistogram } from "./request-histogram.js";
import { heartbeatKey } from "./heartbeat.js";
import { computeQueueName, REPORTS_QUEUE, SCHEDULE_QUEUE } from "./queues.js";
import { serverStatus } from "./status.js";

export const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Boot-scale durations: from under a second (test:///default) to minutes (a cold image cache). */
export const BOOT_BUCKETS = [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];

/** A registry with the process metrics (CPU, memory, event loop) and a `service` label. */
export function processRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

type MetricJson = object;

export const pushedMetricsKey = (prefix: string) => `${prefix}:metrics`;

/** Pushed entries older than this are ignored (the process is gone). */
const PUSH_MAX_AGE_MS = 5 * 60_000;

/**
 * Copies a registry's metrics (as prom-client JSON) into Redis every `intervalMs`, under
 * `field`, so the api can expose what a process without a database measured.
 */
export function startMetricsPush(redis: Redis, prefix: string, field: string, registry: Registry, intervalMs = 5000): () => Promise<void> {
  const push = async () => {
    const metrics = await registry.getMetricsAsJSON();
    await redis.hset(pushedMetricsKey(prefix), field, JSON.stringify({ at: Date.now(), metrics }));
  };
  const timer = setInterval(() => void push().catch(() => {}), intervalMs);
  timer.unref();
  void push().catch(() => {});
  return async () => {
    clearInterval(timer);
    await push().catch(() => {});
  };
}

/** The pushed metrics of live processes, merged into one prometheus text. */
export async function pushedMetricsText(redis: Redis, prefix: string, now = Date.now()): Promise<string> {
  const entries = await redis.hgetall(pushedMetricsKey(prefix));
  const fresh: MetricJson[][] = [];
  for (const raw of Object.values(entries)) {
    try {
      const e = JSON.parse(raw) as { at: number; metrics: MetricJson[] };
      if (now - e.at <= PUSH_MAX_AGE_MS) fresh.push(e.metrics);
    } catch {
      // a malformed entry is skipped
    }
  }
  if (fresh.length === 0) return "";
  return AggregatorRegistry.aggregate(fresh).metrics();
}

// ---------- compute agent ----------

export interface AgentMetrics {
  /** Pushed to Redis and served by the agent's own listener. */
  registry: Registry;
  spawnDuration: Histogram<"driver" | "host" | "outcome">;
  /** What the agent's own listener serves: the above plus the process metrics. */
  served: Registry;
}

export function agentMetrics(): AgentMetrics {
  const registry = new Registry();
  const spawnDuration = new Histogram({
    name: "cirrus_agent_spawn_duration_seconds",
    help: "Time the virt driver took to spawn a guest (image cache, disks, config drive, define and start), by driver",
    labelNames: ["driver", "host", "outcome"] as const,
    buckets: BOOT_BUCKETS,
    registers: [registry],
  });
  return { registry, spawnDuration, served: Registry.merge([processRegistry("compute-agent"), registry]) };
}

/** `libvirt+qemu`, `libvirt+test`, `fake`: the driver and, for libvirt, the URI's scheme. */
export function driverLabel(uri: string): string {
  if (uri.startsWith("fake:")) return "fake";
  return `libvirt+${uri.split(":")[0]!.split("+")[0]}`;
}

/** Wraps a driver so that every spawn is timed; every other method passes through. */
export function instrumentSpawn<D extends { spawn(...args: any[]): Promise<unknown> }>(
  driver: D,
  metrics: AgentMetrics,
  labels: { driver: string; host: string },
): D {
  return new Proxy(driver, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== "spawn" || typeof value !== "function") return typeof value === "function" ? value.bind(target) : value;
      return async (...args: unknown[]) => {
        const end = metrics.spawnDuration.startTimer(labels);
        try {
          const result = await value.apply(target, args);
          end({ outcome: "success" });
          return result;
        } catch (err) {
          end({ outcome: "error" });
          throw err;
        }
      };
    },
  });
}

// ---------- scheduler ----------

/** Counts the jobs a BullMQ worker handled, by queue and result. */
export function instrumentWorkers(registry: Registry, workers: Worker[]): void {
  const handled = new Counter({
    name: "cirrus_jobs_handled_total",
    help: "Jobs a worker of this process handled, by queue and result",
    labelNames: ["queue", "result"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "cirrus_job_duration_seconds",
    help: "Time from a job's creation to its completion, by queue",
    labelNames: ["queue"] as const,
    buckets: BOOT_BUCKETS,
    registers: [registry],
  });
  for (const w of workers) {
    w.on("completed", (job) => {
      handled.inc({ queue: w.name, result: "completed" });
      if (job.finishedOn) duration.observe({ queue: w.name }, Math.max(0, (job.finishedOn - job.timestamp) / 1000));
    });
    w.on("failed", () => handled.inc({ queue: w.name, result: "failed" }));
  }
}

/** The scheduler's decisions in memory (filters and weighers), per round of a batch. */
export function decisionMetrics(registry: Registry): (ms: number, boots: number) => void {
  const seconds = new Histogram({
    name: "cirrus_scheduler_decision_seconds",
    help: "Time a placement round spent filtering and weighing hosts in memory, per boot decided",
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [registry],
  });
  return (ms, boots) => {
    if (boots > 0) seconds.observe(ms / 1000 / boots);
  };
}

// ---------- api ----------

interface ValueOut {
  value: number;
  labels?: Record<string, string | number>;
  metricName?: string;
}

/** A metric whose values are computed at scrape time (prom-client's registerMetric contract). */
function scraped(registry: Registry, name: string, help: string, type: "gauge" | "counter" | "histogram", values: () => Promise<ValueOut[]>): void {
  registry.registerMetric({
    name,
    help,
    type,
    aggregator: "max",
    get: async () => ({ name, help, type, aggregator: "max", values: await values().catch(() => []) }),
  } as never);
}

/** Histogram values from SQL: one scan, a `count(*) filter` per bucket. */
async function sqlHistogram(db: Db, name: string, buckets: number[], fromSql: string, durationSql: string): Promise<ValueOut[]> {
  const cols = buckets.map((b, i) => `count(*) filter (where d <= ${Number(b)})::float8 as b${i}`).join(", ");
  const result = await db.raw(`select ${cols}, count(*)::float8 as n, coalesce(sum(d), 0)::float8 as s from (select ${durationSql} as d ${fromSql}) x where d is not null`);
  const row = result.rows[0] as Record<string, number>;
  return [
    ...buckets.map((b, i) => ({ metricName: `${name}_bucket`, labels: { le: b }, value: Number(row[`b${i}`]) })),
    { metricName: `${name}_bucket`, labels: { le: "+Inf" }, value: Number(row.n) },
    { metricName: `${name}_sum`, value: Number(row.s) },
    { metricName: `${name}_count`, value: Number(row.n) },
  ];
}

export interface ApiMetricsDeps {
  db: Db;
  /** Without Redis (tests, the OpenAPI build) queue depths and pushed metrics are left out. */
  redis?: Redis;
  queuePrefix?: string;
  /** Opens (and caches) a BullMQ queue by name for getJobCounts. */
  queue?: (name: string) => { getJobCounts(...types: string[]): Promise<Record<string, number>> };
}

export interface ApiMetrics {
  registry: Registry;
  httpDuration: RequestHistogram;
  /** The whole exposition: this process, the cluster (SQL, Redis) and what agents pushed. */
  text(): Promise<string>;
}

export function apiMetrics(deps: ApiMetricsDeps): ApiMetrics {
  const registry = processRegistry("api");
  const httpDuration = new RequestHistogram(
    "cirrus_http_request_duration_seconds",
    "API request latency by method, route (the route pattern) and status code",
    HTTP_BUCKETS,
    registry,
  );

  // Cluster-wide numbers, from the database and Redis at scrape time. They carry no
  // `service` label of their own use; every replica reports the same values.
  const cluster = new Registry();

  scraped(cluster, "cirrus_servers", "Servers (not deleted) by API status", "gauge", async () => {
    const rows: { vm_state: string; task_state: string | null; n: number }[] = (
      await deps.db.raw("select vm_state, task_state, count(*)::int as n from instances where deleted_at is null group by vm_state, task_state")
    ).rows;
    const by = new Map<string, number>();
    for (const r of rows) {
      const status = serverStatus(r.vm_state, r.task_state);
      by.set(status, (by.get(status) ?? 0) + Number(r.n));
    }
    return [...by].map(([status, value]) => ({ labels: { status }, value }));
  });

  scraped(cluster, "cirrus_boots_total", "Boot requests that ended, by outcome: active (the guest was launched) or error (the build failed)", "counter", async () => {
    const row = (
      await deps.db.raw(
        "select count(*) filter (where launched_at is not null)::int as active, count(*) filter (where launched_at is null and vm_state = 'error')::int as error from instances",
      )
    ).rows[0];
    return [
      { labels: { outcome: "active" }, value: Number(row.active) },
      { labels: { outcome: "error" }, value: Number(row.error) },
    ];
  });

  scraped(cluster, "cirrus_boot_time_to_active_seconds", "Time from accepting POST /servers to ACTIVE (instances.created_at to launched_at)", "histogram", () =>
    sqlHistogram(deps.db, "cirrus_boot_time_to_active_seconds", BOOT_BUCKETS, "from instances where launched_at is not null", "extract(epoch from launched_at - created_at)::float8"),
  );

  scraped(
    cluster,
    "cirrus_scheduling_latency_seconds",
    "Time from accepting a boot to the scheduler's claim on a host (the create action's start to its schedule_instances event)",
    "histogram",
    () =>
      sqlHistogram(
        deps.db,
        "cirrus_scheduling_latency_seconds",
        BOOT_BUCKETS,
        "from instance_action_events e join instance_actions a on a.id = e.action_id where a.action = 'create' and e.event = 'schedule_instances' and e.result = 'Success'",
        "extract(epoch from e.finish_time - a.start_time)::float8",
      ),
  );

  scraped(cluster, "cirrus_compute_heartbeat_age_seconds", "Seconds since each compute host's last heartbeat", "gauge", async () => {
    const now = Date.now();
    if (deps.redis && deps.queuePrefix) {
      const beats = await deps.redis.hgetall(heartbeatKey(deps.queuePrefix));
      return Object.entries(beats).map(([host, at]) => ({ labels: { host }, value: Math.max(0, (now - Number(at)) / 1000) }));
    }
    const rows: { host: string; age: number }[] = (
      await deps.db.raw("select host, extract(epoch from now() - last_seen_at)::float8 as age from compute_services")
    ).rows;
    return rows.map((r) => ({ labels: { host: r.host }, value: Number(r.age) }));
  });

  if (deps.queue) {
    const queue = deps.queue;
    scraped(cluster, "cirrus_queue_jobs", "BullMQ jobs per queue and state (waiting, active, delayed, failed, ...)", "gauge", async () => {
      const hosts: { host: string }[] = await deps.db("compute_services").select("host");
      const names = [SCHEDULE_QUEUE, REPORTS_QUEUE, ...hosts.map((h) => computeQueueName(h.host))];
      const out: ValueOut[] = [];
      await Promise.all(
        names.map(async (name) => {
          const counts = await queue(name).getJobCounts("waiting", "active", "delayed", "failed", "prioritized", "waiting-children");
          for (const [state, value] of Object.entries(counts)) out.push({ labels: { queue: name, state }, value });
        }),
      );
      return out;
    });
  }

  return {
    registry,
    httpDuration,
    text: async () => {
      const parts = [await registry.metrics(), await cluster.metrics()];
      if (deps.redis && deps.queuePrefix) parts.push(await pushedMetricsText(deps.redis, deps.queuePrefix).catch(() => ""));
      return parts.filter((p) => p.trim()).join("\n");
    },
  };
}

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
