/**
 * Server groups at 2.1 (policies list form), joining one with os:scheduler_hints.group
 * on boot, and the scheduler honouring the policy: placeInstance run directly against
 * the test database with registered hosts.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { placeInstance, type PlacementDeps } from "../../scheduler/place.js";
import { MEMBER_P1, MEMBER_P2, admin, bootables, client, createExtApp, registerHost, type ExtApp, placementDeps } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
let deps: PlacementDeps;
beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
  deps = placementDeps(t);
});
afterAll(async () => t?.close());

const p1 = () => client(t, MEMBER_P1);
const createGroup = async (token: string, name: string, policy: string) => {
  const res = await client(t, token).post("/v2.1/os-server-groups", { server_group: { name, policies: [policy] } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.server_group.id as string;
};
const boot = (token: string, group?: string, over: Record<string, unknown> = {}) =>
  client(t, token).post("/v2.1/servers", {
    server: { name: "member", flavorRef: "1", imageRef: imageId, networks: "none", ...over },
    ...(group !== undefined ? { "os:scheduler_hints": { group } } : {}),
  });
const bootOk = async (token: string, group?: string, over: Record<string, unknown> = {}) => {
  const res = await boot(token, group, over);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.server.id as string;
};
const groupCount = async () => Number((await t.database.db("server_groups").count<{ n: string }[]>("* as n"))[0]!.n);
const hostOf = async (id: string) => (await t.database.db("instances").where({ id }).first("host")).host as string | null;

describe("POST /v2.1/os-server-groups", () => {
  it("creates a group: 200 {id, name, policies, members, metadata} (2.1 shape)", async () => {
    const res = await p1().post("/v2.1/os-server-groups", { server_group: { name: "web", policies: ["anti-affinity"] } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(Object.keys(res.body.server_group).sort()).toEqual(["id", "members", "metadata", "name", "policies"]);
    expect(res.body.server_group).toMatchObject({ name: "web", policies: ["anti-affinity"], members: [], metadata: {} });
    expect(res.body.server_group.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each(["affinity", "soft-affinity", "soft-anti-affinity"])("accepts policy %s", async (policy) => {
    const res = await p1().post("/v2.1/os-server-groups", { server_group: { name: `g-${policy}`, policies: [policy] } });
    expect(res.status).toBe(200);
    expect(res.body.server_group.policies).toEqual([policy]);
  });

  describe("bad input is 400 and stores nothing", () => {
    const cases: [string, unknown][] = [
      ["unknown policy", { server_group: { name: "x", policies: ["spread"] } }],
      ["two policies", { server_group: { name: "x", policies: ["affinity", "anti-affinity"] } }],
      ["empty policies", { server_group: { name: "x", policies: [] } }],
      ["missing policies", { server_group: { name: "x" } }],
      ["the 2.64 policy string", { server_group: { name: "x", policy: "affinity" } }],
      ["missing name", { server_group: { policies: ["affinity"] } }],
      ["blank name", { server_group: { name: "  ", policies: ["affinity"] } }],
      ["name too long", { server_group: { name: "x".repeat(256), policies: ["affinity"] } }],
      ["no wrapper", { name: "x", policies: ["affinity"] }],
      ["rules (2.64) not accepted", { server_group: { name: "x", policies: ["anti-affinity"], rules: {} } }],
    ];
    it.each(cases)("%s", async (_label, body) => {
      const before = await groupCount();
      const res = await p1().post("/v2.1/os-server-groups", body);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.badRequest.code).toBe(400);
      expect(await groupCount()).toBe(before);
    });
  });

  it("refuses a group over the server_groups quota with 403", async () => {
    await admin(t).put("/v2.1/os-quota-sets/p2", { quota_set: { server_groups: 1 } });
    await createGroup(MEMBER_P2, "only", "affinity");
    const res = await client(t, MEMBER_P2).post("/v2.1/os-server-groups", { server_group: { name: "two", policies: ["affinity"] } });
    expect(res.status).toBe(403);
    expect(res.body.forbidden.message).toBe("Quota exceeded, too many server groups.");
    await admin(t).del("/v2.1/os-quota-sets/p2");
  });
});

describe("GET and DELETE /v2.1/os-server-groups[/{id}]", () => {
  it("lists the caller's project's groups; an admin may ask for all projects", async () => {
    const mine = await p1().get("/v2.1/os-server-groups");
    expect(mine.status).toBe(200);
    expect(mine.body.server_groups.map((g: { name: string }) => g.name).sort()).toEqual(["g-affinity", "g-soft-affinity", "g-soft-anti-affinity", "web"]);
    const theirs = await client(t, MEMBER_P2).get("/v2.1/os-server-groups");
    expect(theirs.body.server_groups.map((g: { name: string }) => g.name)).toEqual(["only"]);
    expect((await admin(t).get("/v2.1/os-server-groups")).body.server_groups).toEqual([]);
    expect((await admin(t).get("/v2.1/os-server-groups?all_projects=1")).body.server_groups.length).toBe(5);
    expect((await p1().get("/v2.1/os-server-groups?limit=2")).body.server_groups.length).toBe(2);
    expect((await p1().get("/v2.1/os-server-groups?limit=2&offset=3")).body.server_groups.length).toBe(1);
  });

  it("shows a group; 404 for unknown, malformed, or another project's", async () => {
    const id = await createGroup(MEMBER_P1, "shown", "affinity");
    const res = await p1().get(`/v2.1/os-server-groups/${id}`);
    expect(res.status).toBe(200);
    expect(res.body.server_group).toEqual({ id, name: "shown", policies: ["affinity"], members: [], metadata: {} });
    const missing = randomUUID();
    const nf = await p1().get(`/v2.1/os-server-groups/${missing}`);
    expect(nf.status).toBe(404);
    expect(nf.body.itemNotFound.message).toBe(`Instance group ${missing} could not be found.`);
    expect((await p1().get("/v2.1/os-server-groups/not-a-uuid")).status).toBe(404);
    expect((await client(t, MEMBER_P2).get(`/v2.1/os-server-groups/${id}`)).status).toBe(404);
    expect((await client(t, MEMBER_P2).del(`/v2.1/os-server-groups/${id}`)).status).toBe(404);
  });

  it("deletes with 204, then 404", async () => {
    const id = await createGroup(MEMBER_P1, "doomed", "affinity");
    const res = await p1().del(`/v2.1/os-server-groups/${id}`);
    expect(res.status).toBe(204);
    expect((await p1().get(`/v2.1/os-server-groups/${id}`)).status).toBe(404);
    expect((await p1().del(`/v2.1/os-server-groups/${id}`)).status).toBe(404);
  });
});

describe("joining a group on boot", () => {
  it("records membership in the boot transaction; members are listed; a deleted member leaves", async () => {
    const group = await createGroup(MEMBER_P1, "joined", "anti-affinity");
    const a = await bootOk(MEMBER_P1, group);
    const b = await bootOk(MEMBER_P1, group);
    const shown = await p1().get(`/v2.1/os-server-groups/${group}`);
    expect(shown.body.server_group.members).toEqual([a, b]);
    expect((await p1().del(`/v2.1/servers/${a}`)).status).toBe(204);
    expect((await p1().get(`/v2.1/os-server-groups/${group}`)).body.server_group.members).toEqual([b]);
  });

  it("accepts the legacy OS-SCH-HNT:scheduler_hints key", async () => {
    const group = await createGroup(MEMBER_P1, "legacy", "affinity");
    const res = await client(t, MEMBER_P1).post("/v2.1/servers", {
      server: { name: "legacy", flavorRef: "1", imageRef: imageId, networks: "none" },
      "OS-SCH-HNT:scheduler_hints": { group },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect((await p1().get(`/v2.1/os-server-groups/${group}`)).body.server_group.members).toEqual([res.body.server.id]);
  });

  it("an unknown group, another project's group or a malformed id is 400 and stores nothing", async () => {
    const theirs = await createGroup(MEMBER_P2, "theirs", "affinity");
    const before = Number((await t.database.db("instances").count<{ n: string }[]>("* as n"))[0]!.n);
    const unknown = randomUUID();
    const r1 = await boot(MEMBER_P1, unknown);
    expect(r1.status).toBe(400);
    expect(r1.body.badRequest.message).toBe(`Instance group ${unknown} could not be found.`);
    const r2 = await boot(MEMBER_P1, theirs);
    expect(r2.status).toBe(400);
    expect(r2.body.badRequest.message).toBe(`Instance group ${theirs} could not be found.`);
    expect((await boot(MEMBER_P1, "not-a-uuid")).status).toBe(400);
    expect((await boot(MEMBER_P1, 42 as unknown as string)).status).toBe(400);
    expect(Number((await t.database.db("instances").count<{ n: string }[]>("* as n"))[0]!.n)).toBe(before);
  });

  it("refuses a member over the server_group_members quota with 403", async () => {
    const group = await createGroup(MEMBER_P1, "small", "soft-affinity");
    await admin(t).put("/v2.1/os-quota-sets/p1", { quota_set: { server_group_members: 1 } });
    await bootOk(MEMBER_P1, group);
    const res = await boot(MEMBER_P1, group);
    expect(res.status).toBe(403);
    expect(res.body.forbidden.message).toBe("Quota exceeded, too many servers in group");
    await admin(t).del("/v2.1/os-quota-sets/p1");
  });
});

describe("the scheduler honours the group's policy", () => {
  beforeAll(async () => {
    await registerHost(t, "sg-host-a");
    await registerHost(t, "sg-host-b");
    // This file makes more than Nova's default of 10 groups in p1.
    expect((await admin(t).put("/v2.1/os-quota-sets/p1", { quota_set: { server_groups: -1 } })).status).toBe(200);
  });

  const place = async (id: string) => placeInstance(deps, id, `req-${randomUUID()}`);

  it("anti-affinity: members on different hosts; a third with two hosts finds no valid host", async () => {
    const group = await createGroup(MEMBER_P1, "anti", "anti-affinity");
    const ids = [await bootOk(MEMBER_P1, group), await bootOk(MEMBER_P1, group), await bootOk(MEMBER_P1, group)];
    expect(await place(ids[0]!)).toBe("placed");
    expect(await place(ids[1]!)).toBe("placed");
    expect(new Set([await hostOf(ids[0]!), await hostOf(ids[1]!)])).toEqual(new Set(["sg-host-a", "sg-host-b"]));
    expect(await place(ids[2]!)).toBe("no_valid_host");
    const fault = await t.database.db("instance_faults").where({ instance_id: ids[2] }).first();
    expect(fault.details).toContain("ServerGroupAntiAffinityFilter returned 0 host(s)");
  });

  it("affinity: every member on the first member's host", async () => {
    const group = await createGroup(MEMBER_P1, "aff", "affinity");
    const ids = [await bootOk(MEMBER_P1, group), await bootOk(MEMBER_P1, group), await bootOk(MEMBER_P1, group)];
    for (const id of ids) expect(await place(id)).toBe("placed");
    const hosts = await Promise.all(ids.map(hostOf));
    expect(new Set(hosts).size).toBe(1);
  });

  it("soft-affinity: prefers the member's host even when another host has more room", async () => {
    const group = await createGroup(MEMBER_P1, "soft-aff", "soft-affinity");
    const first = await bootOk(MEMBER_P1, group);
    expect(await place(first)).toBe("placed");
    const firstHost = await hostOf(first);
    // Load the first member's host so RAM and CPU spreading alone would pick the other one.
    const provider = await t.database.db("resource_providers").where({ name: firstHost }).first("id");
    const filler = randomUUID();
    await t.database.db("allocations").insert([
      { provider_id: provider.id, consumer_id: filler, resource_class: "VCPU", used: 10 },
      { provider_id: provider.id, consumer_id: filler, resource_class: "MEMORY_MB", used: 40000 },
    ]);
    const loose = await bootOk(MEMBER_P1);
    expect(await place(loose)).toBe("placed");
    expect(await hostOf(loose)).not.toBe(firstHost);
    const second = await bootOk(MEMBER_P1, group);
    expect(await place(second)).toBe("placed");
    expect(await hostOf(second)).toBe(firstHost);
    await t.database.db("allocations").where({ consumer_id: filler }).delete();
  });

  it("soft-anti-affinity: spreads members when it can, and still places when it cannot", async () => {
    const group = await createGroup(MEMBER_P1, "soft-anti", "soft-anti-affinity");
    const ids = [await bootOk(MEMBER_P1, group), await bootOk(MEMBER_P1, group), await bootOk(MEMBER_P1, group)];
    for (const id of ids) expect(await place(id)).toBe("placed");
    const hosts = await Promise.all(ids.map(hostOf));
    expect(new Set(hosts.slice(0, 2)).size).toBe(2);
    expect(hosts[2]).not.toBeNull();
  });

  it("a deleted member no longer counts for anti-affinity", async () => {
    const group = await createGroup(MEMBER_P1, "anti2", "anti-affinity");
    const a = await bootOk(MEMBER_P1, group);
    const b = await bootOk(MEMBER_P1, group);
    expect(await place(a)).toBe("placed");
    expect(await place(b)).toBe("placed");
    // Mark one deleted, as the conductor does when its host reports the delete.
    await t.database.db("instances").where({ id: a }).update({ vm_state: "deleted", task_state: null, deleted_at: t.database.db.fn.now() });
    const c = await bootOk(MEMBER_P1, group);
    expect(await place(c)).toBe("placed");
    expect(await hostOf(c)).toBe(await hostOf(a));
  });
});
