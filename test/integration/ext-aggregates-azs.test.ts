/**
 * Host aggregates (admin) and availability zones: an aggregate's zone moves its hosts,
 * os-availability-zone and the scheduler's AZ filter follow, and a boot into a zone no
 * host has is refused with 400.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { placeInstance } from "../../scheduler/place.js";
import { MEMBER_P1, admin, bootables, client, createExtApp, registerHost, type ExtApp, placementDeps } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
  await registerHost(t, "az-host-a");
  await registerHost(t, "az-host-b");
  await registerHost(t, "az-host-c", { availability_zone: "edge" });
  await registerHost(t, "az-host-off", { availability_zone: "cold", status: "disabled" });
});
afterAll(async () => t?.close());

const a = () => admin(t);
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/;
const zones = async () =>
  (await client(t, MEMBER_P1).get("/v2.1/os-availability-zone")).body.availabilityZoneInfo.map(
    (z: { zoneName: string; zoneState: { available: boolean } }) => `${z.zoneName}:${z.zoneState.available}`,
  );
const boot = (az?: string) =>
  client(t, MEMBER_P1).post("/v2.1/servers", {
    server: { name: "z", flavorRef: "1", imageRef: imageId, networks: "none", ...(az ? { availability_zone: az } : {}) },
  });

describe("os-availability-zone before any aggregate", () => {
  it("lists zones from the compute services: nova by default, disabled-only zones unavailable", async () => {
    const res = await client(t, MEMBER_P1).get("/v2.1/os-availability-zone");
    expect(res.status).toBe(200);
    expect(res.body.availabilityZoneInfo).toEqual([
      { zoneName: "edge", zoneState: { available: true }, hosts: null },
      { zoneName: "nova", zoneState: { available: true }, hosts: null },
      { zoneName: "cold", zoneState: { available: false }, hosts: null },
    ]);
  });

  it("detail (admin) shows hosts and their nova-compute state", async () => {
    const res = await a().get("/v2.1/os-availability-zone/detail");
    expect(res.status).toBe(200);
    const nova = res.body.availabilityZoneInfo.find((z: { zoneName: string }) => z.zoneName === "nova");
    expect(Object.keys(nova.hosts).sort()).toEqual(["az-host-a", "az-host-b"]);
    expect(nova.hosts["az-host-a"]["nova-compute"]).toMatchObject({ active: true, available: true });
    expect(nova.hosts["az-host-a"]["nova-compute"].updated_at).toMatch(TIME);
    expect(res.body.availabilityZoneInfo.find((z: { zoneName: string }) => z.zoneName === "cold").hosts).toBeNull();
    expect((await client(t, MEMBER_P1).get("/v2.1/os-availability-zone/detail")).status).toBe(403);
  });
});

describe("os-aggregates", () => {
  let id: number;

  it("creates: 200 with the 2.1 fields and no hosts or metadata", async () => {
    const res = await a().post("/v2.1/os-aggregates", { aggregate: { name: "rack1", availability_zone: "west" } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const g = res.body.aggregate;
    expect(Object.keys(g).sort()).toEqual(["availability_zone", "created_at", "deleted", "deleted_at", "id", "name", "updated_at"]);
    expect(g).toMatchObject({ name: "rack1", availability_zone: "west", deleted: false, deleted_at: null, updated_at: null });
    expect(g.id).toBeTypeOf("number");
    expect(g.created_at).toMatch(TIME);
    id = g.id;
  });

  it("a zone-less aggregate has availability_zone null", async () => {
    const res = await a().post("/v2.1/os-aggregates", { aggregate: { name: "plain" } });
    expect(res.status).toBe(200);
    expect(res.body.aggregate.availability_zone).toBeNull();
  });

  it("a duplicate name is 409", async () => {
    const res = await a().post("/v2.1/os-aggregates", { aggregate: { name: "rack1" } });
    expect(res.status).toBe(409);
    expect(res.body.conflictingRequest.message).toBe("Aggregate rack1 already exists.");
  });

  it.each([
    ["missing name", { aggregate: {} }],
    ["blank name", { aggregate: { name: "  " } }],
    ["zone with a colon", { aggregate: { name: "x", availability_zone: "a:b" } }],
    ["unknown field", { aggregate: { name: "x", hosts: [] } }],
    ["no wrapper", { name: "x" }],
  ])("create refuses %s with 400", async (_l, body) => {
    const res = await a().post("/v2.1/os-aggregates", body);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
  });

  it("shows and lists with hosts and metadata (the zone is also in metadata)", async () => {
    const res = await a().get(`/v2.1/os-aggregates/${id}`);
    expect(res.status).toBe(200);
    expect(res.body.aggregate).toMatchObject({ id, name: "rack1", hosts: [], metadata: { availability_zone: "west" } });
    const list = await a().get("/v2.1/os-aggregates");
    expect(list.body.aggregates.map((g: { name: string }) => g.name)).toEqual(["rack1", "plain"]);
  });

  it("404 for an unknown or malformed id", async () => {
    const res = await a().get("/v2.1/os-aggregates/9999");
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.message).toBe("Aggregate 9999 could not be found.");
    expect((await a().get("/v2.1/os-aggregates/abc")).status).toBe(404);
    expect((await a().put("/v2.1/os-aggregates/9999", { aggregate: { name: "z" } })).status).toBe(404);
    expect((await a().del("/v2.1/os-aggregates/9999")).status).toBe(404);
    expect((await a().post("/v2.1/os-aggregates/9999/action", { add_host: { host: "az-host-a" } })).status).toBe(404);
  });

  it("add_host puts the host in the aggregate's zone; os-availability-zone follows", async () => {
    const res = await a().post(`/v2.1/os-aggregates/${id}/action`, { add_host: { host: "az-host-a" } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.aggregate.hosts).toEqual(["az-host-a"]);
    expect(await zones()).toEqual(["edge:true", "nova:true", "west:true", "cold:false"]);
    const services = await a().get("/v2.1/os-services?host=az-host-a");
    expect(services.status).toBe(200);
    expect(services.body.services[0].zone).toBe("west");
  });

  it("add_host: unknown host 404, a host already there 409, a host in another zone 409", async () => {
    const unknown = await a().post(`/v2.1/os-aggregates/${id}/action`, { add_host: { host: "ghost" } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.itemNotFound.message).toBe("Compute host ghost could not be found.");
    const twice = await a().post(`/v2.1/os-aggregates/${id}/action`, { add_host: { host: "az-host-a" } });
    expect(twice.status).toBe(409);
    expect(twice.body.conflictingRequest.message).toBe(`Aggregate ${id} already has host az-host-a.`);
    const other = await a().post("/v2.1/os-aggregates", { aggregate: { name: "rack2", availability_zone: "east" } });
    const clash = await a().post(`/v2.1/os-aggregates/${other.body.aggregate.id}/action`, { add_host: { host: "az-host-a" } });
    expect(clash.status).toBe(409);
    expect(clash.body.conflictingRequest.message).toContain("One or more hosts already in availability zone(s) ['west']");
    // A zone-less aggregate may share the host.
    const plain = (await a().get("/v2.1/os-aggregates")).body.aggregates.find((g: { name: string }) => g.name === "plain");
    expect((await a().post(`/v2.1/os-aggregates/${plain.id}/action`, { add_host: { host: "az-host-a" } })).status).toBe(200);
    expect((await a().post(`/v2.1/os-aggregates/${plain.id}/action`, { remove_host: { host: "az-host-a" } })).status).toBe(200);
    expect((await a().del(`/v2.1/os-aggregates/${other.body.aggregate.id}`)).status).toBe(200);
  });

  it("set_metadata merges, null removes, and availability_zone moves the zone", async () => {
    const res = await a().post(`/v2.1/os-aggregates/${id}/action`, { set_metadata: { metadata: { ssd: "true", gpu: "no" } } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.aggregate.metadata).toEqual({ availability_zone: "west", ssd: "true", gpu: "no" });
    const res2 = await a().post(`/v2.1/os-aggregates/${id}/action`, { set_metadata: { metadata: { gpu: null, availability_zone: "north" } } });
    expect(res2.body.aggregate.metadata).toEqual({ availability_zone: "north", ssd: "true" });
    expect(res2.body.aggregate.availability_zone).toBe("north");
    expect(res2.body.aggregate.updated_at).toMatch(TIME);
    expect(await zones()).toContain("north:true");
    expect(await zones()).not.toContain("west:true");
    const bad = await a().post(`/v2.1/os-aggregates/${id}/action`, { set_metadata: { metadata: { k: 5 } } });
    expect(bad.status).toBe(400);
  });

  it("PUT renames and changes the zone; a taken name is 409; an empty body 400", async () => {
    const res = await a().put(`/v2.1/os-aggregates/${id}`, { aggregate: { name: "rack-one", availability_zone: "west" } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.aggregate).toMatchObject({ name: "rack-one", availability_zone: "west", hosts: ["az-host-a"] });
    expect(res.body.aggregate.metadata.availability_zone).toBe("west");
    const taken = await a().put(`/v2.1/os-aggregates/${id}`, { aggregate: { name: "plain" } });
    expect(taken.status).toBe(409);
    expect((await a().put(`/v2.1/os-aggregates/${id}`, { aggregate: {} })).status).toBe(400);
  });

  it("bad action bodies are 400", async () => {
    for (const body of [{}, { add_host: {} }, { add_host: { host: "az-host-a", x: 1 } }, { evacuate: {} }, { set_metadata: {} }]) {
      const res = await a().post(`/v2.1/os-aggregates/${id}/action`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
  });

  it("is admin only", async () => {
    const m = client(t, MEMBER_P1);
    for (const res of [
      await m.get("/v2.1/os-aggregates"),
      await m.post("/v2.1/os-aggregates", { aggregate: { name: "mine" } }),
      await m.get(`/v2.1/os-aggregates/${id}`),
      await m.put(`/v2.1/os-aggregates/${id}`, { aggregate: { name: "mine" } }),
      await m.del(`/v2.1/os-aggregates/${id}`),
      await m.post(`/v2.1/os-aggregates/${id}/action`, { add_host: { host: "az-host-b" } }),
    ]) {
      expect(res.status).toBe(403);
      expect(res.body.forbidden.message).toMatch(/os-aggregates/);
    }
  });
});

describe("boots and the scheduler use the aggregate's zone", () => {
  it("a zone no host has is 400 and stores nothing", async () => {
    const before = Number((await t.database.db("instances").count<{ n: string }[]>("* as n"))[0]!.n);
    for (const az of ["atlantis", "cold", "east"]) {
      const res = await boot(az);
      expect(res.status, az).toBe(400);
      expect(res.body.badRequest.message).toBe("The requested availability zone is not available");
    }
    expect(Number((await t.database.db("instances").count<{ n: string }[]>("* as n"))[0]!.n)).toBe(before);
  });

  it("a boot into the aggregate's zone lands on the aggregate's host", async () => {
    const deps = placementDeps(t);
    for (const [az, expected] of [
      ["west", ["az-host-a"]],
      ["edge", ["az-host-c"]],
      ["nova", ["az-host-b"]],
    ] as const) {
      const res = await boot(az);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect(await placeInstance(deps, res.body.server.id, `req-${randomUUID()}`)).toBe("placed");
      const row = await t.database.db("instances").where({ id: res.body.server.id }).first("host");
      expect(expected).toContain(row.host);
    }
  });

  it("remove_host returns the host to its own zone; deleting an aggregate with hosts is 400", async () => {
    const agg = (await a().get("/v2.1/os-aggregates")).body.aggregates.find((g: { name: string }) => g.name === "rack-one");
    const busy = await a().del(`/v2.1/os-aggregates/${agg.id}`);
    expect(busy.status).toBe(400);
    expect(busy.body.badRequest.message).toBe(`Cannot remove aggregate ${agg.id}. Reason: Host aggregate is not empty.`);
    const rm = await a().post(`/v2.1/os-aggregates/${agg.id}/action`, { remove_host: { host: "az-host-a" } });
    expect(rm.status).toBe(200);
    expect(rm.body.aggregate.hosts).toEqual([]);
    const again = await a().post(`/v2.1/os-aggregates/${agg.id}/action`, { remove_host: { host: "az-host-a" } });
    expect(again.status).toBe(404);
    expect(again.body.itemNotFound.message).toBe(`Cannot remove host az-host-a in aggregate ${agg.id}`);
    expect(await zones()).toEqual(["edge:true", "nova:true", "cold:false"]);
    expect((await boot("west")).status).toBe(400);
    const del = await a().del(`/v2.1/os-aggregates/${agg.id}`);
    expect(del.status).toBe(200);
    expect((await a().get(`/v2.1/os-aggregates/${agg.id}`)).status).toBe(404);
  });
});
