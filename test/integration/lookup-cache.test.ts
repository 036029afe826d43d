/**
 * Remembered boot look-ups (api/servers/lookup-cache.ts): a boot that asks what an
 * accepted one asked skips the look-up, and its write checks the look-up's fingerprint.
 * Whatever changed in between (the image, the flavor, a subnet, a quota), the boot gets
 * the answer a fresh look-up gives and a refused boot writes nothing.
 */
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flavorAndImage } from "../support/boot-fixtures.js";
import { ADMIN_TOKEN, createTestApp, tableCounts, type TestApp } from "../support/services.js";
import { admin, bootables, client, createExtApp, MEMBER_P1, type ExtApp } from "./ext-support.js";

let t: TestApp;
const auth = { "X-Auth-Token": ADMIN_TOKEN };
let imageId: string;
let netId: string;
let sql: string[] = [];

const srv = () => request(t.app.server);
const isLookup = (q: string) => q.includes("row_to_json(f)");
const isWrite = (q: string) => q.startsWith("WITH cand0");

beforeAll(async () => {
  t = await createTestApp({ enforceQuotas: true });
  ({ imageId } = await flavorAndImage(t.app, auth));
  const net = await srv().post("/v2.0/networks").set(auth).send({ network: { name: "private" } });
  netId = net.body.network.id;
  expect((await srv().post("/v2.0/subnets").set(auth).send({ subnet: { network_id: netId, cidr: "10.9.0.0/24", ip_version: 4 } })).status).toBe(201);
  // Room for every boot of this file in the admin project's quota.
  expect((await srv().put("/v2.1/os-quota-sets/admin").set(auth).send({ quota_set: { instances: 100, cores: 100, ram: 100_000 } })).status).toBe(200);
  t.db.on("query", (q: { sql: string }) => sql.push(q.sql));
});
afterAll(async () => t?.close());

const server = (name: string, extra: Record<string, unknown> = {}) => ({ name, flavorRef: "1", imageRef: imageId, networks: [{ uuid: netId }], ...extra });

async function boot(name: string, extra: Record<string, unknown> = {}) {
  sql = [];
  const res = await srv().post("/v2.1/servers").set(auth).send({ server: server(name, extra) });
  const seen = sql;
  sql = [];
  return { res, seen };
}

