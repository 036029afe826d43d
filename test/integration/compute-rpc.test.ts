/**
 * QueueRpc, the API's request and reply through a host's queue (real Redis, a BullMQ
 * worker per host standing in for its agent): every call is answered, and however many
 * hosts are asked, only the most recently used keep a channel (each holds a Redis
 * connection of its own).
 */
import { Worker } from "bullmq";
import { afterEach, describe, expect, it } from "vitest";
import { QueueRpc } from "../../api/rpc.js";
import { computeQueueName, workerConnection } from "../../common/queues.js";
import { TEST_REDIS_URL, uniqueName } from "../support/services.js";

const instance = { id: "00000000-0000-4000-8000-000000000001", name: "vm", domain_name: "instance-1" } as never;

describe("QueueRpc", () => {
  const workers: Worker[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
  });

  /** An agent for each host that answers a console request after `delayMs`. */
  function agents(prefix: string, hosts: string[], delayMs = 0): void {
    for (const host of hosts) {
      const worker = new Worker(
        computeQueueName(host),
        async (job) => {
          await new Promise((r) => setTimeout(r, delayMs));
          return `console of ${host} for ${job.data.request_id}`;
        },
        { connection: workerConnection(TEST_REDIS_URL), prefix },
      );
      worker.on("error", () => {});
      workers.push(worker);
    }
  }

  it("answers from every host while keeping at most its limit of channels open", async () => {
    const prefix = uniqueName("cirrus-rpc");
    const hosts = Array.from({ length: 8 }, (_, i) => `rpc-host-${i}`);
    agents(prefix, hosts);
    const rpc = new QueueRpc(TEST_REDIS_URL, prefix, 5_000, 3);
    try {
      for (const host of [...hosts, ...hosts.slice(0, 2)]) {
        expect(await rpc.consoleOutput(host, instance, `req-${host}`)).toBe(`console of ${host} for req-${host}`);
        expect(rpc.openChannels).toBeLessThanOrEqual(3);
      }
      expect(rpc.openChannels).toBe(3);
    } finally {
      await rpc.close();
    }
  });

  it("never closes a channel a call still waits on, and shrinks back to its limit after", async () => {
    const prefix = uniqueName("cirrus-rpc");
    const hosts = Array.from({ length: 5 }, (_, i) => `rpc-busy-${i}`);
    agents(prefix, hosts, 300);
    const rpc = new QueueRpc(TEST_REDIS_URL, prefix, 5_000, 2);
    try {
      const answers = await Promise.all(hosts.map((host) => rpc.consoleOutput(host, instance, `req-${host}`)));
      expect(answers).toEqual(hosts.map((host) => `console of ${host} for req-${host}`));
      expect(rpc.openChannels).toBe(2);
    } finally {
      await rpc.close();
    }
  });

  it("gives up on a host nobody answers for within its timeout, and keeps the channel count bounded", async () => {
    const prefix = uniqueName("cirrus-rpc");
    const rpc = new QueueRpc(TEST_REDIS_URL, prefix, 300, 1);
    try {
      const started = Date.now();
      await expect(rpc.consoleOutput("rpc-gone-1", instance, "req-1")).rejects.toThrow();
      await expect(rpc.consoleOutput("rpc-gone-2", instance, "req-2")).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(rpc.openChannels).toBe(1);
    } finally {
      await rpc.close();
    }
  });
});
