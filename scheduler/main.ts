/**
 * The scheduler process: places boot requests from the schedule queue, applies agent
 * reports as the conductor, copies heartbeats into Postgres, and relays its own outbox
 * rows (spawn jobs). Run as many as load needs: claims stay correct across replicas.
 */
import { Worker } from "bullmq";
import { Redis } from "ioredis";
import { loadConfig } from "../common/config.js";
import { createDb, ensureDatabase } from "../common/db/knex.js";
import { migrateLatest } from "../common/db/migrations.js";
import { createLogger } from "../common/logger.js";
import type { Report, ScheduleJob } from "../common/messages.js";
import { OutboxRelay } from "../common/outbox.js";
import { QueueSet, REPORTS_QUEUE, SCHEDULE_QUEUE, WORKER_RECOVERY, producerConnection, redisOptions, workerConnection } from "../common/queues.js";
import { onShutdown } from "../common/shutdown.js";
import { decisionMetrics, instrumentWorkers, processRegistry } from "../common/metrics.js";
import { startOpsServer } from "../common/ops-server.js";
import { GroupCommit } from "../common/group-commit.js";
import { applyReport, applyReportBatch, isBatchable, type BatchableReport, type ConductorDeps } from "./conductor.js";
import { startRecovery } from "./recovery.js";
import { flushHeartbeats } from "./heartbeats.js";
import { DEFAULT_VIEW_OPTIONS, HostStateView } from "./host-state-view.js";
import { placeBatch, placeUntilSettled } from "./place.js";
import { RecentSet } from "../common/recent-set.js";

/** Boots placed per transaction: a multi-create, or whatever is waiting, up to this many. */
const PLACEMENT_BATCH = 32;

const config = loadConfig();
const log = createLogger("cirrus-scheduler", config.logLevel);
await ensureDatabase(config.databaseUrl);
const db = createDb(config.databaseUrl, { min: 0, max: config.dbPoolMax ?? 12 });
await migrateLatest(db);
const queues = new QueueSet(config.redisUrl, config.queuePrefix);
const relay = new OutboxRelay({ db, databaseUrl: config.databaseUrl, queues, log });
await relay.start();

// The heartbeat timer below re-reads liveness every 2 s; a decision re-reads it itself only
// if that timer has stalled. Heartbeats within half the down time count as fresh (the read
// returns only the services older than that).
const view = new HostStateView(db, { ...DEFAULT_VIEW_OPTIONS, livenessMaxAgeMs: 10_000, freshWithinMs: (config.serviceDownTimeSec * 1000) / 2 });
const deps: ConductorDeps = {
  db,
  log,
  view,
  weigherMultipliers: config.weigherMultipliers,
  serviceDownTimeSec: config.serviceDownTimeSec,
  maxAttempts: config.schedulerMaxAttempts,
  orphanGraceSec: config.recovery.orphanGraceSec,
};
const connection = workerConnection(config.redisUrl);

// Liveness is copied from Redis: copy it once before placing anything, so a scheduler that
// was down for longer than the service down time does not find every host down.
const redis = new Redis(redisOptions(config.redisUrl));
redis.on("error", () => {});
await flushHeartbeats(redis, db, config.queuePrefix).catch((err) => log.warn({ err: String(err) }, "first heartbeat flush failed"));

// Boots this process placed or failed lately, whose own schedule jobs are still to come.
const decidedHere = new RecentSet<string>(50_000);