describe("remembered boot look-ups", () => {
  it("a boot like an accepted one reads nothing before its write", async () => {
    const first = await boot("first");
    expect(first.res.status).toBe(202);
    expect(first.seen.filter(isLookup)).toHaveLength(1);
    const second = await boot("second");
    expect(second.res.status).toBe(202);
    expect(second.seen.filter(isLookup)).toHaveLength(0);
    expect(second.seen.filter(isWrite)).toHaveLength(1);
  });

  it("a flavor changed since is read again, and the server carries the new flavor", async () => {
    expect((await srv().post("/v2.1/flavors/1/os-extra_specs").set(auth).send({ extra_specs: { "hw:cpu_policy": "shared" } })).status).toBe(200);
    const after = await boot("after-flavor-change");
    expect(after.res.status).toBe(202);
    // The write found the remembered look-up stale and wrote nothing; a fresh look-up and write followed.
    expect(after.seen.filter(isWrite)).toHaveLength(2);
    expect(after.seen.filter(isLookup)).toHaveLength(1);
    const row = await t.db("instances").where({ name: "after-flavor-change" }).first("flavor");
    expect(row.flavor.extra_specs).toEqual({ "hw:cpu_policy": "shared" });
    expect(await t.db("instances").where({ name: "after-flavor-change" }).count("* as n").first()).toEqual({ n: 1 });
  });

  it("16 boots at once after a change are each judged on the new rows", async () => {
    await boot("warm"); // remembered again
    expect((await srv().post("/v2.1/flavors/1/os-extra_specs").set(auth).send({ extra_specs: { "hw:numa_nodes": "1" } })).status).toBe(200);
    const res = await Promise.all(
      Array.from({ length: 16 }, (_, i) => t.app.inject({ method: "POST", url: "/v2.1/servers", headers: auth, payload: { server: server(`burst-${i}`) } })),
    );
    expect(res.map((r) => r.statusCode)).toEqual(res.map(() => 202));
    const rows = await t.db("instances").whereLike("name", "burst-%").select("flavor");
    expect(rows).toHaveLength(16);
    for (const r of rows) expect(r.flavor.extra_specs).toEqual({ "hw:cpu_policy": "shared", "hw:numa_nodes": "1" });
  });

  it("a subnet added to the network since gives the next boot's port an address on it too", async () => {
    await boot("before-subnet");
    const added = await srv().post("/v2.0/subnets").set(auth).send({ subnet: { network_id: netId, cidr: "10.10.0.0/24", ip_version: 4 } });
    expect(added.status).toBe(201);
    expect((await boot("after-subnet")).res.status).toBe(202);
    const ips = await t.db("ip_allocations")
      .join("ports", "ports.id", "ip_allocations.port_id")
      .join("instances", "instances.id", "ports.device_id")
      .where("instances.name", "after-subnet")
      .pluck("ip_allocations.subnet_id");
    // One address on each subnet of the network: the first one's and the added one's.
    expect(ips).toHaveLength(2);
    expect(ips).toContain(added.body.subnet.id);
    expect(new Set(ips).size).toBe(2);
  });

  it("a quota changed since refuses the boot it now forbids, and nothing is written", async () => {
    // Unlimited in instances, cores and RAM: the grouped write, judged on the look-up's limits.
    expect((await srv().put("/v2.1/os-quota-sets/admin").set(auth).send({ quota_set: { instances: -1, cores: -1, ram: -1 } })).status).toBe(200);
    // A flavor of its own: a look-up read under these limits, not one remembered from above.
    expect((await srv().post("/v2.1/flavors").set(auth).send({ flavor: { name: "m1.quota", id: "q", ram: 512, vcpus: 1, disk: 1 } })).status).toBe(200);
    expect((await boot("before-quota", { flavorRef: "q", metadata: { a: "1", b: "2" } })).res.status).toBe(202);
    expect((await srv().put("/v2.1/os-quota-sets/admin").set(auth).send({ quota_set: { metadata_items: 1 } })).status).toBe(200);
    const before = await tableCounts(t.db);
    const refused = await boot("after-quota", { flavorRef: "q", metadata: { a: "1", b: "2" } });
    expect(refused.res.status).toBe(403);
    expect(await tableCounts(t.db)).toEqual(before);
    expect((await srv().put("/v2.1/os-quota-sets/admin").set(auth).send({ quota_set: { metadata_items: 128 } })).status).toBe(200);
  });

  it("an image deleted since is not found, and nothing is written", async () => {
    expect((await boot("before-image-delete")).res.status).toBe(202);
    expect((await srv().delete(`/v2/images/${imageId}`).set(auth)).status).toBe(204);
    const before = await tableCounts(t.db);
    const refused = await boot("after-image-delete");
    expect(refused.res.status).toBe(400);
    expect(refused.res.body.badRequest.message).toBe(`Image ${imageId} could not be found.`);
    expect(await tableCounts(t.db)).toEqual(before);
  });

  it("a flavor deleted since is not found, and nothing is written", async () => {
    ({ imageId } = await flavorImageAgain());
    expect((await boot("before-flavor-delete")).res.status).toBe(202);
    expect((await srv().delete("/v2.1/flavors/1").set(auth)).status).toBe(202);
    const before = await tableCounts(t.db);
    const refused = await boot("after-flavor-delete");
    expect(refused.res.status).toBe(400);
    expect(refused.res.body.badRequest.message).toBe("Flavor 1 could not be found.");
    expect(await tableCounts(t.db)).toEqual(before);
  });
});

/** A new public image with a file (the first one was deleted above). */
async function flavorImageAgain(): Promise<{ imageId: string }> {
  const img = await srv().post("/v2/images").set(auth).send({ name: "cirros-2", disk_format: "qcow2", container_format: "bare", visibility: "public" });
  expect((await srv().put(`/v2/images/${img.body.id}/file`).set(auth).set("content-type", "application/octet-stream").send(Buffer.alloc(64, 1))).status).toBe(204);
  return { imageId: img.body.id };
}

describe("a private flavor at boot (Nova: only with the project's access)", () => {
  let x: ExtApp;
  let image: string;
  beforeAll(async () => {
    x = await createExtApp();
    ({ imageId: image } = await bootables(x));
    const made = await admin(x).post("/v2.1/flavors", { flavor: { name: "private", id: "priv", ram: 512, vcpus: 1, disk: 1, "os-flavor-access:is_public": false } });
    expect(made.status).toBe(200);
  });
  afterAll(async () => x?.close());

  const bootAs = (token: string, name: string) => client(x, token).post("/v2.1/servers", { server: { name, flavorRef: "priv", imageRef: image, networks: "none" } });

  it("is not found without access, bootable with it, and not found again once access is removed, remembered or not", async () => {
    const refused = await bootAs(MEMBER_P1, "no-access");
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toBe("Flavor priv could not be found.");
    expect((await admin(x).post("/v2.1/flavors/priv/action", { addTenantAccess: { tenant: "p1" } })).status).toBe(200);
    expect((await bootAs(MEMBER_P1, "with-access")).status).toBe(202);
    expect((await bootAs(MEMBER_P1, "with-access-again")).status).toBe(202); // the look-up is remembered now
    expect((await admin(x).post("/v2.1/flavors/priv/action", { removeTenantAccess: { tenant: "p1" } })).status).toBe(200);
    const before = await tableCounts(x.database.db);
    const gone = await bootAs(MEMBER_P1, "access-removed");
    expect(gone.status).toBe(400);
    expect(gone.body.badRequest.message).toBe("Flavor priv could not be found.");
    expect(await tableCounts(x.database.db)).toEqual(before);
    expect((await bootAs(ADMIN_TOKEN, "admin-sees-all")).status).toBe(202);
  });
});
