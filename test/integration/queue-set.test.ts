/**
 * QueueSet, the producers' queues (real Redis): thousands of host queues must not each
 * ask Redis for its version, nor stay open for ever.
 */
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_JOB_OPTIONS, QueueSet, redisOptions } from "../../common/queues.js";
import { TEST_REDIS_URL, uniqueName } from "../support/services.js";

describe("QueueSet", () => {
  afterEach(() => vi.restoreAllMocks());

  it("checks the Redis version once, however many queues it opens, and delivers every job", async () => {
    const info = vi.spyOn(Redis.prototype, "info");
    const prefix = uniqueName("cirrus-qs");
    const queues = new QueueSet(TEST_REDIS_URL, prefix);
    const names = Array.from({ length: 30 }, (_, i) => `compute.qs-host-${i}`);
    for (const [i, name] of names.entries()) await queues.get(name).add("spawn", { i }, { jobId: `job-${i}` });
    // One for ioredis' own ready check when the connection opens, one for BullMQ's version check.
    expect(info).toHaveBeenCalledTimes(2);
    const inspect = new Redis(redisOptions(TEST_REDIS_URL));
    try {
      for (const [i, name] of names.entries()) {
        const q = new Queue(name, { connection: inspect, prefix, skipVersionCheck: true });
        expect((await q.getJob(`job-${i}`))?.data).toEqual({ i });
        await q.close();
      }
    } finally {
      await queues.close();
      inspect.disconnect();
    }
  });

  it("closes the least recently used queues past its limit, and opens them again when needed", async () => {
    const prefix = uniqueName("cirrus-qs");
    const queues = new QueueSet(TEST_REDIS_URL, prefix, 5);
    try {
      const first = queues.get("compute.qs-a");
      await first.add("spawn", { n: 1 }, { jobId: "a-1" });
      for (let i = 0; i < 10; i++) {
        queues.get("compute.qs-a"); // kept in use, so never the least recently used
        await queues.get(`compute.qs-other-${i}`).add("spawn", {}, { jobId: `o-${i}` });
      }
      expect(queues.openCount).toBe(5);
      expect(queues.get("compute.qs-a")).toBe(first);
      const reopened = queues.get("compute.qs-other-0");
      await reopened.add("spawn", { n: 2 }, { jobId: "o-0-again" });
      expect(await reopened.getJob("o-0-again")).toBeTruthy();
      expect(queues.openCount).toBe(5);
    } finally {
      await queues.close();
    }
  });

  it("adds jobs to many queues in one call, with the default job options, no queue opened, and a job id still held added once", async () => {
    const prefix = uniqueName("cirrus-qs");
    const queues = new QueueSet(TEST_REDIS_URL, prefix);
    const inspect = new Redis(redisOptions(TEST_REDIS_URL));
    try {
      const jobs = Array.from({ length: 40 }, (_, i) => ({ queue: `compute.qs-many-${i % 20}`, name: "spawn", jobId: `m-${i}`, data: { i } }));
      await queues.addToQueues(jobs);
      await queues.addToQueues([{ ...jobs[0]!, data: { i: "again" } }]);
      expect(queues.openCount).toBe(0);
      for (let q = 0; q < 20; q++) {
        const queue = new Queue(`compute.qs-many-${q}`, { connection: inspect, prefix, skipVersionCheck: true });
        expect(await queue.getWaitingCount()).toBe(2);
        for (const i of [q, q + 20]) {
          const job = await queue.getJob(`m-${i}`);
          expect(job?.data).toEqual({ i });
          expect(job?.opts).toMatchObject(DEFAULT_JOB_OPTIONS);
        }
        await queue.close();
      }
    } finally {
      await queues.close();
      inspect.disconnect();
    }
  });
});
