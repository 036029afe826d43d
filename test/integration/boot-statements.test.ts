/**
 * Statements per accepted boot (api/servers/create.ts): the common path (one image, one
 * flavor, one network with an IPv4 subnet, no quota, keypair or group) is one look-up
 * and one write, also for a multi-create, and only the write once a boot that asked the
 * same was accepted (the look-up is remembered); concurrent boots share the write (group
 * commit) and the look-up (common/read-batch.ts).
 * A regression guard: each round trip costs the API and Postgres CPU (docs/benchmarks.md,
 * B2/B7).
 */
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPort } from "../../api/ports.js";
import { flavorAndImage } from "../support/boot-fixtures.js";
import { ADMIN_TOKEN, createTestApp, type TestApp } from "../support/services.js";

let t: TestApp;
const auth = { "X-Auth-Token": ADMIN_TOKEN };
let imageId: string;
let netId: string;
let sql: string[] = [];

beforeAll(async () => {
  t = await createTestApp({ enforceQuotas: false });
  ({ imageId } = await flavorAndImage(t.app, auth));
  const srv = () => request(t.app.server);
  const net = await srv().post("/v2.0/networks").set(auth).send({ network: { name: "private" } });
  netId = net.body.network.id;
  expect((await srv().post("/v2.0/subnets").set(auth).send({ subnet: { network_id: netId, cidr: "10.9.0.0/24", ip_version: 4 } })).status).toBe(201);
  t.db.on("query", (q: { sql: string }) => sql.push(q.sql));
});
afterAll(async () => t.close());

async function countedBoot(server: Record<string, unknown>): Promise<string[]> {
  sql = [];
  const res = await request(t.app.server).post("/v2.1/servers").set(auth).send({ server });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const seen = sql;
  sql = [];
  return seen;
}

const common = () => ({ name: "vm", flavorRef: "1", imageRef: imageId, networks: [{ uuid: netId }] });

