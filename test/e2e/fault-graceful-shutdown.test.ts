/**
 * Graceful shutdown: SIGTERM lets each process finish what it holds, then exit 0 —
 * the agent its spawns in flight (their reports reach the conductor after it is gone),
 * the scheduler its current jobs, the API its in-flight requests (every 202 is a stored
 * server; nothing is cut half-way).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { FAST_RECOVERY_ENV, apiClient, prepare, settle } from "../support/faults.js";
import { uniqueName } from "../support/services.js";
import { startStack, waitFor, type Stack } from "../support/stack.js";

let stack: Stack;
const host = uniqueName("gs");

beforeAll(async () => {
  stack = await startStack({
    schedulers: 1,
    env: FAST_RECOVERY_ENV,
    agents: [{ host, uri: "fake://", env: { CIRRUS_AGENT_DRIVER: "fake", CIRRUS_FAKE_SPAWN_DELAY_MS: "4000" } }],
  });
}, 120_000);

afterAll(async () => stack?.stop());

it("finishes the operation in hand on SIGTERM and exits 0 (agent, scheduler, api)", async () => {
  const api = apiClient(stack.url, stack.token);
  const { imageId, flavorId } = await prepare(stack);
  const boot = (name: string) => api("POST", "/v2.1/servers", { server: { name, flavorRef: flavorId, imageRef: imageId, networks: "none" } });
  try {
    // Agent: four spawns in flight (each takes 4 s), then SIGTERM.
    const ids = (await Promise.all([1, 2, 3, 4].map((i) => boot(`gs-${i}`)))).map((r) => r.body.server.id as string);
    await waitFor("the spawns to be in flight", async () => {
      const n = await stack.database.db("instances").whereIn("id", ids).where({ task_state: "spawning" }).count<{ c: number }[]>("* as c");
      return Number(n[0]!.c) === 4;
    }, 30_000, 100);
    await new Promise((r) => setTimeout(r, 500));
    const agentExit = await stack.signal(`agent-${host}`, "SIGTERM");
    expect(agentExit).toBe(0);
    // The agent is gone, yet its spawns finished and were reported: all four become ACTIVE.
    const rows = await settle(stack, ids, 30_000);
    expect(rows.map((r) => r.vm_state)).toEqual(["active", "active", "active", "active"]);

    // Scheduler: SIGTERM in the middle of a burst of placements.
    stack.restart(`agent-${host}`, { CIRRUS_FAKE_SPAWN_DELAY_MS: "0" });
    const burst = Promise.all(Array.from({ length: 40 }, (_, i) => boot(`gs-s-${i}`)));
    await new Promise((r) => setTimeout(r, 300));
    const schedulerExit = await stack.signal("scheduler-0", "SIGTERM");
    expect(schedulerExit).toBe(0);
    const placedIds = (await burst).filter((r) => r.status === 202).map((r) => r.body.server.id as string);
    stack.restart("scheduler-0");
    const placed = await settle(stack, placedIds, 60_000);
    expect(placed.every((r) => r.vm_state === "active")).toBe(true);

    // API: SIGTERM with requests in flight.
    const inflight = Array.from({ length: 60 }, (_, i) => boot(`gs-a-${i}`).then((r) => ({ status: r.status, id: r.body?.server?.id as string | undefined }), (e: Error) => ({ status: 0, id: undefined, err: String(e.cause ?? e) })));
    await new Promise((r) => setTimeout(r, 30));
    const apiExit = await stack.signal("api", "SIGTERM");
    const answers = await Promise.all(inflight);
    expect(apiExit).toBe(0);
    const accepted = answers.filter((a) => a.status === 202).map((a) => a.id!);
    const stored = await stack.database.db("instances").whereIn("id", accepted).count<{ c: number }[]>("* as c");
    expect(Number(stored[0]!.c)).toBe(accepted.length);
    const outcomes: Record<string, number> = {};
    for (const a of answers) outcomes[String(a.status)] = (outcomes[String(a.status)] ?? 0) + 1;
    console.log("fault-graceful-shutdown", JSON.stringify({ agentExit, schedulerExit, apiExit, placedDuringSchedulerStop: placedIds.length, apiOutcomes: outcomes }));
    // Only whole answers: accepted, refused while closing (503), or not connected at all (0).
    expect(answers.every((a) => a.status === 202 || a.status === 503 || a.status === 0)).toBe(true);
    stack.restart("api");
    await waitFor("the API back", async () => (await fetch(`${stack.url}/v2.1/`)).ok, 60_000);
    await settle(stack, accepted, 60_000);
  } catch (err) {
    console.error(await stack.logs());
    throw err;
  }
}, 240_000);
