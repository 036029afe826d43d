/**
 * Race: two api processes and two schedulers; 300 boots split over both APIs (a third
 * deleted at once), then every surviving server gets the same actions from both APIs at
 * the same moment (stop vs stop, start vs start, pause vs suspend, delete vs reboot).
 * Task_state is the lock: of two conflicting actions exactly one is accepted, the other
 * is 409 (whether the first is still in flight or already done); a delete is always
 * accepted. Afterwards every server is in a final state and the invariants hold.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { FAST_RECOVERY_ENV, apiClient, burst, deleteAllAndDrain, invariantsHold, prepare, settle, type Api } from "../support/faults.js";
import { TEST_REDIS_URL, uniqueName } from "../support/services.js";
import { startStack, type Stack } from "../support/stack.js";

let stack: Stack;
let apis: Api[];
const hosts = [uniqueName("fx-a"), uniqueName("fx-b")];

beforeAll(async () => {
  stack = await startStack({ schedulers: 2, env: FAST_RECOVERY_ENV, agents: hosts.map((host) => ({ host, uri: "test:///default" })) });
  const second = await stack.addApi();
  apis = [apiClient(stack.url, stack.token), apiClient(second, stack.token)];
}, 180_000);

afterAll(async () => stack?.stop());

it("lets exactly one of two racing actions through and ends every server in a final state", async () => {
  const { imageId, flavorId } = await prepare(stack);
  const started = Date.now();
  try {
    const result = await burst(apis, { count: 300, imageId, flavorId, deleteEvery: 3 });
    expect(result.accepted.length).toBe(300);
    const rows = await settle(stack, result.accepted, 90_000);
    const active = rows.filter((r) => r.vm_state === "active").map((r) => r.id);
    const outcomes: Record<string, number> = {};
    const tally = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);
    const pair = async (id: string, a: unknown, b: unknown) => {
      const [x, y] = await Promise.all([apis[0]!("POST", `/v2.1/servers/${id}/action`, a), apis[1]!("POST", `/v2.1/servers/${id}/action`, b)]);
      return [x.status, y.status].sort().join("+");
    };
    // Round 1: the same stop from both APIs: one 202, one 409.
    const round1 = await Promise.all(active.map((id) => pair(id, { "os-stop": null }, { "os-stop": null })));
    for (const o of round1) tally(`stop|stop ${o}`);
    expect(round1.every((o) => o === "202+409"), JSON.stringify(outcomes)).toBe(true);
    await settle(stack, active, 60_000);
    // Round 2: start from both APIs: one 202, one 409 (in flight, or already active).
    const round2 = await Promise.all(active.map((id) => pair(id, { "os-start": null }, { "os-start": null })));
    for (const o of round2) tally(`start|start ${o}`);
    expect(round2.every((o) => o === "202+409"), JSON.stringify(outcomes)).toBe(true);
    await settle(stack, active, 60_000);
    // Round 2b: pause vs suspend (each invalid once the other ran, and locked while it runs): one wins.
    const round2b = await Promise.all(active.map((id) => pair(id, { pause: null }, { suspend: null })));
    for (const o of round2b) tally(`pause|suspend ${o}`);
    expect(round2b.every((o) => o === "202+409"), JSON.stringify(outcomes)).toBe(true);
    await settle(stack, active, 60_000);
    // Round 3: delete vs hard reboot on half of them: the delete is always accepted.
    const half = active.slice(0, Math.floor(active.length / 2));
    const round3 = await Promise.all(
      half.map(async (id) => {
        const [d, s] = await Promise.all([apis[0]!("DELETE", `/v2.1/servers/${id}`), apis[1]!("POST", `/v2.1/servers/${id}/action`, { reboot: { type: "HARD" } })]);
        return `${d.status}/${s.status}`;
      }),
    );
    for (const o of round3) tally(`delete|reboot ${o}`);
    expect(round3.every((o) => o.startsWith("204/"))).toBe(true);
    await settle(stack, result.accepted, 60_000);
    // Every accepted action was carried out: no failed events, one action row per 202.
    const failed = await stack.database.db("instance_action_events").whereIn("action_id", stack.database.db("instance_actions").whereIn("instance_id", active).select("id")).where({ result: "Error" }).count<{ c: number }[]>("* as c");
    expect(Number(failed[0]!.c)).toBe(0);
    const report = await invariantsHold(stack, apis[0]!, result.accepted, hosts, TEST_REDIS_URL);
    console.log(
      "fault-racing-actions",
      JSON.stringify({ accepted: result.accepted.length, deletes: result.deleted.length, statuses: result.statuses, raced: active.length, outcomes, ...report, problems: report.problems.slice(0, 10), settledInMs: Date.now() - started }),
    );
    expect(report.problems).toEqual([]);
    const drained = await deleteAllAndDrain(stack, apis[1]!, result.accepted, hosts, TEST_REDIS_URL);
    console.log("fault-racing-actions drained", JSON.stringify(drained));
  } catch (err) {
    console.error(await stack.logs());
    throw err;
  }
}, 300_000);
