/**
 * Fault: Redis killed mid-burst and started again empty (no persistence): every queued,
 * active and finished job, every report in flight and every heartbeat are lost. The
 * outbox rebuilds the queue state: unpublished rows are published when Redis is back, and
 * the recovery sweep republishes the job of every in-flight instance whose job Redis no
 * longer holds (handlers are idempotent: a spawn of a running domain just reports again).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { FAST_RECOVERY_ENV, apiClient, burst, deleteAllAndDrain, invariantsHold, prepare, settle } from "../support/faults.js";
import { PrivateRedis } from "../support/private-services.js";
import { uniqueName } from "../support/services.js";
import { startStack, type Stack } from "../support/stack.js";

let stack: Stack;
let redis: PrivateRedis;
const hosts = [uniqueName("fr-a"), uniqueName("fr-b")];

beforeAll(async () => {
  redis = await PrivateRedis.create();
  stack = await startStack({ schedulers: 1, env: { ...FAST_RECOVERY_ENV, REDIS_URL: redis.url }, agents: hosts.map((host) => ({ host, uri: "test:///default" })) });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await redis?.kill();
});

it("rebuilds the lost queue state from the outbox after Redis restarts empty", async () => {
  const api = apiClient(stack.url, stack.token);
  const { imageId, flavorId } = await prepare(stack);
  let outage: Promise<void> | null = null;
  const started = Date.now();
  try {
    const result = await burst([api], {
      count: 300,
      imageId,
      flavorId,
      deleteEvery: 3,
      onProgress: (n) => {
        if (n === 120 && !outage) {
          outage = (async () => {
            await redis.kill();
            await new Promise((r) => setTimeout(r, 2000));
            await redis.start();
          })();
        }
      },
    });
    await outage;
    expect(result.accepted.length).toBe(300);
    const rows = await settle(stack, result.accepted, 100_000);
    const report = await invariantsHold(stack, api, result.accepted, hosts, redis.url);
    const republished = (await stack.logs()).split("\n").filter((l) => l.includes("republished from the outbox"));
    const republishedJobs = republished.reduce((n, l) => n + Number(/"count":(\d+)/.exec(l)?.[1] ?? 0), 0);
    console.log(
      "fault-redis-restart",
      JSON.stringify({ accepted: result.accepted.length, deletes: result.deleted.length, statuses: result.statuses, ...report, problems: report.problems.slice(0, 10), republishedJobs, settledInMs: Date.now() - started }),
    );
    expect(report.problems).toEqual([]);
    expect(rows.filter((r) => r.vm_state === "error").length).toBe(0);
    const drained = await deleteAllAndDrain(stack, api, result.accepted, hosts, redis.url);
    console.log("fault-redis-restart drained", JSON.stringify(drained));
  } catch (err) {
    console.error(await stack.logs());
    throw err;
  }
}, 300_000);
