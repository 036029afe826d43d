/** Several subnets per network, IPv6 subnets and ports with one address per subnet. */
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Knex } from "knex";
import { createPort } from "../../api/ports.js";
import { ADMIN_TOKEN, createTestApp, tableCounts, type TestApp } from "../support/services.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const auth = { "X-Auth-Token": ADMIN_TOKEN };
const post = (p: string, body: object) => request(t.app.server).post(p).set(auth).send(body);

async function dualStack(name: string, v6: Record<string, unknown> = {}) {
  const net = await post("/v2.0/networks", { network: { name } });
  const id = net.body.network.id as string;
  const s4 = await post("/v2.0/subnets", { subnet: { network_id: id, cidr: "10.60.0.0/29", dns_nameservers: ["10.60.0.2"] } });
  expect(s4.status, JSON.stringify(s4.body)).toBe(201);
  const s6 = await post("/v2.0/subnets", { subnet: { network_id: id, cidr: "fd00:60::/64", ip_version: 6, ...v6 } });
  expect(s6.status, JSON.stringify(s6.body)).toBe(201);
  return { id, s4: s4.body.subnet, s6: s6.body.subnet };
}

const port = (networkId: string, fixedIp?: string) =>
  t.db.transaction((trx: Knex.Transaction) =>
    createPort(trx, { networkId, projectId: "admin", deviceId: null, deviceOwner: "", deviceIndex: null, ...(fixedIp ? { fixedIp } : {}) }),
  );

describe("IPv6 subnets", () => {
  it("creates an IPv6 subnet beside an IPv4 one with Neutron's defaults", async () => {
    const { id, s6 } = await dualStack("dual", { dns_nameservers: ["2001:4860:4860:0:0:0:0:8888"], ipv6_address_mode: "slaac", ipv6_ra_mode: "slaac" });
    expect(s6).toMatchObject({
      ip_version: 6, cidr: "fd00:60::/64", gateway_ip: "fd00:60::1",
      allocation_pools: [{ start: "fd00:60::2", end: "fd00:60::ffff:ffff:ffff:ffff" }],
      dns_nameservers: ["2001:4860:4860::8888"], ipv6_address_mode: "slaac", ipv6_ra_mode: "slaac", host_routes: [],
    });
    const shown = await request(t.app.server).get(`/v2.0/networks/${id}`).set(auth);
    expect(shown.body.network.subnets).toHaveLength(2);
  });

  it.each([
    ["an IPv4 cidr with ip_version 6", { cidr: "10.61.0.0/24", ip_version: 6 }],
    ["an IPv6 cidr with ip_version 4", { cidr: "fd00:61::/64", ip_version: 4 }],
    ["an IPv6 cidr with host bits", { cidr: "fd00:61::1/64", ip_version: 6 }],
    ["an IPv6 gateway outside", { cidr: "fd00:61::/64", ip_version: 6, gateway_ip: "fd00:62::1" }],
    ["a bad nameserver", { cidr: "fd00:61::/64", ip_version: 6, dns_nameservers: ["dns.example"] }],
    ["ipv6 modes on IPv4", { cidr: "10.61.0.0/24", ipv6_address_mode: "slaac" }],
  ])("refuses %s (400) and stores nothing", async (_l, fields) => {
    const net = await post("/v2.0/networks", { network: { name: "bad6" } });
    const before = await tableCounts(t.db);
    const res = await post("/v2.0/subnets", { subnet: { network_id: net.body.network.id, ...fields } });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(await tableCounts(t.db)).toEqual(before);
  });

  it("refuses an IPv6 subnet overlapping another of the same network (400)", async () => {
    const { id } = await dualStack("dual-overlap");
    const res = await post("/v2.0/subnets", { subnet: { network_id: id, cidr: "fd00:60::/48", ip_version: 6 } });
    expect(res.status).toBe(400);
    expect(res.body.badRequest.message).toMatch(/overlaps/);
  });
});

describe("ports on a dual-stack network", () => {
  it("get one address per subnet; a fixed IPv6 address gives just that one", async () => {
    const { id, s4, s6 } = await dualStack("dual-ports");
    const a = await port(id);
    expect(a.fixed_ips).toEqual([{ subnet_id: s4.id, ip_address: "10.60.0.2" }, { subnet_id: s6.id, ip_address: "fd00:60::2" }]);
    const b = await port(id);
    expect(b.fixed_ips.map((f) => f.ip_address)).toEqual(["10.60.0.3", "fd00:60::3"]);
    const c = await port(id, "FD00:60:0::0042");
    expect(c.fixed_ips).toEqual([{ subnet_id: s6.id, ip_address: "fd00:60::42" }]);
    await expect(port(id, "fd00:60::42")).rejects.toMatchObject({ statusCode: 409 });
    await expect(port(id, "fd00:60::1")).rejects.toMatchObject({ statusCode: 409 }); // the gateway
    await expect(port(id, "fd00:99::5")).rejects.toMatchObject({ statusCode: 400 });
    await expect(port(id, "fd00:60::")).rejects.toMatchObject({ statusCode: 400 }); // subnet-router anycast
  });

  it("a full IPv4 subnet fails the port with a clear message even when IPv6 has room", async () => {
    const { id } = await dualStack("dual-full");
    for (let i = 0; i < 4; i++) await port(id); // /29 minus network, gateway, broadcast: .2-.6 is 5
    await port(id);
    await expect(port(id)).rejects.toThrow(/No more IP addresses available on network/);
  });
});
