/**
 * Which waiting boots a placement batch locks (scheduler/batch-lock.ts), against real
 * Postgres: a job's own multi-create first, its own boot at the head, however large the
 * multi-create; then the oldest other boots up to the batch's size; never a boot another
 * transaction holds, nor one no longer waiting; nothing when the job's own boot is gone.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCK_OPTIONS, lockQuery, type BatchSelection, type LockedBoot } from "../../scheduler/batch-lock.js";
import { transactionBegunWith } from "../../common/db/begun-with.js";
import { MEMBER_P1, bootables, client, createExtApp, type ExtApp } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
});
afterAll(async () => t?.close());

async function boot(name: string, count = 1): Promise<string[]> {
  const res = await client(t, MEMBER_P1).post("/v2.1/servers", {
    server: { name, flavorRef: "1", imageRef: imageId, networks: "none", ...(count > 1 ? { min_count: count, max_count: count } : {}) },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const { reservation_id } = await t.database.db("instances").where({ id: res.body.server.id }).first("reservation_id");
  const rows = await t.database.db("instances").where({ reservation_id }).orderBy("seq").select("id");
  return rows.map((r: { id: string }) => r.id);
}

/** The ids the batch's lock returns, in its order, with its rows locked while `during` runs. */
async function locked(which: BatchSelection, during: () => Promise<void> = async () => {}): Promise<string[]> {
  return transactionBegunWith<LockedBoot, string[]>(t.database.db, (trx) => lockQuery(trx, which), async (_trx, rows) => {
    await during();
    return rows.map((r) => r.id);
  }, LOCK_OPTIONS);
}

describe("the placement batch's lock", () => {
  it("takes the job's multi-create first, its own boot at the head, then the oldest others up to the batch's size", async () => {
    await t.database.db("instances").update({ task_state: null, vm_state: "error" }); // nothing left from other tests
    const older = [...(await boot("old-1")), ...(await boot("old-2")), ...(await boot("old-3"))];
    const multi = await boot("multi", 3);
    expect(multi).toHaveLength(3);
    const newer = await boot("new-1");

    const first = multi[1]!;
    // A batch of 2 still takes the whole multi-create, and nothing else.
    expect(await locked({ pending: 2, first })).toEqual([multi[1], multi[0], multi[2]]);
    // A batch of 5: the multi-create, then the two oldest others.
    expect(await locked({ pending: 5, first })).toEqual([multi[1], multi[0], multi[2], older[0], older[1]]);
    // Without a first boot: the oldest, in order.
    expect(await locked({ pending: 4 })).toEqual([older[0], older[1], older[2], multi[0]]);
    expect(await locked({ pending: 100 })).toEqual([...older, ...multi, ...newer]);
  });

  it("skips boots another transaction holds and boots no longer waiting", async () => {
    await t.database.db("instances").update({ task_state: null, vm_state: "error" });
    const ids = [...(await boot("s-1")), ...(await boot("s-2")), ...(await boot("s-3")), ...(await boot("s-4"))];
    await t.database.db("instances").where({ id: ids[1] }).update({ host: "somewhere", task_state: "spawning" });
    const first = ids[3]!;
    let inner: string[] = [];
    const outer = await locked({ pending: 1 }, async () => {
      // While the oldest is held, a second batch takes the next waiting ones.
      inner = await locked({ pending: 2, first });
    });
    expect(outer).toEqual([ids[0]]);
    expect(inner).toEqual([ids[3], ids[2]]);
  });

  it("takes nothing when the job's own boot no longer waits (another batch took it and its multi-create)", async () => {
    await t.database.db("instances").update({ task_state: null, vm_state: "error" });
    const [older] = await boot("gone-old");
    const multi = await boot("gone-multi", 3);
    await t.database.db("instances").where({ id: multi[0] }).update({ host: "elsewhere", task_state: "spawning" });
    expect(await locked({ pending: 3, first: multi[0]! })).toEqual([]);
    // Nor when it was deleted before its job ran (no row at all).
    expect(await locked({ pending: 3, first: "00000000-0000-4000-8000-00000000dead" })).toEqual([]);
    // The others still wait, for a batch whose own boot does.
    expect(await locked({ pending: 3, first: multi[1]! })).toEqual([multi[1], multi[2], older]);
  });

  it("takes only the boots waiting long enough when asked for a minimum age", async () => {
    await t.database.db("instances").update({ task_state: null, vm_state: "error" });
    const [stale] = await boot("stale");
    const [fresh] = await boot("fresh");
    await t.database.db("instances").where({ id: stale }).update({ updated_at: t.database.db.raw("now() - interval '1 minute'") });
    expect(await locked({ pending: 10, minAgeSec: 5 })).toEqual([stale]);
    expect(await locked({ pending: 10 })).toEqual([stale, fresh]);
  });
});
