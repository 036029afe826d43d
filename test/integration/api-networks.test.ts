/** The network API in Neutron v2.0 shapes: networks, subnets and (read-only) ports. */
import request from "supertest";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, createTestApp, tableCounts, type TestApp } from "../support/services.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const auth = { "X-Auth-Token": ADMIN_TOKEN };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const createNetwork = (network: Record<string, unknown>) => request(t.app.server).post("/v2.0/networks").set(auth).send({ network });
const createSubnet = (subnet: Record<string, unknown>) => request(t.app.server).post("/v2.0/subnets").set(auth).send({ subnet });
const get = (p: string) => request(t.app.server).get(p).set(auth);

async function network(name: string): Promise<string> {
  const res = await createNetwork({ name });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.network.id as string;
}

/** An active image and a flavor, so a server (and so a port) can be made. */
async function bootable(): Promise<{ flavorId: string; imageId: string }> {
  const flavorId = `net-f-${randomUUID().slice(0, 8)}`;
  const f = await request(t.app.server).post("/v2.1/flavors").set(auth).send({ flavor: { name: flavorId, id: flavorId, ram: 64, vcpus: 1, disk: 1 } });
  expect(f.status).toBe(200);
  const img = await request(t.app.server).post("/v2/images").set(auth).send({ name: "cirros", disk_format: "qcow2", container_format: "bare" });
  expect(img.status).toBe(201);
  const up = await request(t.app.server).put(`/v2/images/${img.body.id}/file`).set(auth).set("content-type", "application/octet-stream").send(Buffer.alloc(512, 7));
  expect(up.status).toBe(204);
  return { flavorId, imageId: img.body.id };
}

describe("networks", () => {
  it("creates a network (201) in Neutron's shape", async () => {
    const res = await createNetwork({ name: "private", mtu: 1450 });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const n = res.body.network;
    expect(n.id).toMatch(UUID);
    expect(n).toMatchObject({
      name: "private",
      subnets: [],
      status: "ACTIVE",
      admin_state_up: true,
      shared: false,
      mtu: 1450,
      "router:external": false,
      "provider:network_type": "flat",
      tenant_id: "admin",
      project_id: "admin",
    });
    expect(n).toHaveProperty("provider:physical_network");
    expect(n).toHaveProperty("provider:segmentation_id");
    expect(await t.db("networks").where({ id: n.id }).first()).toMatchObject({ name: "private" });
  });

  it("creates a vlan network with its segmentation id", async () => {
    const res = await createNetwork({ name: "vlan42", "provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 42 });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.network).toMatchObject({ "provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 42 });
  });

  describe("bad input is 400 and stores nothing", () => {
    const cases: [string, () => request.Test][] = [
      ["unknown field", () => createNetwork({ name: "x", colour: "red" })],
      ["unknown network type", () => createNetwork({ name: "x", "provider:network_type": "vxlan-ish" })],
      ["vlan without segmentation id", () => createNetwork({ name: "x", "provider:network_type": "vlan" })],
      ["flat with a segmentation id", () => createNetwork({ name: "x", "provider:segmentation_id": 7 })],
      ["mtu too small", () => createNetwork({ name: "x", mtu: 10 })],
      ["malformed JSON", () => request(t.app.server).post("/v2.0/networks").set(auth).set("content-type", "application/json").send("{")],
    ];
    it.each(cases)("%s", async (_label, send) => {
      const before = await tableCounts(t.db);
      const res = await send();
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(Object.values(res.body as Record<string, { code: number }>)[0]!.code).toBe(400);
      expect(await tableCounts(t.db)).toEqual(before);
    });
  });

  it("lists networks and filters by ?name=", async () => {
    const id = await network("listed-net");
    const all = await get("/v2.0/networks");
    expect(all.status).toBe(200);
    expect(all.body.networks.map((n: { id: string }) => n.id)).toContain(id);
    const one = await get("/v2.0/networks?name=listed-net");
    expect(one.status).toBe(200);
    expect(one.body.networks).toHaveLength(1);
    expect(one.body.networks[0].id).toBe(id);
    expect((await get("/v2.0/networks?name=nothing-by-this-name")).body.networks).toEqual([]);
    const byId = await get(`/v2.0/networks?id=${id}`);
    expect(byId.body.networks.map((n: { id: string }) => n.id)).toEqual([id]);
    expect((await get("/v2.0/networks?id=not-a-uuid")).body.networks).toEqual([]);
  });

  it("shows a network with its subnet ids", async () => {
    const id = await network("shown-net");
    const sn = await createSubnet({ network_id: id, cidr: "10.9.0.0/24", ip_version: 4 });
    expect(sn.status).toBe(201);
    const res = await get(`/v2.0/networks/${id}`);
    expect(res.status).toBe(200);
    expect(res.body.network).toMatchObject({ id, name: "shown-net", subnets: [sn.body.subnet.id] });
  });

  it("an unknown or malformed network id is 404", async () => {
    const res = await get(`/v2.0/networks/${randomUUID()}`);
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.code).toBe(404);
    expect((await get("/v2.0/networks/private")).status).toBe(404);
  });

  it("deletes a network (204) with its subnet; then 404", async () => {
    const id = await network("doomed");
    expect((await createSubnet({ network_id: id, cidr: "10.99.0.0/24" })).status).toBe(201);
    const del = await request(t.app.server).delete(`/v2.0/networks/${id}`).set(auth);
    expect(del.status).toBe(204);
    expect((await get(`/v2.0/networks/${id}`)).status).toBe(404);
    expect(await t.db("subnets").where({ network_id: id }).first()).toBeUndefined();
    expect((await request(t.app.server).delete(`/v2.0/networks/${id}`).set(auth)).status).toBe(404);
  });

  it("refuses (409) to delete a network while a server's port is on it, and allows it after the server is gone", async () => {
    const { flavorId, imageId } = await bootable();
    const id = await network("busy");
    expect((await createSubnet({ network_id: id, cidr: "10.50.0.0/24" })).status).toBe(201);
    const srv = await request(t.app.server)
      .post("/v2.1/servers")
      .set(auth)
      .send({ server: { name: "on-busy", flavorRef: flavorId, imageRef: imageId, networks: [{ uuid: id }] } });
    expect(srv.status, JSON.stringify(srv.body)).toBe(202);
    const before = await tableCounts(t.db);
    const del = await request(t.app.server).delete(`/v2.0/networks/${id}`).set(auth);
    expect(del.status).toBe(409);
    expect(del.body.conflictingRequest.code).toBe(409);
    expect(await tableCounts(t.db)).toEqual(before);
    expect((await get(`/v2.0/networks/${id}`)).status).toBe(200);

    expect((await request(t.app.server).delete(`/v2.1/servers/${srv.body.server.id}`).set(auth)).status).toBe(204);
    expect((await request(t.app.server).delete(`/v2.0/networks/${id}`).set(auth)).status).toBe(204);
  });
});

