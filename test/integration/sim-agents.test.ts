/**
 * Simulated hosts (compute-agent/sim) against a real scheduler process: 20 hosts in one
 * fleet register, heartbeat through one shared write, and take boots to ACTIVE, both
 * the hosts with a worker of their own and those that take jobs on demand.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import request from "supertest";
import { afterAll, beforeAll, expect, it } from "vitest";
import { heartbeatKey } from "../../common/heartbeat.js";
import { createLogger } from "../../common/logger.js";
import { simHostNames } from "../../compute-agent/sim/args.js";
import { SimulatedFleet } from "../../compute-agent/sim/fleet.js";
import { ADMIN_TOKEN, TEST_REDIS_URL, createTestApp, uniqueName, type TestApp } from "../support/services.js";
import { waitFor } from "../support/stack.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const auth = { "X-Auth-Token": ADMIN_TOKEN };
const prefix = uniqueName("sim");
const hosts = simHostNames(uniqueName("simhost"), 20);
const DEDICATED = 10;
let t: TestApp;
let fleet: SimulatedFleet;
let scheduler: ChildProcess;
let logDir: string;
let redis: Redis;
let imageId: string;

beforeAll(async () => {
  t = await createTestApp({ enforceQuotas: false });
  redis = new Redis(TEST_REDIS_URL);
  logDir = await mkdtemp(path.join(os.tmpdir(), "cirrus-sim-test-"));
  const fd = openSync(path.join(logDir, "scheduler.log"), "a");
  const databaseUrl = (t.db.client.config as { connection: { connectionString: string } }).connection.connectionString;
  scheduler = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "scheduler/main.ts")], {
    env: { ...process.env, DATABASE_URL: databaseUrl, REDIS_URL: TEST_REDIS_URL, CIRRUS_QUEUE_PREFIX: prefix, LOG_LEVEL: "info" },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  fleet = new SimulatedFleet({
    hosts,
    redisUrl: TEST_REDIS_URL,
    queuePrefix: prefix,
    log: createLogger("sim-test", "warn"),
    heartbeatIntervalSec: 1,
    resources: { vcpus: 8, memory_mb: 16_384, disk_gb: 100 },
    inventory: (r) => ({
      VCPU: { total: r.vcpus, reserved: 0, min_unit: 1, max_unit: r.vcpus, step_size: 1, allocation_ratio: 1 },
      MEMORY_MB: { total: r.memory_mb, reserved: 0, min_unit: 1, max_unit: r.memory_mb, step_size: 1, allocation_ratio: 1 },
      DISK_GB: { total: r.disk_gb, reserved: 0, min_unit: 1, max_unit: r.disk_gb, step_size: 1, allocation_ratio: 1 },
    }),
    dedicatedWorkers: DEDICATED,
    onDemandWorkers: 4,
    concurrency: 4,
    availabilityZone: null,
    powerSyncIntervalSec: 0,
    orphanAction: "log",
    apiUrl: "http://127.0.0.1:1",
    apiToken: "unused",
    scratchDir: os.tmpdir(),
  });
  await fleet.start();
  expect((await request(t.app.server).post("/v2.1/flavors").set(auth).send({ flavor: { name: "sim.tiny", id: "sim.tiny", ram: 256, vcpus: 1, disk: 1 } })).status).toBe(200);
  const img = await request(t.app.server).post("/v2/images").set(auth).send({ disk_format: "qcow2", container_format: "bare", visibility: "public" });
  await request(t.app.server).put(`/v2/images/${img.body.id}/file`).set(auth).set("content-type", "application/octet-stream").send(Buffer.alloc(16));
  imageId = img.body.id;
}, 90_000);

afterAll(async () => {
  await fleet?.stop();
  if (scheduler && scheduler.exitCode === null) {
    await new Promise<void>((resolve) => {
      scheduler.once("exit", () => resolve());
      scheduler.kill("SIGTERM");
    });
  }
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
  await t?.close();
  await rm(logDir, { recursive: true, force: true });
});

const schedulerLog = () => readFile(path.join(logDir, "scheduler.log"), "utf8").then((s) => s.slice(-4000), () => "");

it("registers every host and records their heartbeats with one write per interval", async () => {
  const beats = await redis.hgetall(heartbeatKey(prefix));
  expect(Object.keys(beats).sort()).toEqual([...hosts].sort());
  await waitFor(
    "20 registered hosts that are up",
    async () => {
      const [row] = await t.db("compute_services").whereIn("host", hosts).where("last_seen_at", ">", t.db.raw("now() - interval '30 seconds'")).count<{ n: number }[]>("* as n");
      return Number(row!.n) === hosts.length;
    },
    60_000,
  ).catch(async (err) => {
    throw new Error(`${String(err)}\n${await schedulerLog()}`);
  });
  const first = Number((await redis.hget(heartbeatKey(prefix), hosts[0]!))!);
  await waitFor("the next heartbeat", async () => Number(await redis.hget(heartbeatKey(prefix), hosts[0]!)) > first, 5_000, 100);
}, 90_000);

it("takes boots to ACTIVE on hosts with their own worker and on on-demand hosts", async () => {
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) {
    const res = await request(t.app.server).post("/v2.1/servers").set(auth).send({ server: { name: `sim-${i}`, flavorRef: "sim.tiny", imageRef: imageId, networks: "none" } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    ids.push(res.body.server.id);
  }
  await waitFor(
    "40 servers ACTIVE",
    async () => {
      const rows = await t.db("instances").whereIn("id", ids).select("vm_state");
      return rows.filter((r: { vm_state: string }) => r.vm_state === "active").length === ids.length;
    },
    60_000,
    200,
  ).catch(async (err) => {
    throw new Error(`${String(err)}\n${await schedulerLog()}`);
  });
  const placed = await t.db("instances").whereIn("id", ids).select("id", "host");
  for (const row of placed as { id: string; host: string }[]) {
    expect(fleet.drivers.get(row.host)?.details(row.id)?.state, `${row.id} on ${row.host}`).toBeDefined();
  }
  const used = new Set(placed.map((r: { host: string }) => hosts.indexOf(r.host)));
  expect([...used].some((i) => i < DEDICATED)).toBe(true);
  expect([...used].some((i) => i >= DEDICATED)).toBe(true);
  expect(fleet.onDemandStats().started).toBeGreaterThan(0);
}, 90_000);

it("one schedule job places every boot its statement wrote, more than a batch of them, without waiting for the sweep", async () => {
  // 60 boots at once go out as one or two statements, so one or two jobs; a multi-create of
  // 40 is one statement and one job. A boot left to the stranded-boot sweep is placed at
  // the earliest 5 s after it was written; every one here must be placed before that.
  const single = await Promise.all(
    Array.from({ length: 60 }, (_, i) =>
      t.app.inject({ method: "POST", url: "/v2.1/servers", headers: auth, payload: { server: { name: `wake-${i}`, flavorRef: "sim.tiny", imageRef: imageId, networks: "none" } } }),
    ),
  );
  expect(single.map((r) => r.statusCode)).toEqual(single.map(() => 202));
  const multi = await request(t.app.server).post("/v2.1/servers").set(auth).send({ server: { name: "wake-multi", flavorRef: "sim.tiny", imageRef: imageId, networks: "none", min_count: 40, max_count: 40 } });
  expect(multi.status).toBe(202);
  const jobs: { payload: { boots: number } }[] = await t.db("outbox").where({ queue: "schedule" }).whereRaw("payload->>'instance_id' IN (SELECT id::text FROM instances WHERE name LIKE 'wake-%')").select("payload");
  expect(jobs.reduce((n, j) => n + j.payload.boots, 0)).toBe(100);
  expect(jobs.length).toBeLessThan(10);
  await waitFor(
    "100 boots placed",
    async () => Number((await t.db("instances").where("name", "like", "wake-%").whereNull("host").count<{ n: number }[]>("* as n"))[0]!.n) === 0,
    30_000,
    100,
  ).catch(async (err) => {
    throw new Error(`${String(err)}\n${await schedulerLog()}`);
  });
  const { rows } = await t.db.raw(
    `SELECT max(extract(epoch FROM e.start_time - i.created_at)) AS slowest, count(*)::int AS n
       FROM instances i JOIN instance_actions a ON a.instance_id = i.id AND a.action = 'create'
       JOIN instance_action_events e ON e.action_id = a.id AND e.event = 'schedule_instances'
      WHERE i.name LIKE 'wake-%'`,
  );
  expect(rows[0].n).toBe(100);
  expect(Number(rows[0].slowest)).toBeLessThan(5);
}, 90_000);
