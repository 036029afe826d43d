/**
 * Reconciliation, power-state sync, deadlines and liveness, with the real pieces in one
 * process: the API app, the outbox relay, scheduler and conductor workers and a compute
 * agent on the fake driver, over real Postgres and Redis.
 */
import { Worker } from "bullmq";
import { Redis } from "ioredis";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RecoveryConfig } from "../../common/config.js";
import { createLogger } from "../../common/logger.js";
import type { Report, ScheduleJob } from "../../common/messages.js";
import { OutboxRelay } from "../../common/outbox.js";
import { PowerState } from "../../common/power-state.js";
import { QueueSet, REPORTS_QUEUE, SCHEDULE_QUEUE, producerConnection, workerConnection } from "../../common/queues.js";
import { ComputeAgent } from "../../compute-agent/agent.js";
import { FakeDriver } from "../../compute-agent/virt/fake.js";
import { applyReport, type ConductorDeps } from "../../scheduler/conductor.js";
import { flushHeartbeats } from "../../scheduler/heartbeats.js";
import { placeInstance } from "../../scheduler/place.js";
import { sweep } from "../../scheduler/recovery.js";
import { ADMIN_TOKEN, TEST_REDIS_URL, createTestApp, uniqueName, type TestApp } from "../support/services.js";
import { waitFor } from "../support/stack.js";

let t: TestApp;
const auth = { "X-Auth-Token": ADMIN_TOKEN };
const prefix = uniqueName("recon");
const host = uniqueName("recon-host");
const log = createLogger("test", "silent");
let queues: QueueSet;
let relay: OutboxRelay;
let workers: Worker[] = [];
let redis: Redis;
let driver: FakeDriver;
let agent: ComputeAgent;
let deps: ConductorDeps;
const recovery: RecoveryConfig = {
  buildTimeoutSec: 600,
  actionTimeoutSec: 600,
  sweepIntervalSec: 1,
  requeueAfterSec: 600,
  powerSyncIntervalSec: 0,
  orphanAction: "reap",
  orphanGraceSec: 0,
};
let imageId: string;
const srv = () => request(t.app.server);

function startAgent(): ComputeAgent {
  return new ComputeAgent({
    host,
    driver,
    libvirtUri: "fake://",
    redisUrl: TEST_REDIS_URL,
    queuePrefix: prefix,
    redis,
    log,
    concurrency: 4,
    heartbeatIntervalSec: 1,
    availabilityZone: null,
    inventory: () => ({
      VCPU: { total: 64, reserved: 0, min_unit: 1, max_unit: 64, step_size: 1, allocation_ratio: 1 },
      MEMORY_MB: { total: 65536, reserved: 0, min_unit: 1, max_unit: 65536, step_size: 1, allocation_ratio: 1 },
      DISK_GB: { total: 1000, reserved: 0, min_unit: 1, max_unit: 1000, step_size: 1, allocation_ratio: 1 },
    }),
    apiUrl: "http://127.0.0.1:1",
    apiToken: "unused",
    scratchDir: "/tmp",
    powerSyncIntervalSec: 0,
    orphanAction: "reap",
  });
}

beforeAll(async () => {
  t = await createTestApp({ enforceQuotas: false });
  await t.app.listen({ port: 0, host: "127.0.0.1" });
  queues = new QueueSet(TEST_REDIS_URL, prefix);
  relay = new OutboxRelay({ db: t.db, databaseUrl: (t.db.client.config as { connection: { connectionString: string } }).connection.connectionString, queues, log, pollIntervalMs: 200 });
  await relay.start();
  redis = new Redis(TEST_REDIS_URL);
  deps = { db: t.db, log, serviceDownTimeSec: 5, maxAttempts: 3, orphanGraceSec: 0 };
  const connection = workerConnection(TEST_REDIS_URL);
  workers = [
    new Worker<ScheduleJob>(SCHEDULE_QUEUE, (job) => placeInstance(deps, job.data.instance_id, job.data.request_id), { connection, prefix }),
    new Worker<Report>(REPORTS_QUEUE, (job) => applyReport(deps, job.data), { connection, prefix, concurrency: 4 }),
  ];
  driver = new FakeDriver({ resources: { hypervisor_hostname: host } });
  agent = startAgent();
  await agent.start();
  await waitFor("the host to register", async () => t.db("compute_services").where({ host }).first(), 20_000);
  await flushHeartbeats(redis, t.db, prefix);
  expect((await srv().post("/v2.1/flavors").set(auth).send({ flavor: { name: "tiny", id: "tiny", ram: 64, vcpus: 1, disk: 1 } })).status).toBe(200);
  const img = await srv().post("/v2/images").set(auth).send({ disk_format: "qcow2", container_format: "bare", visibility: "public" });
  await srv().put(`/v2/images/${img.body.id}/file`).set(auth).set("content-type", "application/octet-stream").send(Buffer.alloc(1024));
  imageId = img.body.id;
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await Promise.all(workers.map((w) => w.close()));
  await relay?.stop();
  await queues?.close();
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  redis?.disconnect();
  await t?.close();
});