describe("subnets", () => {
  it("creates a /24 subnet (201) with gateway .1 and pool .2-.254", async () => {
    const id = await network("sub-default");
    const res = await createSubnet({ network_id: id, cidr: "192.168.10.0/24", ip_version: 4, name: "sub1" });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.subnet).toMatchObject({
      network_id: id,
      name: "sub1",
      ip_version: 4,
      cidr: "192.168.10.0/24",
      gateway_ip: "192.168.10.1",
      allocation_pools: [{ start: "192.168.10.2", end: "192.168.10.254" }],
      enable_dhcp: true,
      dns_nameservers: [],
    });
    expect(res.body.subnet.id).toMatch(UUID);
    const shown = await get(`/v2.0/subnets/${res.body.subnet.id}`);
    expect(shown.status).toBe(200);
    expect(shown.body.subnet.gateway_ip).toBe("192.168.10.1");
    const listed = await get("/v2.0/subnets?name=sub1");
    expect(listed.body.subnets.map((s: { id: string }) => s.id)).toEqual([res.body.subnet.id]);
  });

  it("honours an explicit gateway, splitting the pool around it", async () => {
    const id = await network("sub-gw");
    const res = await createSubnet({ network_id: id, cidr: "10.1.0.0/28", gateway_ip: "10.1.0.14" });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.subnet.gateway_ip).toBe("10.1.0.14");
    expect(res.body.subnet.allocation_pools).toEqual([{ start: "10.1.0.1", end: "10.1.0.13" }]);
  });

  // Several subnets per network are allowed now (issue 4: IPv4 + IPv6); only an overlapping one is refused.
  it("a second subnet on the same network is 201 unless it overlaps (400)", async () => {
    const id = await network("sub-twice");
    expect((await createSubnet({ network_id: id, cidr: "10.2.0.0/24" })).status).toBe(201);
    expect((await createSubnet({ network_id: id, cidr: "10.3.0.0/24" })).status).toBe(201);
    const before = await tableCounts(t.db);
    const res = await createSubnet({ network_id: id, cidr: "10.2.0.128/25" });
    expect(res.status).toBe(400);
    expect(res.body.badRequest.message).toMatch(/overlaps/);
    expect(await tableCounts(t.db)).toEqual(before);
  });

  it("a subnet on an unknown network is 404", async () => {
    const before = await tableCounts(t.db);
    const res = await createSubnet({ network_id: randomUUID(), cidr: "10.4.0.0/24" });
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.code).toBe(404);
    expect((await createSubnet({ network_id: "not-a-uuid", cidr: "10.4.0.0/24" })).status).toBe(404);
    expect(await tableCounts(t.db)).toEqual(before);
  });

  describe("bad input is 400 badRequest and stores nothing", () => {
    const cases: [string, Record<string, unknown>][] = [
      ["not a CIDR", { cidr: "banana" }],
      ["address out of range", { cidr: "10.0.0.256/24" }],
      ["prefix out of range", { cidr: "10.0.0.0/33" }],
      ["no prefix", { cidr: "10.0.0.0" }],
      ["host bits set", { cidr: "10.0.0.5/24" }],
      ["gateway outside the subnet", { cidr: "10.5.0.0/24", gateway_ip: "10.6.0.1" }],
      ["gateway not an address", { cidr: "10.5.0.0/24", gateway_ip: "gw" }],
      ["gateway is the broadcast address", { cidr: "10.5.0.0/24", gateway_ip: "10.5.0.255" }],
      ["gateway is the network address", { cidr: "10.5.0.0/24", gateway_ip: "10.5.0.0" }],
      ["pool outside the subnet", { cidr: "10.5.0.0/24", allocation_pools: [{ start: "10.5.0.10", end: "10.5.1.10" }] }],
      ["pool holding the gateway", { cidr: "10.5.0.0/24", allocation_pools: [{ start: "10.5.0.1", end: "10.5.0.10" }] }],
      ["unknown field", { cidr: "10.5.0.0/24", colour: "red" }],
    ];
    it.each(cases)("%s", async (_label, fields) => {
      // A fresh network each time, so one wrongly accepted case cannot turn the next into a 409.
      const netId = await network("sub-bad");
      const before = await tableCounts(t.db);
      const res = await createSubnet({ network_id: netId, ...fields });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.badRequest.code).toBe(400);
      expect(await tableCounts(t.db)).toEqual(before);
    });
  });

  it("an unknown subnet is 404; deleting a free subnet is 204", async () => {
    expect((await get(`/v2.0/subnets/${randomUUID()}`)).status).toBe(404);
    expect((await get("/v2.0/subnets/nope")).status).toBe(404);
    const id = await network("sub-del");
    const sn = await createSubnet({ network_id: id, cidr: "10.7.0.0/24" });
    expect((await request(t.app.server).delete(`/v2.0/subnets/${sn.body.subnet.id}`).set(auth)).status).toBe(204);
    expect((await get(`/v2.0/subnets/${sn.body.subnet.id}`)).status).toBe(404);
    expect((await get(`/v2.0/networks/${id}`)).body.network.subnets).toEqual([]);
  });
});

