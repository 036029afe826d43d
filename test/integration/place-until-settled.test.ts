/**
 * Boots whose every claim was lost (another transaction held or changed the provider)
 * come back "raced" from a batch; the scheduler's job places them again at once
 * (placeUntilSettled) instead of leaving them to the stranded-boot sweep 5 to 10 s later.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { placeBatch, placeUntilSettled, type PlacementDeps } from "../../scheduler/place.js";
import { MEMBER_P1, bootables, client, createExtApp, registerHost, type ExtApp, placementDeps } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
let deps: PlacementDeps;
beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
  await registerHost(t, "svc-settle");
  deps = placementDeps(t);
});
afterAll(async () => t?.close());

const boot = async (name: string): Promise<string> => {
  const res = await client(t, MEMBER_P1).post("/v2.1/servers", { server: { name, flavorRef: "1", imageRef: imageId, networks: "none" } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.server.id;
};

/** Holds the only provider's row lock, as another scheduler's claim in flight does, for `ms`. */
async function holdProvider(ms: number): Promise<{ held: Promise<void>; locked: Promise<void> }> {
  let signal!: () => void;
  const locked = new Promise<void>((resolve) => (signal = resolve));
  const held = t.database.db.transaction(async (trx) => {
    await trx("resource_providers").forUpdate().select("id");
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
});
