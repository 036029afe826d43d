/**
 * The outbox under a Redis outage: boots accepted while Redis is down are published,
 * each exactly once, under its deterministic job id, when Redis comes back.
 */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { Queue } from "bullmq";
import request from "supertest";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createLogger } from "../../common/logger.js";
import { OutboxRelay } from "../../common/outbox.js";
import { QueueSet, SCHEDULE_QUEUE } from "../../common/queues.js";
import { ADMIN_TOKEN, createTestApp, uniqueName, type TestApp } from "../support/services.js";
import { waitFor } from "../support/stack.js";

let t: TestApp;
let port: number;
let redis: ChildProcess | null = null;
const prefix = uniqueName("outbox");

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
}

async function startRedis(): Promise<void> {
  redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  await waitFor("redis to listen", () => new Promise<boolean>((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => { s.end(); resolve(true); });
    s.on("error", () => resolve(false));
  }), 10_000, 50);
}

async function stopRedis(): Promise<void> {
  const proc = redis;
  redis = null;
  if (!proc || proc.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    proc.once("exit", () => resolve());
    proc.kill("SIGKILL");
  });
}

beforeAll(async () => {
  t = await createTestApp();
  port = await freePort();
});

afterAll(async () => {
  await stopRedis();
  await t.close();
});

it("publishes every boot accepted during a Redis outage once Redis returns, exactly once", async () => {
  const auth = { "X-Auth-Token": ADMIN_TOKEN };
  const s = t.app.server;
  await request(s).post("/v2.1/flavors").set(auth).send({ flavor: { id: "f1", name: "f1", ram: 64, vcpus: 1, disk: 1 } }).expect(200);
  const img = await request(s).post("/v2/images").set(auth).send({ name: "i", disk_format: "raw", container_format: "bare" }).expect(201);
  await request(s).put(`/v2/images/${img.body.id}/file`).set(auth).set("content-type", "application/octet-stream").send(Buffer.alloc(512, 7)).expect(204);

  await startRedis();
  const url = `redis://127.0.0.1:${port}`;
  const queues = new QueueSet(url, prefix);
  const relay = new OutboxRelay({ db: t.db, databaseUrl: "", queues, log: createLogger("test", "silent"), pollIntervalMs: 100, publishTimeoutMs: 500 });
  await stopRedis(); // Redis goes away before anything is accepted

  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const res = await request(s).post("/v2.1/servers").set(auth).send({ server: { name: `vm${i}`, flavorRef: "f1", imageRef: img.body.id, networks: "none" } });
    expect(res.status).toBe(202);
    ids.push(res.body.server.id);
  }
  await expect(relay.drainOnce()).rejects.toThrow();
  const pending = await t.db("outbox").whereNull("published_at").count<{ count: number }[]>("* as count");
  expect(Number(pending[0]!.count)).toBe(5);

  await startRedis();
  await relay.start();
  try {
    await waitFor("the outbox to drain", async () => {
      const [row] = await t.db("outbox").whereNull("published_at").count<{ count: number }[]>("* as count");
      return Number(row!.count) === 0;
    }, 20_000, 100);

    // Publishing a row again (a crash between publish and commit) adds no second job.
    await t.db("outbox").update({ published_at: null });
    await relay.drainOnce();

    const inspect = new Queue(SCHEDULE_QUEUE, { connection: { host: "127.0.0.1", port }, prefix });
    const jobs = await inspect.getJobs(["waiting", "delayed", "active", "completed", "failed"]);
    expect(jobs.map((j) => j.id).sort()).toEqual(ids.map((id) => `schedule-${id}`).sort());
    expect(jobs.every((j) => ids.includes(j.data.instance_id))).toBe(true);
    await inspect.close();
  } finally {
    await relay.stop();
    await queues.close();
  }
}, 60_000);