describe("ports", () => {
  it("GET /v2.0/ports?device_id=<server> shows the server's port with its fixed IP and a fa:16:3e MAC", async () => {
    const { flavorId, imageId } = await bootable();
    const id = await network("ported");
    const sn = await createSubnet({ network_id: id, cidr: "172.16.5.0/24" });
    expect(sn.status).toBe(201);
    const srv = await request(t.app.server)
      .post("/v2.1/servers")
      .set(auth)
      .send({ server: { name: "with-port", flavorRef: flavorId, imageRef: imageId, networks: [{ uuid: id }] } });
    expect(srv.status, JSON.stringify(srv.body)).toBe(202);
    const serverId = srv.body.server.id as string;

    const res = await get(`/v2.0/ports?device_id=${serverId}`);
    expect(res.status).toBe(200);
    expect(res.body.ports).toHaveLength(1);
    const port = res.body.ports[0];
    expect(port).toMatchObject({
      network_id: id,
      device_id: serverId,
      device_owner: "compute:nova",
      fixed_ips: [{ subnet_id: sn.body.subnet.id, ip_address: "172.16.5.2" }],
    });
    expect(port.mac_address).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);

    const server = await get(`/v2.1/servers/${serverId}`);
    expect(server.body.server.addresses.ported[0]["OS-EXT-IPS-MAC:mac_addr"]).toBe(port.mac_address);

    const shown = await get(`/v2.0/ports/${port.id}`);
    expect(shown.status).toBe(200);
    expect(shown.body.port.id).toBe(port.id);
    const byNet = await get(`/v2.0/ports?network_id=${id}`);
    expect(byNet.body.ports.map((p: { id: string }) => p.id)).toEqual([port.id]);

    expect((await get(`/v2.0/ports?device_id=${randomUUID()}`)).body.ports).toEqual([]);
    expect((await get("/v2.0/ports?device_id=not-a-uuid")).body.ports).toEqual([]);
    expect((await get(`/v2.0/ports/${randomUUID()}`)).status).toBe(404);
  });
});