const scheduler = new Worker<ScheduleJob>(
  SCHEDULE_QUEUE,
  async (job) => {
    // The job is a wake-up: the batch takes this boot first and whatever else is waiting.
    const id = job.data.instance_id;
    // Most jobs of a burst find their boot placed already by an earlier batch of this
    // process (nothing to send) or of another one (the batch's lock takes nothing).
    if (decidedHere.has(id)) return "skipped";
    const outcomes = await placeBatch(deps, { pending: PLACEMENT_BATCH, first: id });
    // One job wakes the scheduler for every boot its statement wrote (api/servers/boot-write.ts):
    // while batches come back full, more may be waiting; take them too.
    for (let more = outcomes.size >= PLACEMENT_BATCH; more; ) {
      const next = await placeBatch(deps, { pending: PLACEMENT_BATCH });
      for (const [instance_id, outcome] of next) outcomes.set(instance_id, outcome);
      more = next.size >= PLACEMENT_BATCH;
    }
    // Not in the batch: another scheduler's batch holds it and places it (the stranded-boot
    // sweep below catches it if that batch rolls back). Raced: every host it tried was being
    // claimed; those go again until they land, here and now, not after the sweep's 5 to 10 s
    // (placeUntilSettled throws after 50 passes; the job is retried).
    const raced = [...outcomes].filter(([, outcome]) => outcome === "raced").map(([instance_id]) => instance_id);
    if (raced.length > 0) for (const [instance_id, outcome] of await placeUntilSettled(deps, raced)) outcomes.set(instance_id, outcome);
    const own = outcomes.get(id) ?? "skipped";
    for (const [instance_id, outcome] of outcomes) {
      if (outcome === "placed" || outcome === "no_valid_host") decidedHere.add(instance_id);
      if (outcome === "placed") log.debug({ instance_id, outcome, batch: outcomes.size }, "placement decided");
      else if (outcome !== "skipped") log.info({ instance_id, outcome, batch: outcomes.size }, "placement decided");
    }
    return own;
  },
  // Two batches at a time: one computes while the other waits on Postgres. They leave each
  // other's claims alone (HostStateView.claiming); more would mostly wait for the CPU.
  { connection, prefix: config.queuePrefix, concurrency: 2, ...WORKER_RECOVERY },
);

// Spawned and deleted reports arrive by the thousand in a burst: they share commits.
const reportCommits = new GroupCommit<BatchableReport>({
  applyBatch: (reports) => applyReportBatch(deps, reports),
  applyOne: (report) => applyReport(deps, report),
  maxBatch: 64,
  maxDelayMs: 5,
  // One batch at a time: deletes of one batch lock the providers the next needs.
  maxInFlight: 1,
  onBatchFailed: (err, size) => log.warn({ err: String(err), size }, "report batch failed; applying its reports one by one"),
});

const conductor = new Worker<Report>(
  REPORTS_QUEUE,
  async (job) => {
    const r = job.data;
    if (isBatchable(r)) await reportCommits.submit(r);
    else await applyReport(deps, r);
    log.debug({ kind: r.kind, host: r.host, ...("instance_id" in r ? { instance_id: r.instance_id, request_id: r.request_id } : {}) }, "report applied");
  },
  { connection, prefix: config.queuePrefix, concurrency: 128, ...WORKER_RECOVERY },
);

for (const w of [scheduler, conductor]) {
  w.on("failed", (job, err) => log.warn({ queue: w.name, job_id: job?.id, err: String(err) }, "job failed"));
  w.on("error", (err) => log.warn({ queue: w.name, err: String(err) }, "worker error"));
}

// Boots waiting longer than a few seconds with no job working on them (a batch that held
// them rolled back, or raced): place them from here.
const strandedTimer = setInterval(() => {
  placeBatch(deps, { pending: PLACEMENT_BATCH, minAgeSec: 5 }).catch((err) => log.warn({ err: String(err) }, "stranded-boot sweep failed"));
}, 5000);

const heartbeatTimer = setInterval(() => {
  flushHeartbeats(redis, db, config.queuePrefix)
    .then(() => view.refreshLiveness())
    .catch((err) => log.warn({ err: String(err) }, "heartbeat flush failed"));
}, 2000);

// Deadlines, local deletes of servers on down hosts, jobs lost from Redis (scheduler/recovery.ts).
const recoveryRedis = producerConnection(config.redisUrl);
recoveryRedis.on("error", () => {});
const recovery = startRecovery({ ...deps, recovery: config.recovery, redis: recoveryRedis, queuePrefix: config.queuePrefix });

// Optional /healthz, /readyz, /metrics listener (CIRRUS_METRICS_PORT); the cluster-wide numbers are on the api's /metrics.
const metricsRegistry = processRegistry("scheduler");
instrumentWorkers(metricsRegistry, [scheduler, conductor]);
deps.onDecided = decisionMetrics(metricsRegistry);
const opsServer = config.metricsPort === null ? null : await startOpsServer({
  host: config.metricsHost, port: config.metricsPort, service: "scheduler", registry: metricsRegistry, log,
  checks: { postgres: () => db.raw("select 1"), redis: () => redis.ping() },
});

log.info("cirrus-scheduler running");

onShutdown(log, async () => {
  clearInterval(heartbeatTimer);
  clearInterval(strandedTimer);
  await opsServer?.close();
  await Promise.all([scheduler.close(), conductor.close(), recovery.stop()]);
  recoveryRedis.disconnect();
  await relay.stop();
  await queues.close();
  redis.disconnect();
  await db.destroy();
});
