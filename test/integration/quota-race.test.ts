/**
 * Quotas against the real app on real Postgres: 200 simultaneous boots against room for
 * 10 accept exactly 10; the other 190 get Nova's 403 "Quota exceeded for instances".
 * A deleted server, and a failed one that holds no allocation, give their share back.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MEMBER_P1, bootables, client, createExtApp, registerHost, type ExtApp } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
beforeAll(async () => {
  t = await createExtApp({ enforceQuotas: true });
  ({ imageId } = await bootables(t));
});
afterAll(async () => {
  await t?.close();
});

const boot = (name: string) => client(t, MEMBER_P1).post("/v2.1/servers", { server: { name, flavorRef: "1", imageRef: imageId, networks: "none" } });

describe("instances quota under a race", () => {
  it("200 simultaneous creates against room for 10: exactly 10 accepted, 190 refused with Nova's message", async () => {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => boot(`race-${i}`)));
    const accepted = results.filter((r) => r.status === 202);
    const refused = results.filter((r) => r.status === 403);
    expect(accepted.length).toBe(10);
    expect(refused.length).toBe(190);
    for (const r of refused) expect(r.body.forbidden.message).toMatch(/^Quota exceeded for instances: Requested 1, but already used 10 of 10 instances$/);
    const [row] = await t.database.db("instances").where({ project_id: "p1" }).whereNot("vm_state", "deleted").count<{ n: string }[]>("* as n");
    expect(Number(row!.n)).toBe(10);
  });

  it("a deleted server gives its share back", async () => {
    expect((await boot("one-more")).status).toBe(403);
    const servers = (await client(t, MEMBER_P1).get("/v2.1/servers")).body.servers as { id: string }[];
    expect((await client(t, MEMBER_P1).del(`/v2.1/servers/${servers[0]!.id}`)).status).toBe(204);
    expect((await boot("after-delete")).status).toBe(202);
    expect((await boot("over-again")).status).toBe(403);
  });

  it("a server in ERROR without an allocation (a failed boot) gives its share back; one still on a host does not", async () => {
    const db = t.database.db;
    const [victim] = await db("instances").where({ project_id: "p1" }).whereNot("vm_state", "deleted").orderBy("created_at").limit(2);
    // Still on a host: its allocation keeps counting.
    const { providerId } = await registerHost(t, `quota-host-${randomUUID().slice(0, 8)}`);
    await db("allocations").insert({ provider_id: providerId, consumer_id: victim.id, resource_class: "VCPU", used: 1 });
    await db("instances").where({ id: victim.id }).update({ vm_state: "error", task_state: null });
    expect((await boot("error-on-host")).status).toBe(403);
    // The failed boot released its allocation: the share is free.
    await db("allocations").where({ consumer_id: victim.id }).delete();
    expect((await boot("after-error")).status).toBe(202);
    const limits = await client(t, MEMBER_P1).get("/v2.1/limits");
    expect(limits.body.limits.absolute.totalInstancesUsed).toBe(10);
  });
});