describe("statements per boot", () => {
  it("one server on the common path; a boot like an accepted one skips the look-up (api/servers/lookup-cache.ts)", async () => {
    const seen = await countedBoot(common());
    console.log(`single boot: ${seen.length} statements\n  ${seen.join("\n  ")}`);
    expect(seen.length).toBeLessThanOrEqual(2);
    const again = await countedBoot({ ...common(), name: "again" });
    expect(again).toHaveLength(1);
    expect(again[0]).toMatch(/^WITH cand0/);
  });

  it("a multi-create of 5 on the common path", async () => {
    const seen = await countedBoot({ ...common(), min_count: 5, max_count: 5 });
    console.log(`multi-create 5: ${seen.length} statements`);
    expect(seen.length).toBeLessThanOrEqual(2);
    const rows = await t.db("instances").where("name", "like", "vm-%").select("id");
    expect(rows).toHaveLength(5);
    const ips = await t.db("ip_allocations").join("ports", "ports.id", "ip_allocations.port_id").whereIn("ports.device_id", rows.map((r) => r.id)).select("ip_address");
    expect(new Set(ips.map((i) => i.ip_address)).size).toBe(5);
    // One schedule job wakes the scheduler for all five (its batch takes the whole reservation).
    const jobs = await t.db("outbox").whereIn("job_id", rows.map((r) => `schedule-${r.id}`)).select("payload");
    expect(jobs.map((j) => j.payload.boots)).toEqual([5]);
    expect(await t.db("instance_actions").whereIn("instance_id", rows.map((r) => r.id)).where({ action: "create" }).count("* as n").first()).toEqual({ n: 5 });
  });

  it("16 concurrent boots share look-up and write statements (api/servers/boot-batch.ts, common/read-batch.ts)", async () => {
    sql = [];
    // inject: the 16 arrive at once, as from 16 clients with their connections open.
    const res = await Promise.all(
      Array.from({ length: 16 }, (_, i) => t.app.inject({ method: "POST", url: "/v2.1/servers", headers: auth, payload: { server: { ...common(), name: `c16-${i}` } } })),
    );
    expect(res.map((r) => r.statusCode)).toEqual(res.map(() => 202));
    const writes = sql.filter((q) => q.startsWith("WITH cand0"));
    const lookups = sql.length - writes.length;
    console.log(`16 concurrent boots: ${writes.length} write statements, ${lookups} others`);
    // The look-up is remembered from the boots above; without it, the first would run alone
    // and the 15 that arrive meanwhile would share the next.
    expect(lookups).toBe(0);
    expect(writes.length).toBeLessThanOrEqual(4);
    sql = [];
  });

  it("writes the same rows as the transactional path (a fixed IP takes that one)", async () => {
    await countedBoot({ ...common(), name: "same", metadata: { a: "b" } });
    const slow = await countedBoot({ ...common(), name: "same", metadata: { a: "b" }, networks: [{ uuid: netId, fixed_ip: "10.9.0.200" }] });
    expect(slow.length).toBeGreaterThan(2);
    const [a, b] = await t.db("instances").where({ name: "same" }).orderBy("seq");
    const strip = (r: Record<string, unknown>) => {
      const { id, seq, reservation_id, created_at, updated_at, requested_networks, ...rest } = r;
      return rest;
    };
    expect(strip(a)).toEqual(strip(b));
    for (const table of ["instance_actions"] as const) {
      const [x, y] = await t.db(table).whereIn("instance_id", [a.id, b.id]).orderBy("id");
      expect({ ...x, id: 0, instance_id: 0, request_id: 0, start_time: 0, updated_at: 0 }).toEqual({ ...y, id: 0, instance_id: 0, request_id: 0, start_time: 0, updated_at: 0 });
    }
    // The same job for one boot; the one-statement path also says how many boots it wakes for.
    const jobs = await t.db("outbox").whereIn("job_id", [`schedule-${a.id}`, `schedule-${b.id}`]).orderBy("id");
    expect(jobs.map((j) => [j.queue, j.job_name, j.job_id, j.payload.instance_id, j.payload.request_id !== undefined, j.published_at, j.attempts])).toEqual(
      [a, b].map((i) => ["schedule", "schedule", `schedule-${i.id}`, i.id, true, null, 0]),
    );
    expect(jobs[0].payload.boots).toBe(1);
    const ports = await t.db("ports").whereIn("device_id", [a.id, b.id]).orderBy("created_at");
    const portShape = (p: Record<string, unknown>) => ({ ...p, id: 0, device_id: 0, mac_address: 0, created_at: 0, updated_at: 0 });
    expect(portShape(ports[0])).toEqual(portShape(ports[1]));
  });

  it("a full pool refuses the boot with 409 and writes nothing", async () => {
    const net = await request(t.app.server).post("/v2.0/networks").set(auth).send({ network: { name: "tiny" } });
    const tiny = net.body.network.id as string;
    const sub = await request(t.app.server).post("/v2.0/subnets").set(auth).send({ subnet: { network_id: tiny, cidr: "10.8.0.0/29", ip_version: 4 } });
    expect(sub.status).toBe(201); // pool .2-.6
    const before = await t.db("instances").count("* as n").first();
    const res = await request(t.app.server).post("/v2.1/servers").set(auth).send({ server: { ...common(), networks: [{ uuid: tiny }], min_count: 6, max_count: 6 } });
    expect(res.status).toBe(409);
    expect(res.body.conflictingRequest.message).toMatch(/^No more IP addresses available on network /);
    expect(await t.db("instances").count("* as n").first()).toEqual(before);
    const five = await request(t.app.server).post("/v2.1/servers").set(auth).send({ server: { ...common(), name: "five", networks: [{ uuid: tiny }], min_count: 5, max_count: 5 } });
    expect(five.status).toBe(202);
    const ips = await t.db("ip_allocations").where({ subnet_id: sub.body.subnet.id }).orderByRaw("ip_address::inet").pluck("ip_address");
    expect(ips).toEqual(["10.8.0.2", "10.8.0.3", "10.8.0.4", "10.8.0.5", "10.8.0.6"]);
  });

  it("a multi-create reuses freed addresses once the pool's top is reached, in address order", async () => {
    const { id: net, subnet } = await smallNetwork("reuse", "10.7.0.0/29"); // pool .2-.6
    expect((await bootOn(net, 5, "r")).status).toBe(202);
    const held = await t.db("ip_allocations").where({ subnet_id: subnet }).whereIn("ip_address", ["10.7.0.3", "10.7.0.5"]).pluck("port_id");
    await t.db("ports").whereIn("id", held).delete();
    expect((await bootOn(net, 2, "r2")).status).toBe(202);
    const reused = await t.db("ip_allocations").join("ports", "ports.id", "ip_allocations.port_id").join("instances", "instances.id", "ports.device_id")
      .where("instances.name", "like", "r2-%").orderBy("instances.launch_index").pluck("ip_address");
    expect(reused).toEqual(["10.7.0.3", "10.7.0.5"]);
    expect((await bootOn(net, 1, "r3")).status).toBe(409);
  });

  it("a multi-create larger than the claim window gets consecutive addresses", async () => {
    const { id: net, subnet } = await smallNetwork("wide", "10.6.0.0/22");
    expect((await bootOn(net, 300, "w")).status).toBe(202);
    const ips = await t.db("ip_allocations").where({ subnet_id: subnet }).orderByRaw("ip_address::inet").pluck("ip_address");
    expect(ips).toHaveLength(300);
    expect(ips[0]).toBe("10.6.0.2");
    expect(ips[299]).toBe("10.6.1.45");
  });

  it("retries when an address it chose is committed by another writer meanwhile", async () => {
    const { id: net, subnet } = await smallNetwork("race", "10.5.0.0/24");
    expect((await bootOn(net, 1, "race-1")).status).toBe(202); // .2
    // A fixed-IP claim takes no advisory lock: the boot picks .3 too, waits on the uncommitted row, then loses.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const holder = t.db.transaction(async (trx) => {
      await createPort(trx, { networkId: net, projectId: "admin", deviceId: null, deviceOwner: "", deviceIndex: null, fixedIp: "10.5.0.3" });
      await gate;
    });
    await new Promise((r) => setTimeout(r, 100));
    sql = [];
    const booting = bootOn(net, 1, "race-2").then((r) => r); // supertest sends on then()
    await new Promise((r) => setTimeout(r, 300));
    release();
    await holder;
    expect((await booting).status).toBe(202);
    expect(sql.filter((q) => q.startsWith("WITH cand0"))).toHaveLength(2); // the lost attempt and its retry
    const ip = await t.db("ip_allocations").join("ports", "ports.id", "ip_allocations.port_id").join("instances", "instances.id", "ports.device_id")
      .where({ "instances.name": "race-2", subnet_id: subnet }).first("ip_address");
    expect(ip.ip_address).toBe("10.5.0.4");
  });
});

