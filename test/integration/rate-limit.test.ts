/**
 * Per-project rate limiting of mutating calls in Redis (api/rate-limit-store.ts): 429 with
 * Retry-After and Nova's overLimit body; reads and other projects are not throttled.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../api/app.js";
import { PUBLIC_URL, TEST_REDIS_URL, createTestDatabase, type TestDatabase } from "../support/services.js";
import type { Authenticator } from "../../api/auth/dev-auth.js";
import { RedisRateLimiter, type Count } from "../../api/rate-limit-store.js";

const auth: Authenticator = async (req) => {
  const p = req.headers["x-auth-token"];
  return p === "p1" || p === "p2" || p === "p3" || p === "p4" ? { projectId: p, userId: `u-${p}`, roles: ["member", "reader"], isAdmin: false } : null;
};

let app: Awaited<ReturnType<typeof buildApp>>;
let database: TestDatabase;
let redis: Redis;
let dir: string;
const nameSpace = `cirrus-test-rl-${randomBytes(4).toString("hex")}-`;

beforeAll(async () => {
  database = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), "cirrus-rl-"));
  redis = new Redis(TEST_REDIS_URL);
  app = await buildApp({
    db: database.db,
    config: { publicUrl: PUBLIC_URL, imageStoreDir: dir, serviceDownTimeSec: 60 },
    auth,
    redis,
    rateLimit: { max: 5, windowSec: 60, nameSpace },
  });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  const keys = await redis.keys(`${nameSpace}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await database?.drop();
  await rm(dir, { recursive: true, force: true });
});

const post = (project: string, name: string) =>
  request(app.server).post("/v2.1/os-keypairs").set("X-Auth-Token", project).send({ keypair: { name } });

describe("rate limiting", () => {
  it("the sixth mutating call of a project in the window is 429 with Retry-After and Nova's overLimit body", async () => {
    for (let i = 0; i < 5; i++) expect((await post("p1", `k${i}`)).status).toBe(200);
    const res = await post("p1", "k5");
    expect(res.status).toBe(429);
    const after = Number(res.headers["retry-after"]);
    expect(after).toBeGreaterThan(0);
    expect(after).toBeLessThanOrEqual(60);
    expect(res.body).toEqual({ overLimit: { code: 429, message: expect.any(String), retryAfter: String(after) } });
    // Nothing was written by the refused call.
    expect(await database.db("key_pairs").where({ name: "k5" }).first()).toBeUndefined();
  });

  it("reads are not limited, and another project has its own budget", async () => {
    for (let i = 0; i < 10; i++) expect((await request(app.server).get("/v2.1/os-keypairs").set("X-Auth-Token", "p1")).status).toBe(200);
    expect((await post("p2", "other")).status).toBe(200);
  });

  it("counts hits that arrive together exactly (they share Redis calls): of 12 at once, 5 pass, per project", async () => {
    const burst = (project: string) => Array.from({ length: 12 }, (_, i) => post(project, `burst-${i}`));
    const statuses = (await Promise.all([...burst("p3"), ...burst("p4")])).map((r) => r.status);
    for (const part of [statuses.slice(0, 12), statuses.slice(12)]) {
      expect(part.filter((s) => s === 200)).toHaveLength(5);
      expect(part.filter((s) => s === 429)).toHaveLength(7);
    }
    expect(await database.db("key_pairs").whereLike("name", "burst-%").count<{ n: number }[]>("* as n")).toEqual([{ n: 10 }]);
    const [key] = await redis.keys(`${nameSpace}*project:p3`);
    const ttl = await redis.pttl(key!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });
});

describe("with Redis unreachable", () => {
  it("mutating calls are let through, not refused (the limiter fails open)", async () => {
    const unreachable = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    unreachable.on("error", () => {});
    const open = await buildApp({
      db: database.db,
      config: { publicUrl: PUBLIC_URL, imageStoreDir: dir, serviceDownTimeSec: 60 },
      auth,
      redis: unreachable,
      rateLimit: { max: 1, windowSec: 60, nameSpace },
    });
    try {
      await open.ready();
      for (const name of ["down-1", "down-2", "down-3"]) {
        expect((await request(open.server).post("/v2.1/os-keypairs").set("X-Auth-Token", "p4").send({ keypair: { name } })).status).toBe(200);
      }
    } finally {
      await open.close();
      unreachable.disconnect();
    }
  });
});

describe("the store far from a limit (api/rate-limit-store.ts)", () => {
  const storeOn = (client: Redis, max: number) => new RedisRateLimiter(client, `${nameSpace}store-`, max, 60_000);
  /** The store's answer, and whether it was given at once (decided without Redis). */
  const hit = async (store: RedisRateLimiter, key: string) => {
    const answer = store.hit(key);
    return answer instanceof Promise ? { count: await answer, atOnce: false } : { count: answer, atOnce: true };
  };

  it("waits for Redis on a key's first hit and within the margin of the limit, not before; every hit is counted", async () => {
    const max = 100; // margin 64: hits up to 36 are decided here once the key is known
    const store = storeOn(redis, max);
    const answers = [];
    for (let i = 0; i < 40; i++) answers.push(await hit(store, "far"));
    expect(answers.map((a) => a.count.current)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(answers[0]!.atOnce).toBe(false);
    expect(answers.slice(1, 36).every((a) => a.atOnce)).toBe(true);
    expect(answers.slice(36).some((a) => a.atOnce)).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(await redis.get(`${nameSpace}store-far`)).toBe("40");
  });

  it("sends the hits it decided here to Redis together, within its flush interval, and before a hit that must wait", async () => {
    const client = new Redis(TEST_REDIS_URL);
    try {
      const store = new RedisRateLimiter(client, `${nameSpace}store-`, 1000, 60_000, 200); // margin 100; its deferred hits go after 200 ms
      const calls: (string | number)[][] = [];
      const counting = client as Redis & { cirrusRateLimitCount: (...args: (string | number)[]) => Promise<unknown> };
      const original = counting.cirrusRateLimitCount.bind(client);
      counting.cirrusRateLimitCount = (...args) => {
        calls.push(args);
        return original(...args);
      };
      expect((await hit(store, "flush")).atOnce).toBe(false);
      const atOnce = [];
      for (let i = 0; i < 30; i++) atOnce.push(await hit(store, "flush"));
      expect(atOnce.every((a) => a.atOnce)).toBe(true);
      expect(calls).toHaveLength(1);
      for (let i = 0; (await redis.get(`${nameSpace}store-flush`)) !== "31"; i++) {
        expect(i).toBeLessThan(100);
        await new Promise((r) => setTimeout(r, 10));
      }
      // The 30 went as one count of 30 in one call.
      expect(calls).toHaveLength(2);
      expect(calls[1]!.slice(-1)).toEqual([30]);

      // Near the limit a hit waits, and the key's hits decided here before it are counted first.
      const near = new RedisRateLimiter(client, `${nameSpace}store-`, 100, 60_000, 60_000); // margin 64: hits up to 36 here
      expect((await hit(near, "near")).atOnce).toBe(false);
      for (let i = 0; i < 35; i++) expect((await hit(near, "near")).atOnce).toBe(true);
      const waited = await hit(near, "near");
      expect(waited).toEqual({ count: expect.objectContaining({ current: 37 }), atOnce: false });
      expect(await redis.get(`${nameSpace}store-near`)).toBe("37");
    } finally {
      client.disconnect();
    }
  });

  it("two API processes on one key allow exactly max hits between them while fewer hits than the margin go unseen", async () => {
    const other = new Redis(TEST_REDIS_URL);
    try {
      const max = 200; // margin 64
      const [a, b] = [storeOn(redis, max), storeOn(other, max)];
      const counts: Count[] = [(await hit(a, "shared")).count, (await hit(b, "shared")).count];
      // B answers 50 hits here; they reach Redis, but A has not seen them.
      counts.push(...(await Promise.all(Array.from({ length: 50 }, () => hit(b, "shared")))).map((h) => h.count));
      for (let i = 0; (await redis.get(`${nameSpace}store-shared`)) !== "52"; i++) {
        expect(i).toBeLessThan(100);
        await new Promise((r) => setTimeout(r, 10));
      }
      // A, 250 hits at once: answered here while its count (its own hits only) stays 64 below the
      // limit, then counted in Redis, which has B's hits too.
      counts.push(...(await Promise.all(Array.from({ length: 250 }, () => hit(a, "shared")))).map((h) => h.count));
      expect(counts.filter((c) => c.current <= max)).toHaveLength(max);
      await new Promise((r) => setTimeout(r, 50));
      expect(await redis.get(`${nameSpace}store-shared`)).toBe("302");
    } finally {
      other.disconnect();
    }
  });
});
