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
import { QueueSet, REPORTS_QUEUE, SCHEDULE_QUEUE, redisOptions, workerConnection } from "../common/queues.js";
import { onShutdown } from "../common/shutdown.js";
import { applyReport } from "./conductor.js";
import { flushHeartbeats } from "./heartbeats.js";
import { placeInstance, type PlacementDeps } from "./place.js";

const config = loadConfig();
const log = createLogger("cirrus-scheduler", config.logLevel);
await ensureDatabase(config.databaseUrl);
const db = createDb(config.databaseUrl, { min: 0, max: 20 });
await migrateLatest(db);
const queues = new QueueSet(config.redisUrl, config.queuePrefix);
const relay = new OutboxRelay({ db, databaseUrl: config.databaseUrl, queues, log });
await relay.start();

const deps: PlacementDeps = { db, log, serviceDownTimeSec: config.serviceDownTimeSec, maxAttempts: config.schedulerMaxAttempts };
const connection = workerConnection(config.redisUrl);

const scheduler = new Worker<ScheduleJob>(
  SCHEDULE_QUEUE,
  async (job) => {
    const outcome = await placeInstance(deps, job.data.instance_id, job.data.request_id);
    log.info({ instance_id: job.data.instance_id, request_id: job.data.request_id, outcome }, "schedule request handled");
    return outcome;
  },
  { connection, prefix: config.queuePrefix, concurrency: 8 },
);

const conductor = new Worker<Report>(
  REPORTS_QUEUE,
  async (job) => {
    await applyReport(deps, job.data);
    const r = job.data;
    log.info({ kind: r.kind, host: r.host, ...("instance_id" in r ? { instance_id: r.instance_id, request_id: r.request_id } : {}) }, "report applied");
  },
  { connection, prefix: config.queuePrefix, concurrency: 16 },
);

for (const w of [scheduler, conductor]) {
  w.on("failed", (job, err) => log.warn({ queue: w.name, job_id: job?.id, err: String(err) }, "job failed"));
  w.on("error", (err) => log.warn({ queue: w.name, err: String(err) }, "worker error"));
}

const redis = new Redis(redisOptions(config.redisUrl));
redis.on("error", () => {});
const heartbeatTimer = setInterval(() => {
  flushHeartbeats(redis, db, config.queuePrefix).catch((err) => log.warn({ err: String(err) }, "heartbeat flush failed"));
}, 2000);

log.info("cirrus-scheduler running");

onShutdown(log, async () => {
  clearInterval(heartbeatTimer);
  await Promise.all([scheduler.close(), conductor.close()]);
  await relay.stop();
  await queues.close();
  redis.disconnect();
  await db.destroy();
});
