/**
 * Fault: kill -9 of the only scheduler in the middle of a burst of 300 boots and ~100
 * deletes, restarted 5 s later. Schedule jobs it held are redelivered (BullMQ stalled
 * jobs), reports wait in their queue, and every accepted request ends in a final state.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { FAST_RECOVERY_ENV, apiClient, burst, deleteAllAndDrain, invariantsHold, prepare, settle } from "../support/faults.js";
import { TEST_REDIS_URL, uniqueName } from "../support/services.js";
import { startStack, type Stack } from "../support/stack.js";

let stack: Stack;
const hosts = [uniqueName("fs-a"), uniqueName("fs-b")];

beforeAll(async () => {
  stack = await startStack({ schedulers: 1, env: FAST_RECOVERY_ENV, agents: hosts.map((host) => ({ host, uri: "test:///default" })) });
}, 120_000);

afterAll(async () => stack?.stop());

it("loses nothing when the scheduler is killed mid-burst and restarted after 5 s", async () => {
  const api = apiClient(stack.url, stack.token);
  const { imageId, flavorId } = await prepare(stack);
  let killed: Promise<unknown> | null = null;
  const started = Date.now();
  try {
    const result = await burst([api], {
      count: 300,
      imageId,
      flavorId,
      deleteEvery: 3,
      onProgress: (n) => {
        if (n === 100 && !killed) {
          killed = stack.signal("scheduler-0", "SIGKILL").then(async (code) => {
            await new Promise((r) => setTimeout(r, 5000));
            stack.restart("scheduler-0");
            return code;
          });
        }
      },
    });
    expect(await killed).toBe("SIGKILL");
    expect(result.accepted.length).toBe(300);
    const rows = await settle(stack, result.accepted, 90_000);
    const report = await invariantsHold(stack, api, result.accepted, hosts, TEST_REDIS_URL);
    console.log("fault-scheduler-kill", JSON.stringify({ accepted: result.accepted.length, deletes: result.deleted.length, statuses: result.statuses, ...report, problems: report.problems.slice(0, 10), settledInMs: Date.now() - started }));
    expect(report.problems).toEqual([]);
    expect(rows.filter((r) => r.vm_state === "error").length).toBe(0);
    const drained = await deleteAllAndDrain(stack, api, result.accepted, hosts, TEST_REDIS_URL);
    console.log("fault-scheduler-kill drained", JSON.stringify(drained));
  } catch (err) {
    console.error(await stack.logs());
    throw err;
  }
}, 240_000);
