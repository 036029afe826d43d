/**
 * Boots whose claim was lost (another transaction held or changed the provider) are decided
 * again by the batch's next round, a transaction of its own, away from the provider lost;
 * those whose every claim was lost come back "raced" from a batch, and the scheduler's job
 * places them again at once (placeUntilSettled) instead of leaving them to the
 * stranded-boot sweep 5 to 10 s later.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { placeBatch, placeUntilSettled, type PlacementDeps } from "../../scheduler/place.js";
import { MEMBER_P1, bootables, client, createExtApp, registerHost, type ExtApp, placementDeps } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
let deps: PlacementDeps;
let settleProvider: string;
beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
  ({ providerId: settleProvider } = await registerHost(t, "svc-settle", { vcpus: 64 }));
  deps = placementDeps(t);
});
afterAll(async () => t?.close());

const boot = async (name: string): Promise<string> => {
  const res = await client(t, MEMBER_P1).post("/v2.1/servers", { server: { name, flavorRef: "1", imageRef: imageId, networks: "none" } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.server.id;
};

/** Holds the providers' row locks (all, or one), as another scheduler's claim in flight does, for `ms`. */
async function holdProvider(ms: number, providerId?: string): Promise<{ held: Promise<void>; locked: Promise<void> }> {
  let signal!: () => void;
  const locked = new Promise<void>((resolve) => (signal = resolve));
  const held = t.database.db.transaction(async (trx) => {
    await trx("resource_providers").modify((q) => (providerId ? q.where({ id: providerId }) : q)).forUpdate().select("id");
    signal();
    await new Promise((r) => setTimeout(r, ms));
  });
  return { held, locked };
}

describe("placing raced boots again", () => {
  it("a batch that lost every claim reports raced; placeUntilSettled places them once the provider is free", async () => {
    const ids = [await boot("settle-1"), await boot("settle-2")];
    const first = await holdProvider(300);
    await first.locked;
    const once = await placeBatch(deps, { ids });
    expect(ids.map((id) => once.get(id))).toEqual(["raced", "raced"]);
    await first.held;

    const second = await holdProvider(150);
    await second.locked;
    const settled = await placeUntilSettled(deps, ids);
    await second.held;
    expect(ids.map((id) => settled.get(id))).toEqual(["placed", "placed"]);
    const rows = await t.database.db("instances").whereIn("id", ids).select("host", "task_state");
    expect(rows).toEqual([
      { host: "svc-settle", task_state: "spawning" },
      { host: "svc-settle", task_state: "spawning" },
    ]);
  });

  it("a boot whose claim was lost is placed by the batch's next round on another host", async () => {
    // The second host has a sixteenth of the first's memory and VCPUs, so the first is weighed
    // first; held by another transaction, the first round's claim on it is lost.
    const other = await registerHost(t, "svc-second", { vcpus: 4 });
    await t.database.db("inventories").where({ provider_id: other.providerId, resource_class: "MEMORY_MB" }).update({ total: 4096, max_unit: 4096 });
    const id = await boot("round-2");
    const hold = await holdProvider(400, settleProvider);
    await hold.locked;
    const decided: { ms: number; boots: number }[] = [];
    const outcomes = await placeBatch({ ...deps, onDecided: (ms, boots) => decided.push({ ms, boots }) }, { ids: [id] });
    await hold.held;
    expect(outcomes.get(id)).toBe("placed");
    // Two rounds, each deciding the one boot in memory.
    expect(decided).toEqual([{ ms: expect.any(Number), boots: 1 }, { ms: expect.any(Number), boots: 1 }]);
    expect(decided.every((d) => d.ms > 0 && d.ms < 1000)).toBe(true);
    expect(await t.database.db("instances").where({ id }).first("host", "task_state")).toEqual({ host: "svc-second", task_state: "spawning" });
    const used = await t.database.db("allocations").where({ consumer_id: id }).distinct("provider_id");
    expect(used).toEqual([{ provider_id: other.providerId }]);
  });
});
