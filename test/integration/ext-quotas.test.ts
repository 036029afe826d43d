/** Limits and quota sets at 2.1 (nova-contract 1.5), and quota enforcement at boot. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUOTA_DEFAULTS } from "../../api/quotas/quota.js";
import { MEMBER_P1, MEMBER_P2, admin, bootables, client, createExtApp, type ExtApp } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
beforeAll(async () => {
  t = await createExtApp({ enforceQuotas: true });
  ({ imageId } = await bootables(t));
});
afterAll(async () => {
  await t?.close();
});

const a = () => admin(t);
const p1 = () => client(t, MEMBER_P1);
const boot = (token: string, over: Record<string, unknown> = {}) =>
  client(t, token).post("/v2.1/servers", { server: { name: "q", flavorRef: "1", imageRef: imageId, networks: "none", ...over } });
const instances = async () => Number((await t.database.db("instances").count<{ n: string }[]>("* as n"))[0]!.n);

const NOVA_DEFAULTS = {
  cores: 20,
  fixed_ips: -1,
  floating_ips: 10,
  injected_file_content_bytes: 10240,
  injected_file_path_bytes: 255,
  injected_files: 5,
  instances: 10,
  key_pairs: 100,
  metadata_items: 128,
  ram: 51200,
  security_group_rules: 20,
  security_groups: 10,
  server_group_members: 10,
  server_groups: 10,
};

describe("GET /v2.1/os-quota-sets/{project_id}[/defaults|/detail]", () => {
  it("shows Nova's defaults with the project id", async () => {
    expect(QUOTA_DEFAULTS).toEqual(NOVA_DEFAULTS);
    const res = await p1().get("/v2.1/os-quota-sets/p1");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ quota_set: { id: "p1", ...NOVA_DEFAULTS } });
    const defaults = await p1().get("/v2.1/os-quota-sets/p1/defaults");
    expect(defaults.body).toEqual({ quota_set: { id: "p1", ...NOVA_DEFAULTS } });
  });

  it("detail shows in_use, limit and reserved for every key", async () => {
    expect((await boot(MEMBER_P1)).status).toBe(202);
    const res = await p1().get("/v2.1/os-quota-sets/p1/detail");
    expect(res.status).toBe(200);
    expect(res.body.quota_set.id).toBe("p1");
    expect(res.body.quota_set.instances).toEqual({ in_use: 1, limit: 10, reserved: 0 });
    expect(res.body.quota_set.cores).toEqual({ in_use: 1, limit: 20, reserved: 0 });
    expect(res.body.quota_set.ram).toEqual({ in_use: 512, limit: 51200, reserved: 0 });
    expect(Object.keys(res.body.quota_set).sort()).toEqual(["id", ...Object.keys(NOVA_DEFAULTS)].sort());
  });

  it("a member may not read another project's quotas (403)", async () => {
    expect((await client(t, MEMBER_P2).get("/v2.1/os-quota-sets/p1")).status).toBe(403);
    expect((await client(t, MEMBER_P2).get("/v2.1/os-quota-sets/p1/detail")).status).toBe(403);
    expect((await a().get("/v2.1/os-quota-sets/p1")).status).toBe(200);
  });
});

describe("PUT and DELETE /v2.1/os-quota-sets/{project_id}", () => {
  it("updates given keys (integers or digit strings) and answers the whole set without id", async () => {
    const res = await a().put("/v2.1/os-quota-sets/p2", { quota_set: { instances: 3, cores: "4", ram: -1 } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toEqual({ quota_set: { ...NOVA_DEFAULTS, instances: 3, cores: 4, ram: -1 } });
    expect((await a().get("/v2.1/os-quota-sets/p2")).body.quota_set).toMatchObject({ instances: 3, cores: 4, ram: -1 });
  });

  it("refuses a limit below usage unless forced", async () => {
    const low = await a().put("/v2.1/os-quota-sets/p1", { quota_set: { instances: 0 } });
    expect(low.status).toBe(400);
    expect(low.body.badRequest.message).toBe("Quota limit 0 for instances must be greater than or equal to already used and reserved 1.");
    const forced = await a().put("/v2.1/os-quota-sets/p1", { quota_set: { instances: 0, force: true } });
    expect(forced.status).toBe(200);
    expect(forced.body.quota_set.instances).toBe(0);
  });

  it.each([
    ["unknown key", { quota_set: { bananas: 1 } }],
    ["below -1", { quota_set: { instances: -2 } }],
    ["not a number", { quota_set: { instances: "many" } }],
    ["a float", { quota_set: { instances: 1.5 } }],
    ["no wrapper", { instances: 1 }],
  ])("refuses %s with 400", async (_l, body) => {
    const before = (await a().get("/v2.1/os-quota-sets/p2")).body;
    const res = await a().put("/v2.1/os-quota-sets/p2", body);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect((await a().get("/v2.1/os-quota-sets/p2")).body).toEqual(before);
  });

  it("is admin only", async () => {
    expect((await p1().put("/v2.1/os-quota-sets/p1", { quota_set: { instances: 50 } })).status).toBe(403);
    expect((await p1().del("/v2.1/os-quota-sets/p1")).status).toBe(403);
  });

  it("DELETE reverts to the defaults with 202", async () => {
    const res = await a().del("/v2.1/os-quota-sets/p2");
    expect(res.status).toBe(202);
    expect((await a().get("/v2.1/os-quota-sets/p2")).body.quota_set).toEqual({ id: "p2", ...NOVA_DEFAULTS });
  });
});

describe("GET /v2.1/limits", () => {
  it("answers {limits: {rate: [], absolute: {...}}} with limits and usage", async () => {
    await a().del("/v2.1/os-quota-sets/p1");
    const res = await p1().get("/v2.1/limits");
    expect(res.status).toBe(200);
    expect(res.body.limits.rate).toEqual([]);
    expect(res.body.limits.absolute).toEqual({
      maxImageMeta: 128,
      maxPersonality: 5,
      maxPersonalitySize: 10240,
      maxSecurityGroupRules: 20,
      maxSecurityGroups: 10,
      maxServerMeta: 128,
      maxTotalCores: 20,
      maxTotalFloatingIps: 10,
      maxTotalInstances: 10,
      maxTotalKeypairs: 100,
      maxTotalRAMSize: 51200,
      maxServerGroups: 10,
      maxServerGroupMembers: 10,
      totalCoresUsed: 1,
      totalInstancesUsed: 1,
      totalRAMUsed: 512,
      totalSecurityGroupsUsed: 0,
      totalFloatingIpsUsed: 0,
      totalServerGroupsUsed: 0,
    });
  });

  it("an admin may ask for another project's limits; a member may not", async () => {
    expect((await a().get("/v2.1/limits?tenant_id=p1")).body.limits.absolute.totalInstancesUsed).toBe(1);
    expect((await client(t, MEMBER_P2).get("/v2.1/limits?tenant_id=p1")).status).toBe(403);
  });
});

describe("quota enforcement at boot (CIRRUS_QUOTA_ENFORCE=1)", () => {
  it("refuses the boot past the instances limit with Nova's 403 and stores nothing", async () => {
    await a().put("/v2.1/os-quota-sets/p2", { quota_set: { instances: 2 } });
    expect((await boot(MEMBER_P2)).status).toBe(202);
    expect((await boot(MEMBER_P2)).status).toBe(202);
    const before = await instances();
    const res = await boot(MEMBER_P2);
    expect(res.status).toBe(403);
    expect(res.body.forbidden.message).toBe("Quota exceeded for instances: Requested 1, but already used 2 of 2 instances");
    expect(await instances()).toBe(before);
  });

  it("counts cores and ram from the flavor", async () => {
    await a().put("/v2.1/os-quota-sets/p2", { quota_set: { instances: 10, cores: 9 } });
    const cores = await boot(MEMBER_P2, { flavorRef: "big" });
    expect(cores.status).toBe(403);
    expect(cores.body.forbidden.message).toBe("Quota exceeded for cores: Requested 8, but already used 2 of 9 cores");
    await a().put("/v2.1/os-quota-sets/p2", { quota_set: { cores: -1, ram: 2048 } });
    const ram = await boot(MEMBER_P2, { flavorRef: "big" });
    expect(ram.status).toBe(403);
    expect(ram.body.forbidden.message).toBe("Quota exceeded for ram: Requested 4096, but already used 1024 of 2048 ram");
  });

  it("a deleted server frees its quota", async () => {
    await a().put("/v2.1/os-quota-sets/p2", { quota_set: { instances: 2, ram: -1 } });
    const id = (await client(t, MEMBER_P2).get("/v2.1/servers")).body.servers[0].id;
    expect((await client(t, MEMBER_P2).del(`/v2.1/servers/${id}`)).status).toBe(204);
    expect((await boot(MEMBER_P2)).status).toBe(202);
  });

  it("concurrent boots never exceed the limit (the per-project lock row)", async () => {
    await a().put("/v2.1/os-quota-sets/p1", { quota_set: { instances: 6 } });
    const results = await Promise.all(Array.from({ length: 12 }, () => boot(MEMBER_P1)));
    expect(results.filter((r) => r.status === 202).length).toBe(5);
    expect(results.filter((r) => r.status === 403).length).toBe(7);
    expect((await p1().get("/v2.1/os-quota-sets/p1/detail")).body.quota_set.instances.in_use).toBe(6);
  });

  it("refuses more metadata items than allowed with 403", async () => {
    await a().put("/v2.1/os-quota-sets/p2", { quota_set: { instances: -1, metadata_items: 1 } });
    const res = await boot(MEMBER_P2, { metadata: { a: "1", b: "2" } });
    expect(res.status).toBe(403);
    expect(res.body.forbidden.message).toBe("Maximum number of metadata items exceeds 1");
  });
});
