/**
 * /healthz, /readyz and /metrics on the API (real Postgres and Redis), and the small
 * listener the scheduler and agents start with CIRRUS_METRICS_PORT.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../api/app.js";
import { devAuthenticator } from "../../api/auth/dev-auth.js";
import { heartbeatKey } from "../../common/heartbeat.js";
import { agentMetrics, decisionMetrics, instrumentSpawn, processRegistry, pushedMetricsKey, startMetricsPush } from "../../common/metrics.js";
import { startOpsServer } from "../../common/ops-server.js";
import { createLogger } from "../../common/logger.js";
import { QueueSet, SCHEDULE_QUEUE, redisOptions } from "../../common/queues.js";
import { ADMIN_TOKEN, createTestDatabase, TEST_REDIS_URL, uniqueName, type TestDatabase } from "../support/services.js";

const config = { publicUrl: "http://cirrus.test:8774", imageStoreDir: "/nonexistent", serviceDownTimeSec: 60 };

describe("operations endpoints", () => {
  let database: TestDatabase;
  let redis: Redis;
  let queues: QueueSet;
  const prefix = uniqueName("cirrus-ops");
  let app: Awaited<ReturnType<typeof buildApp>>;

  beforeAll(async () => {
    database = await createTestDatabase();
    redis = new Redis(redisOptions(TEST_REDIS_URL));
    queues = new QueueSet(TEST_REDIS_URL, prefix);
    app = await buildApp({
      db: database.db,
      config,
      auth: devAuthenticator(ADMIN_TOKEN),
      ops: { redis, queuePrefix: prefix, queue: (name) => queues.get(name) },
    });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await queues?.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis?.disconnect();
    await database?.drop();
  });

  it("answers /healthz and /readyz without a token", async () => {
    const health = await app.inject({ method: "GET", url: "/healthz" });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ status: "ok", service: "api" });
    const ready = await app.inject({ method: "GET", url: "/readyz" });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: "ok", service: "api", checks: { postgres: "ok", redis: "ok" } });
  });

  it("answers /readyz 503 when Redis or Postgres does not answer", async () => {
    const deadRedis = new Redis({ host: "127.0.0.1", port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    deadRedis.on("error", () => {});
    const broken = await buildApp({ db: database.db, config, auth: devAuthenticator(ADMIN_TOKEN), ops: { redis: deadRedis, queuePrefix: prefix } });
    const res = await broken.inject({ method: "GET", url: "/readyz" });
    expect(res.statusCode).toBe(503);
    expect(res.json().checks.postgres).toBe("ok");
    expect(res.json().checks.redis).toMatch(/^error: /);
    await broken.close();
    deadRedis.disconnect();

    const { createDb } = await import("../../common/db/knex.js");
    const deadDb = createDb("postgres://nobody@127.0.0.1:1/none");
    const noDb = await buildApp({ db: deadDb, config, auth: devAuthenticator(ADMIN_TOKEN), ops: { redis, queuePrefix: prefix } });
    const res2 = await noDb.inject({ method: "GET", url: "/readyz" });
    expect(res2.statusCode).toBe(503);
    expect(res2.json().checks.redis).toBe("ok");
    expect(res2.json().checks.postgres).toMatch(/^error: /);
    await noDb.close();
    await deadDb.destroy();
  });

  it("serves Prometheus text: HTTP latency by route and status, servers, boots, queues, heartbeats, pushed agent metrics", async () => {
    await app.inject({ method: "GET", url: "/v2.1/flavors", headers: { "x-auth-token": ADMIN_TOKEN } });
    await app.inject({ method: "GET", url: "/v2.1/servers/nope", headers: { "x-auth-token": ADMIN_TOKEN } });
    await queues.get(SCHEDULE_QUEUE).add("schedule", { instance_id: "x", request_id: "req-x" }, { delay: 60_000 });
    await redis.hset(heartbeatKey(prefix), "cn-1", String(Date.now() - 3000));

    // An agent's spawn histogram, pushed through Redis.
    const agent = agentMetrics();
    const driver = instrumentSpawn({ spawn: async () => 1, name: "fake" }, agent, { driver: "fake", host: "cn-1" });
    await driver.spawn();
    const stopPush = startMetricsPush(redis, prefix, "agent:cn-1", agent.registry, 60_000);
    await stopPush();
    expect(await redis.hexists(pushedMetricsKey(prefix), "agent:cn-1")).toBe(1);

    const res = await app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    const text = res.body;
    expect(text).toMatch(/cirrus_http_request_duration_seconds_count\{[^}]*route="\/v2\.1\/flavors"[^}]*status_code="200"[^}]*\} 1/);
    expect(text).toMatch(/cirrus_http_request_duration_seconds_count\{[^}]*route="\/v2\.1\/servers\/:id"[^}]*status_code="404"/);
    expect(text).toMatch(/cirrus_boots_total\{outcome="active"\} 0/);
    expect(text).toMatch(/cirrus_boot_time_to_active_seconds_count 0/);
    expect(text).toMatch(/cirrus_scheduling_latency_seconds_bucket\{le="\+Inf"\} 0/);
    expect(text).toMatch(/cirrus_queue_jobs\{queue="schedule",state="delayed"\} 1/);
    const age = Number(/cirrus_compute_heartbeat_age_seconds\{host="cn-1"\} ([0-9.]+)/.exec(text)?.[1]);
    expect(age).toBeGreaterThanOrEqual(2.9);
    expect(age).toBeLessThan(60);
    expect(text).toMatch(/cirrus_agent_spawn_duration_seconds_count\{driver="fake",host="cn-1",outcome="success"\} 1/);
    expect(text).toMatch(/process_resident_memory_bytes\{service="api"\}/);
  });

  it("counts servers by status from the database", async () => {
    const res = await app.inject({ method: "GET", url: "/metrics" });
    // No servers yet: the gauge has no series; it is still declared.
    expect(res.body).toMatch(/# TYPE cirrus_servers gauge/);
  });

  it("gives the scheduler and agents a listener with /healthz, /readyz and /metrics", async () => {
    const registry = processRegistry("scheduler");
    const log = createLogger("test", "silent");
    const ok = await startOpsServer({ host: "127.0.0.1", port: 0, service: "scheduler", registry, log, checks: { redis: () => redis.ping() } });
    const base = `http://127.0.0.1:${ok.port}`;
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: "ok", service: "scheduler" });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await fetch(`${base}/metrics`);
    expect(await metrics.text()).toMatch(/process_cpu_user_seconds_total\{service="scheduler"\}/);
    const decided = decisionMetrics(registry);
    decided(3, 2); // a round of two boots that took 3 ms: 1.5 ms each
    decided(0, 0);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/cirrus_scheduler_decision_seconds_count\{service="scheduler"\} 1\n/);
    expect(text).toMatch(/cirrus_scheduler_decision_seconds_sum\{service="scheduler"\} 0\.0015\n/);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    await ok.close();

    const failing = await startOpsServer({ host: "127.0.0.1", port: 0, service: "compute-agent", registry, log, checks: { redis: () => Promise.reject(new Error("down")) } });
    const res = await fetch(`http://127.0.0.1:${failing.port}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: "unavailable", checks: { redis: "error: down" } });
    await failing.close();
  });
});