const server = async (id: string) => (await srv().get(`/v2.1/servers/${id}`).set(auth)).body.server;
async function bootActive(name: string): Promise<string> {
  await flushHeartbeats(redis, t.db, prefix);
  const res = await srv().post("/v2.1/servers").set(auth).send({ server: { name, flavorRef: "tiny", imageRef: imageId, networks: "none" } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const id = res.body.server.id as string;
  await waitFor(`${name} ACTIVE`, async () => (await server(id))?.status === "ACTIVE", 20_000, 100);
  return id;
}
const refOf = async (id: string) => ({ instance_id: id, instance_name: (await server(id))["OS-EXT-SRV-ATTR:instance_name"] as string });

describe("power-state sync", () => {
  it("makes an ACTIVE server whose domain stopped outside Cirrus SHUTOFF, recorded as a stop action", async () => {
    const id = await bootActive("sync-stopped");
    await driver.powerOff(await refOf(id), 0); // behind Cirrus's back
    await agent.syncPower();
    const s = await waitFor("SHUTOFF", async () => {
      const v = await server(id);
      return v.status === "SHUTOFF" ? v : undefined;
    }, 10_000, 100);
    expect(s["OS-EXT-STS:power_state"]).toBe(PowerState.SHUTDOWN);
    const actions = await t.db("instance_actions").where({ instance_id: id }).orderBy("id").pluck("action");
    expect(actions).toEqual(["create", "stop"]);
    const events = await t.db("instance_action_events").join("instance_actions as a", "a.id", "instance_action_events.action_id").where("a.instance_id", id).pluck("event");
    expect(events).toContain("compute_sync_power_state");
  });

  it("skips a server with a task in flight", async () => {
    const id = await bootActive("sync-busy");
    await t.db("instances").where({ id }).update({ task_state: "rebooting" });
    await driver.powerOff(await refOf(id), 0);
    await agent.syncPower();
    await new Promise((r) => setTimeout(r, 1000));
    const row = await t.db("instances").where({ id }).first();
    expect([row.vm_state, row.task_state, row.power_state]).toEqual(["active", "rebooting", PowerState.RUNNING]);
    await t.db("instances").where({ id }).update({ task_state: null });
  });

  it("stops the domain of a stopped server found running (Nova's force_stop)", async () => {
    const id = await bootActive("sync-running");
    const ref = await refOf(id);
    await srv().post(`/v2.1/servers/${id}/action`).set(auth).send({ "os-stop": null });
    await waitFor("SHUTOFF", async () => (await server(id)).status === "SHUTOFF", 10_000, 100);
    await driver.powerOn(ref); // behind Cirrus's back
    await agent.syncPower();
    await waitFor("the domain stopped again", async () => (await driver.powerState(ref)) === PowerState.SHUTDOWN, 10_000, 100);
    expect((await server(id)).status).toBe("SHUTOFF");
  });
});

describe("orphans", () => {
  it("reaps a domain whose instance was deleted, or is unknown", async () => {
    const id = await bootActive("orphan-deleted");
    const ref = await refOf(id);
    // Deleted behind the agent's back (as a local delete while the host was down would).
    await t.db("instances").where({ id }).update({ vm_state: "deleted", task_state: null, deleted_at: t.db.fn.now() });
    const stranger = { instance_id: "0f0f0f0f-0000-4000-8000-000000000001", instance_name: "instance-0fffff01" };
    await driver.spawn({
      ...stranger,
      project_id: "p",
      user_id: "u",
      name: "stranger",
      flavor: { id: "x", name: "x", vcpus: 1, ram: 64, disk: 1, ephemeral: 0, swap: 0, extra_specs: {} },
      image: { id: "i", name: "i", disk_format: "qcow2", location: "/dev/null", size: 0, checksum: null, properties: {} },
      ports: [],
      metadata: {},
      config_drive: false,
      user_data: null,
    });
    await new Promise((r) => setTimeout(r, 50));
    await agent.syncPower();
    await waitFor("both orphans reaped", async () => (await driver.powerState(ref)) === PowerState.NOSTATE && (await driver.powerState(stranger)) === PowerState.NOSTATE, 10_000, 100);
  });
});

describe("deadlines", () => {
  it("ends a build no agent finishes in ERROR with a fault, and frees its claim", async () => {
    await flushHeartbeats(redis, t.db, prefix);
    const res = await srv().post("/v2.1/servers").set(auth).send({ server: { name: "stuck-build", flavorRef: "tiny", imageRef: imageId, networks: "none" } });
    const id = res.body.server.id as string;
    // Pretend it was claimed long ago and the agent never answered. Wait until the agent's
    // reports have all landed first, so none of them can overtake the rewind below.
    await waitFor("ACTIVE", async () => (await server(id)).status === "ACTIVE", 10_000, 50);
    await t.db("instances").where({ id }).update({ vm_state: "building", task_state: "spawning", created_at: t.db.raw("now() - interval '1 hour'") });
    const counts = await sweep({ ...deps, recovery: { ...recovery, buildTimeoutSec: 60 }, redis: producerConnection(TEST_REDIS_URL), queuePrefix: prefix });
    expect(counts.buildTimeouts).toBe(1);
    const s = await server(id);
    expect(s.status).toBe("ERROR");
    expect(s.fault.message).toMatch(/timed out after 60 seconds/);
    expect(await t.db("allocations").where({ consumer_id: id })).toEqual([]);
  });

  it("clears an action stuck past its deadline with a fault", async () => {
    const id = await bootActive("stuck-action");
    await t.db("instances").where({ id }).update({ task_state: "powering-off", updated_at: t.db.raw("now() - interval '1 hour'") });
    await t.db("instance_actions").insert({ instance_id: id, action: "stop", request_id: "req-stuck", project_id: "admin", user_id: "admin" });
    const counts = await sweep({ ...deps, recovery: { ...recovery, actionTimeoutSec: 60 }, redis: producerConnection(TEST_REDIS_URL), queuePrefix: prefix });
    expect(counts.actionTimeouts).toBe(1);
    const row = await t.db("instances").where({ id }).first();
    expect([row.vm_state, row.task_state]).toEqual(["active", null]);
    const fault = await t.db("instance_faults").where({ instance_id: id }).first();
    expect(fault.message).toMatch(/timed out/);
  });
});

describe("liveness", () => {
  it("shows host_status to admins, gives a down host no new servers, and deletes locally on it", async () => {
    const id = await bootActive("live-1");
    expect((await server(id)).host_status).toBe("UP");
    await t.db("compute_services").where({ host }).update({ status: "disabled" });
    expect((await server(id)).host_status).toBe("MAINTENANCE");
    await t.db("compute_services").where({ host }).update({ status: "enabled", forced_down: true });
    expect((await server(id)).host_status).toBe("DOWN");
    await t.db("compute_services").where({ host }).update({ forced_down: false, last_seen_at: t.db.raw("now() - interval '1 hour'") });
    expect((await server(id)).host_status).toBe("UNKNOWN");
    // No new servers for a host whose heartbeats stopped.
    const res = await srv().post("/v2.1/servers").set(auth).send({ server: { name: "live-2", flavorRef: "tiny", imageRef: imageId, networks: "none" } });
    const other = res.body.server.id as string;
    await waitFor("live-2 ERROR", async () => (await server(other))?.status === "ERROR", 10_000, 100);
    expect((await server(other)).fault.message).toMatch(/^No valid host/);
    // A delete that cannot reach the host completes locally.
    expect((await srv().delete(`/v2.1/servers/${id}`).set(auth)).status).toBe(204);
    expect((await srv().get(`/v2.1/servers/${id}`).set(auth)).status).toBe(404);
    expect(await t.db("allocations").where({ consumer_id: id })).toEqual([]);
    await flushHeartbeats(redis, t.db, prefix);
  });
});
