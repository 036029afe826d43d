/**
 * Batches placed at the same time by one scheduler process share its view of the hosts,
 * and leave each other's claims alone: a batch does not choose a provider another batch
 * of the process is claiming, and a claim won is in the view at once. Before, the two
 * batches a scheduler runs at once chose the same best hosts, one lost every claim to the
 * other and decided again (B4 at 1,000 hosts, one scheduler: 1,248 claims lost for 2,000
 * boots, docs/scheduler.md).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HostStateView } from "../../scheduler/host-state-view.js";
import { placeBatch, type PlacementDeps } from "../../scheduler/place.js";
import { MEMBER_P1, bootables, client, createExtApp, registerHost, type ExtApp, placementDeps } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
let lateProvider: string;
beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
  for (let i = 1; i <= 6; i++) await registerHost(t, `svc-same-${i}`, { vcpus: 8 });
  ({ providerId: lateProvider } = await registerHost(t, "svc-late", { vcpus: 8 }));
});
afterAll(async () => t?.close());

const boot = async (name: string): Promise<string> => {
  const res = await client(t, MEMBER_P1).post("/v2.1/servers", { server: { name, flavorRef: "1", imageRef: imageId, networks: "none" } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.server.id;
};

describe("batches of one process", () => {
  it("two batches placed at once over identical hosts choose different hosts and lose no claim", async () => {
    const a = [await boot("a-1"), await boot("a-2"), await boot("a-3")];
    const b = [await boot("b-1"), await boot("b-2"), await boot("b-3")];
    const view = new HostStateView(t.database.db);
    await view.refresh();
    const rounds: number[] = [];
    const deps: PlacementDeps = placementDeps(t, { view, onDecided: (_ms, boots) => rounds.push(boots) });
    const [first, second] = await Promise.all([placeBatch(deps, { ids: a }), placeBatch(deps, { ids: b })]);
    expect([...a.map((id) => first.get(id)), ...b.map((id) => second.get(id))]).toEqual(Array(6).fill("placed"));
    // One round each: no claim lost, so nothing decided again.
    expect(rounds).toEqual([3, 3]);
    const hosts = await t.database.db("instances").whereIn("id", [...a, ...b]).pluck("host");
    expect(new Set(hosts).size).toBe(6);
    expect(view.claiming.size).toBe(0);
  });

  it("a won claim is in the view at once, and a read made before it keeps its usage but not its service fields", async () => {
    const view = new HostStateView(t.database.db);
    await view.refresh();
    const before = view.hosts().find((h) => h.providerId === lateProvider)!;
    const generation = before.generation;
    // As place.ts does with a won claim: the batch's copy, its usage and the generation its claim set.
    const copy = { ...before, resources: { ...before.resources, VCPU: { ...before.resources.VCPU!, used: 3 } }, instanceCount: 3, generation: generation + 3 };
    view.applyWon(copy);
    expect([before.generation, before.resources.VCPU!.used, before.instanceCount]).toEqual([generation + 3, 3, 3]);
    // A read of the row from before that claim (the database still holds the old generation
    // here), which also sees the service disabled since.
    await t.database.db("compute_services").where({ host: "svc-late" }).update({ status: "disabled" });
    await view.reload(t.database.db, [lateProvider]);
    expect([before.generation, before.resources.VCPU!.used, before.instanceCount, before.enabled]).toEqual([generation + 3, 3, 3, false]);
    // An older copy than the view holds changes nothing.
    view.applyWon({ ...copy, generation: generation + 1, instanceCount: 1 });
    expect(before.instanceCount).toBe(3);
  });
});