async function smallNetwork(name: string, cidr: string): Promise<{ id: string; subnet: string }> {
  const net = await request(t.app.server).post("/v2.0/networks").set(auth).send({ network: { name } });
  const sub = await request(t.app.server).post("/v2.0/subnets").set(auth).send({ subnet: { network_id: net.body.network.id, cidr, ip_version: 4 } });
  expect(sub.status).toBe(201);
  return { id: net.body.network.id, subnet: sub.body.subnet.id };
}

const bootOn = (net: string, count: number, name: string) =>
  request(t.app.server).post("/v2.1/servers").set(auth).send({ server: { ...common(), name, networks: [{ uuid: net }], min_count: count, max_count: count } });

describe("statements per boot with quotas enforced", () => {
  let q: TestApp;
  const seen: string[] = [];
  beforeAll(async () => {
    q = await createTestApp({ enforceQuotas: true });
    const srv = () => request(q.app.server);
    await srv().post("/v2.1/flavors").set(auth).send({ flavor: { name: "m1.small", id: "1", ram: 512, vcpus: 1, disk: 1 } });
    const img = await srv().post("/v2/images").set(auth).send({ name: "cirros", disk_format: "qcow2", container_format: "bare", visibility: "public" });
    await srv().put(`/v2/images/${img.body.id}/file`).set(auth).set("content-type", "application/octet-stream").send(Buffer.alloc(64, 1));
    const net = await srv().post("/v2.0/networks").set(auth).send({ network: { name: "private" } });
    await srv().post("/v2.0/subnets").set(auth).send({ subnet: { network_id: net.body.network.id, cidr: "10.9.0.0/29", ip_version: 4 } }); // pool .2-.6
    imageId = img.body.id;
    netId = net.body.network.id;
    q.db.on("query", (e: { sql: string }) => seen.push(e.sql));
  });
  afterAll(async () => q.close());

  it("one server: the look-up, then the quota check and the write in a short transaction", async () => {
    seen.length = 0;
    const res = await request(q.app.server).post("/v2.1/servers").set(auth).send({ server: common() });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    console.log(`single boot, quotas enforced: ${seen.length} statements`);
    expect(seen.length).toBeLessThanOrEqual(9);
    expect(seen.filter((s) => s.startsWith("WITH cand0"))).toHaveLength(1);
  });

  it("a full pool after the quota check writes nothing, not even the quota lock row", async () => {
    await q.db("quota_locks").delete();
    await request(q.app.server).post("/v2.1/servers").set(auth).send({ server: { ...common(), min_count: 4, max_count: 4 } }).expect(202);
    await q.db("quota_locks").delete();
    const before = await q.db("instances").count("* as n").first();
    const res = await request(q.app.server).post("/v2.1/servers").set(auth).send({ server: common() });
    expect(res.status).toBe(409);
    expect(await q.db("instances").count("* as n").first()).toEqual(before);
    expect(await q.db("quota_locks").count("* as n").first()).toEqual({ n: 0 });
  });

  it("a project unlimited in instances, cores and RAM: the look-up and the write, grouped; the metadata limit still holds", async () => {
    const put = await request(q.app.server).put("/v2.1/os-quota-sets/admin").set(auth).send({ quota_set: { instances: -1, cores: -1, ram: -1, metadata_items: 2 } });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const net = await request(q.app.server).post("/v2.0/networks").set(auth).send({ network: { name: "wide" } });
    await request(q.app.server).post("/v2.0/subnets").set(auth).send({ subnet: { network_id: net.body.network.id, cidr: "10.10.0.0/24", ip_version: 4 } }).expect(201);
    const server = { ...common(), networks: [{ uuid: net.body.network.id }] };
    seen.length = 0;
    await request(q.app.server).post("/v2.1/servers").set(auth).send({ server }).expect(202);
    expect(seen).toHaveLength(2);
    seen.length = 0;
    const res = await Promise.all(Array.from({ length: 16 }, () => q.app.inject({ method: "POST", url: "/v2.1/servers", headers: auth, payload: { server } })));
    expect(res.map((r) => r.statusCode)).toEqual(res.map(() => 202));
    const writes = seen.filter((s) => s.startsWith("WITH cand0")).length;
    console.log(`16 concurrent boots, quotas enforced, project unlimited: ${writes} writes of ${seen.length} statements`);
    expect(seen.length - writes).toBeLessThanOrEqual(4);
    expect(writes).toBeLessThanOrEqual(4);
    const before = await q.db("instances").count("* as n").first();
    const over = await request(q.app.server).post("/v2.1/servers").set(auth).send({ server: { ...server, metadata: { a: "1", b: "2", c: "3" } } });
    expect(over.status).toBe(403);
    expect(over.body.forbidden.message).toBe("Maximum number of metadata items exceeds 2");
    expect(await q.db("instances").count("* as n").first()).toEqual(before);
  });
});
