/**
 * Servers: accepting a boot (202, one transaction with ports, IPs and the outbox row),
 * the server view while BUILD, lists and paging, delete, and bad input that must be
 * refused with 400 without touching stored state (nova-contract 1.3).
 */
import request from "supertest";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, PUBLIC_URL, createTestApp, tableCounts, type TestApp } from "../support/services.js";

let t: TestApp;
const auth = { "X-Auth-Token": ADMIN_TOKEN };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let imageId: string;
let bigImageId: string;
let queuedImageId: string;
let privateNet: string;
let privateSubnet: string;

const srv = () => request(t.app.server);
const get = (p: string) => srv().get(p).set(auth);
const boot = (server: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  srv().post("/v2.1/servers").set(auth).send({ server, ...extra });

async function makeNetwork(name: string, cidr: string): Promise<{ net: string; subnet: string }> {
  const n = await srv().post("/v2.0/networks").set(auth).send({ network: { name } });
  expect(n.status, JSON.stringify(n.body)).toBe(201);
  const s = await srv().post("/v2.0/subnets").set(auth).send({ subnet: { network_id: n.body.network.id, cidr, ip_version: 4 } });
  expect(s.status, JSON.stringify(s.body)).toBe(201);
  return { net: n.body.network.id, subnet: s.body.subnet.id };
}

async function makeImage(fields: Record<string, unknown>, bytes: Buffer | null): Promise<string> {
  const img = await srv().post("/v2/images").set(auth).send({ disk_format: "qcow2", container_format: "bare", visibility: "public", ...fields });
  expect(img.status, JSON.stringify(img.body)).toBe(201);
  if (bytes) {
    const up = await srv().put(`/v2/images/${img.body.id}/file`).set(auth).set("content-type", "application/octet-stream").send(bytes);
    expect(up.status).toBe(204);
  }
  return img.body.id as string;
}

/** A valid boot body on the private network, with overrides. */
const valid = (over: Record<string, unknown> = {}) => ({
  name: "vm",
  flavorRef: "1",
  imageRef: imageId,
  networks: [{ uuid: privateNet }],
  ...over,
});

beforeAll(async () => {
  t = await createTestApp({ enforceQuotas: false }); // boots far more than 10 servers in one project
  // Listening once lets many supertest requests share the server concurrently.
  await t.app.listen({ port: 0, host: "127.0.0.1" });
  const f1 = await srv().post("/v2.1/flavors").set(auth).send({ flavor: { name: "m1.small", id: "1", ram: 512, vcpus: 1, disk: 1 } });
  expect(f1.status).toBe(200);
  const f2 = await srv().post("/v2.1/flavors").set(auth).send({ flavor: { name: "m1.tiny", id: "tiny", ram: 64, vcpus: 1, disk: 1 } });
  expect(f2.status).toBe(200);
  imageId = await makeImage({ name: "cirros" }, Buffer.alloc(4096, 1));
  bigImageId = await makeImage({ name: "big-ram", min_ram: 4096 }, Buffer.alloc(1024, 2));
  queuedImageId = await makeImage({ name: "not-uploaded" }, null);
  ({ net: privateNet, subnet: privateSubnet } = await makeNetwork("private", "10.0.0.0/24"));
});
afterAll(async () => t.close());

describe("POST /v2.1/servers", () => {
  it("accepts a boot: 202 with {id, links, adminPass, OS-DCF:diskConfig, security_groups} and a Location header", async () => {
    const res = await boot(valid({ name: "first", metadata: { role: "web" } }));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const s = res.body.server;
    expect(Object.keys(s).sort()).toEqual(["OS-DCF:diskConfig", "adminPass", "id", "links", "security_groups"]);
    expect(s.id).toMatch(UUID);
    expect(s.adminPass).toBeTypeOf("string");
    expect(s.adminPass.length).toBeGreaterThanOrEqual(8);
    expect(s["OS-DCF:diskConfig"]).toBe("MANUAL");
    expect(s.security_groups).toEqual([{ name: "default" }]);
    expect(s.links).toEqual([
      { rel: "self", href: `${PUBLIC_URL}/v2.1/servers/${s.id}` },
      { rel: "bookmark", href: `${PUBLIC_URL}/servers/${s.id}` },
    ]);
    expect(res.headers["location"]).toBe(s.links[0].href);
  });

  it("the accepted server shows BUILD/scheduling/building/0 with addresses, image and flavor refs", async () => {
    const res = await boot(valid({ name: "shown", metadata: { role: "db" } }));
    expect(res.status).toBe(202);
    const id = res.body.server.id as string;
    const show = await get(`/v2.1/servers/${id}`);
    expect(show.status).toBe(200);
    const s = show.body.server;
    expect(s).toMatchObject({
      id,
      name: "shown",
      status: "BUILD",
      "OS-EXT-STS:task_state": "scheduling",
      "OS-EXT-STS:vm_state": "building",
      "OS-EXT-STS:power_state": 0,
      metadata: { role: "db" },
      hostId: "",
      tenant_id: "admin",
      user_id: "admin",
      progress: 0,
    });
    expect(s.image).toEqual({ id: imageId, links: [{ rel: "bookmark", href: `${PUBLIC_URL}/images/${imageId}` }] });
    expect(s.flavor).toEqual({ id: "1", links: [{ rel: "bookmark", href: `${PUBLIC_URL}/flavors/1` }] });
    expect(Object.keys(s.addresses)).toEqual(["private"]);
    expect(s.addresses.private).toHaveLength(1);
    const addr = s.addresses.private[0];
    expect(addr).toMatchObject({ version: 4, "OS-EXT-IPS:type": "fixed" });
    expect(addr.addr).toMatch(/^10\.0\.0\.(\d+)$/);
    expect(addr["OS-EXT-IPS-MAC:mac_addr"]).toMatch(/^fa:16:3e(:[0-9a-f]{2}){3}$/);
    // The address is the one the port holds.
    const port = await t.db("ports").where({ device_id: id }).first();
    expect(port.mac_address).toBe(addr["OS-EXT-IPS-MAC:mac_addr"]);
    const ip = await t.db("ip_allocations").where({ port_id: port.id }).first();
    expect(ip).toMatchObject({ subnet_id: privateSubnet, ip_address: addr.addr });
  });

  it("prints created, updated and launched_at as Nova does: UTC, whole seconds, Z (Postgres writes them)", async () => {
    const id = (await boot(valid({ name: "timed" }))).body.server.id as string;
    const at = new Date("2026-03-04T05:06:07.891Z");
    await t.db("instances").where({ id }).update({ created_at: at, updated_at: new Date("2026-03-04T05:06:59.999Z"), launched_at: at });
    const s = (await get(`/v2.1/servers/${id}`)).body.server;
    expect([s.created, s.updated, s["OS-SRV-USG:launched_at"], s["OS-SRV-USG:terminated_at"]]).toEqual([
      "2026-03-04T05:06:07Z",
      "2026-03-04T05:06:59Z",
      "2026-03-04T05:06:07Z",
      null,
    ]);
    const listed = (await get("/v2.1/servers/detail?name=^timed$")).body.servers;
    expect(listed.map((x: { created: string; flavor: { id: string } }) => [x.created, x.flavor.id])).toEqual([["2026-03-04T05:06:07Z", "1"]]);
  });

  it("writes one schedule outbox row for an accepted boot, with the instance id and request id", async () => {
    const before = Number((await t.db("outbox").where({ queue: "schedule" }).count<{ count: number }[]>("* as count"))[0]!.count);
    const reqId = `req-${randomUUID()}`;
    const res = await boot(valid({ name: "outboxed" })).set("X-Openstack-Request-Id", reqId);
    expect(res.status).toBe(202);
    const id = res.body.server.id as string;
    const rows = await t.db("outbox").where({ queue: "schedule" });
    expect(rows.length).toBe(before + 1);
    const mine = rows.filter((r: { payload: { instance_id: string } }) => r.payload.instance_id === id);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ job_name: "schedule", job_id: `schedule-${id}`, published_at: null });
    expect(mine[0].payload.request_id).toBe(reqId);
    expect(mine[0].payload.boots).toBe(1);
    const action = await t.db("instance_actions").where({ instance_id: id }).first();
    expect(action).toMatchObject({ action: "create", request_id: reqId });
  });

  it("accepts a flavorRef given as a full href and an integer-like flavor id", async () => {
    const href = await boot(valid({ name: "href", flavorRef: `${PUBLIC_URL}/v2.1/flavors/tiny` }));
    expect(href.status, JSON.stringify(href.body)).toBe(202);
    expect((await get(`/v2.1/servers/${href.body.server.id}`)).body.server.flavor.id).toBe("tiny");
    const int = await boot(valid({ name: "int", flavorRef: 1 }));
    expect(int.status, JSON.stringify(int.body)).toBe(202);
    expect((await get(`/v2.1/servers/${int.body.server.id}`)).body.server.flavor.id).toBe("1");
  });

  it("keeps a client-chosen adminPass", async () => {
    const res = await boot(valid({ name: "pw", adminPass: "s3cret-Pass" }));
    expect(res.status).toBe(202);
    expect(res.body.server.adminPass).toBe("s3cret-Pass");
  });

  it('networks: "none" boots without addresses or ports', async () => {
    const res = await boot(valid({ name: "isolated", networks: "none" }));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const id = res.body.server.id as string;
    const s = (await get(`/v2.1/servers/${id}`)).body.server;
    expect(s.addresses).toEqual({});
    expect(await t.db("ports").where({ device_id: id })).toEqual([]);
  });

  it("two NICs on two networks appear under both network names, in NIC order", async () => {
    const other = await makeNetwork("backend", "10.20.0.0/24");
    const res = await boot(valid({ name: "two-nics", networks: [{ uuid: other.net }, { uuid: privateNet }] }));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const s = (await get(`/v2.1/servers/${res.body.server.id}`)).body.server;
    expect(Object.keys(s.addresses)).toEqual(["backend", "private"]);
    expect(s.addresses.backend[0].addr).toBe("10.20.0.2");
  });

  describe("fixed IPs and address exhaustion", () => {
    let net: string;
    beforeAll(async () => {
      ({ net } = await makeNetwork("fixed", "10.30.0.0/24"));
    });

    it("honours a requested fixed_ip", async () => {
      const res = await boot(valid({ name: "fixed-ok", networks: [{ uuid: net, fixed_ip: "10.30.0.77" }] }));
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const s = (await get(`/v2.1/servers/${res.body.server.id}`)).body.server;
      expect(s.addresses.fixed).toEqual([expect.objectContaining({ addr: "10.30.0.77", version: 4 })]);
    });

    it("a fixed_ip already taken is 409 and changes nothing", async () => {
      const before = await tableCounts(t.db);
      const res = await boot(valid({ name: "fixed-taken", networks: [{ uuid: net, fixed_ip: "10.30.0.77" }] }));
      expect(res.status, JSON.stringify(res.body)).toBe(409);
      expect(res.body.conflictingRequest.code).toBe(409);
      expect(res.body.conflictingRequest.message).toContain("10.30.0.77");
      expect(await tableCounts(t.db)).toEqual(before);
    });

    it.each([
      ["outside the subnet", "10.31.0.5"],
      ["the subnet's network address", "10.30.0.0"],
      ["the subnet's broadcast address", "10.30.0.255"],
    ])("a fixed_ip that is %s is 400 and changes nothing", async (_label, ip) => {
      const before = await tableCounts(t.db);
      const res = await boot(valid({ name: "fixed-bad", networks: [{ uuid: net, fixed_ip: ip }] }));
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.badRequest.code).toBe(400);
      expect(await tableCounts(t.db)).toEqual(before);
    });

    it("a full subnet (/29) is 409 with a clear message and changes nothing", async () => {
      const small = await makeNetwork("tiny-net", "10.40.0.0/29");
      const got: string[] = [];
      // /29: .1 is the gateway, .2-.6 the pool: five servers fit.
      for (let i = 0; i < 5; i++) {
        const res = await boot(valid({ name: `fill-${i}`, networks: [{ uuid: small.net }] }));
        expect(res.status, JSON.stringify(res.body)).toBe(202);
        got.push((await get(`/v2.1/servers/${res.body.server.id}`)).body.server.addresses["tiny-net"][0].addr);
      }
      expect(got.sort()).toEqual(["10.40.0.2", "10.40.0.3", "10.40.0.4", "10.40.0.5", "10.40.0.6"]);
      const before = await tableCounts(t.db);
      const full = await boot(valid({ name: "one-too-many", networks: [{ uuid: small.net }] }));
      expect(full.status, JSON.stringify(full.body)).toBe(409);
      expect(full.body.conflictingRequest.message).toMatch(/No more IP addresses available/);
      expect(full.body.conflictingRequest.message).toContain(small.net);
      expect(await tableCounts(t.db)).toEqual(before);
    });
  });

  describe("bad input is 400 badRequest and changes no table", () => {
    const cases: [string, () => request.Test][] = [
      ["malformed JSON", () => srv().post("/v2.1/servers").set(auth).set("content-type", "application/json").send('{"server": {"name": "x",')],
      ["empty body", () => srv().post("/v2.1/servers").set(auth).set("content-type", "application/json").send("")],
      ["no server wrapper", () => srv().post("/v2.1/servers").set(auth).send(valid())],
      ["missing flavorRef", () => boot({ name: "x", imageRef: imageId, networks: [{ uuid: privateNet }] })],
      ["missing name", () => boot({ flavorRef: "1", imageRef: imageId, networks: [{ uuid: privateNet }] })],
      ["empty name", () => boot(valid({ name: "" }))],
      ["blank name", () => boot(valid({ name: "   " }))],
      ["unknown flavorRef", () => boot(valid({ flavorRef: "no-such-flavor" }))],
      ["unknown imageRef", () => boot(valid({ imageRef: randomUUID() }))],
      ["non-uuid imageRef", () => boot(valid({ imageRef: "cirros" }))],
      ["missing imageRef", () => boot({ name: "x", flavorRef: "1", networks: [{ uuid: privateNet }] })],
      ["unknown network uuid", () => boot(valid({ networks: [{ uuid: randomUUID() }] }))],
      ["non-uuid network", () => boot(valid({ networks: [{ uuid: "private" }] }))],
      ["networks not a list", () => boot(valid({ networks: "some" }))],
      ["fixed_ip not an address", () => boot(valid({ networks: [{ uuid: privateNet, fixed_ip: "ten.zero" }] }))],
      ["unknown extra field in server", () => boot(valid({ colour: "blue" }))],
      ["unknown top-level field", () => boot(valid(), { extra: true })],
      ["image min_ram above the flavor's ram", () => boot(valid({ imageRef: bigImageId }))],
      ["image still queued", () => boot(valid({ imageRef: queuedImageId }))],
      ["metadata value an object", () => boot(valid({ metadata: { a: { b: "c" } } }))],
      ["metadata value a number (Nova does not coerce)", () => boot(valid({ metadata: { a: 1 } }))],
      ["user_data not base64", () => boot(valid({ user_data: "not base64 !!" }))],
      ["unknown security group", () => boot(valid({ security_groups: [{ name: "web" }] }))],
      ["min_count above max_count", () => boot(valid({ min_count: 3, max_count: 2 }))],
      ["bad accessIPv4", () => boot(valid({ accessIPv4: "999.1.1.1" }))],
    ];
    it.each(cases)("%s", async (_label, send) => {
      const before = await tableCounts(t.db);
      const res = await send();
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.badRequest.code).toBe(400);
      expect(res.body.badRequest.message).toBeTypeOf("string");
      expect(await tableCounts(t.db)).toEqual(before);
    });
  });

  it("100 concurrent boots on one /24 subnet all get distinct IPs", async () => {
    const { net } = await makeNetwork("crowd", "10.60.0.0/24");
    const responses = await Promise.all(
      Array.from({ length: 100 }, (_, i) => boot(valid({ name: `crowd-${i}`, networks: [{ uuid: net }] }))),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s !== 202), JSON.stringify(responses.find((r) => r.status !== 202)?.body)).toEqual([]);
    const ids = responses.map((r) => r.body.server.id as string);
    expect(new Set(ids).size).toBe(100);
    const ips: { ip_address: string }[] = await t.db("ip_allocations")
      .join("ports", "ports.id", "ip_allocations.port_id")
      .whereIn("ports.device_id", ids)
      .select("ip_allocations.ip_address");
    expect(ips).toHaveLength(100);
    expect(new Set(ips.map((i) => i.ip_address)).size).toBe(100);
    for (const { ip_address } of ips) {
      const last = Number(ip_address.split(".")[3]);
      expect(ip_address.startsWith("10.60.0.")).toBe(true);
      expect(last).toBeGreaterThanOrEqual(2);
      expect(last).toBeLessThanOrEqual(254);
    }
    // Boots written by one statement share one schedule job (a wake-up for all of them).
    const outbox: { payload: { boots: number } }[] = await t.db("outbox").where({ queue: "schedule" }).whereRaw("payload->>'instance_id' = ANY(?)", [ids]);
    expect(outbox.length).toBeGreaterThan(0);
    expect(outbox.length).toBeLessThan(100);
    expect(outbox.reduce((n, o) => n + o.payload.boots, 0)).toBe(100);
  });
});

describe("GET /v2.1/servers, /detail", () => {
  let a: string;
  let b: string;
  beforeAll(async () => {
    a = (await boot(valid({ name: "alpha-list" }))).body.server.id;
    b = (await boot(valid({ name: "beta-list" }))).body.server.id;
  });

  it("lists summaries {id, name, links}", async () => {
    const res = await get("/v2.1/servers");
    expect(res.status).toBe(200);
    const ids = res.body.servers.map((s: { id: string }) => s.id);
    expect(ids).toContain(a);
    expect(ids).toContain(b);
    for (const s of res.body.servers) expect(Object.keys(s).sort()).toEqual(["id", "links", "name"]);
    expect(res.body.servers_links).toBeUndefined();
  });

  it("lists newest first", async () => {
    const ids = (await get("/v2.1/servers")).body.servers.map((s: { id: string }) => s.id) as string[];
    expect(ids.indexOf(b)).toBeLessThan(ids.indexOf(a));
  });

  it("detail lists full servers and filters by ?status=BUILD", async () => {
    const res = await get("/v2.1/servers/detail?status=BUILD");
    expect(res.status).toBe(200);
    expect(res.body.servers.length).toBeGreaterThanOrEqual(2);
    for (const s of res.body.servers) {
      expect(s.status).toBe("BUILD");
      expect(s.metadata).toBeDefined();
      expect(s.image).toBeDefined();
      expect(s.flavor).toBeDefined();
    }
    expect((await get("/v2.1/servers/detail?status=ACTIVE")).body.servers).toEqual([]);
    expect((await get("/v2.1/servers/detail?status=build")).body.servers.length).toBe(res.body.servers.length);
    expect((await get("/v2.1/servers?status=NO_SUCH_STATUS")).body.servers).toEqual([]);
  });

  it("filters by ?name= as a regular expression", async () => {
    const exact = await get("/v2.1/servers?name=alpha-list");
    expect(exact.body.servers.map((s: { id: string }) => s.id)).toEqual([a]);
    const regex = await get(`/v2.1/servers/detail?name=${encodeURIComponent("^(alpha|beta)-li.t$")}`);
    expect(regex.body.servers.map((s: { id: string }) => s.id).sort()).toEqual([a, b].sort());
    expect((await get("/v2.1/servers?name=zzz-nothing")).body.servers).toEqual([]);
  });

  it("an invalid regular expression in ?name= is 400, never 500", async () => {
    for (const bad of ["(", "[a-", "(?<n>x)"]) {
      const res = await get(`/v2.1/servers?name=${encodeURIComponent(bad)}`);
      expect(res.status, `${bad}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.badRequest.code).toBe(400);
    }
  });

  it("pages with limit/marker; servers_links only on a full page", async () => {
    // The 100 concurrent boots are left out: they may share a millisecond, which the
    // same-millisecond test below covers on its own.
    const notCrowd = encodeURIComponent("^[^c]");
    const all = (await get(`/v2.1/servers?name=${notCrowd}`)).body.servers.map((s: { id: string }) => s.id) as string[];
    expect(all.length).toBeGreaterThan(7);
    const seen: string[] = [];
    let path: string | null = `/v2.1/servers?name=${notCrowd}&limit=7`;
    for (let i = 0; path && i < 100; i++) {
      const res: request.Response = await get(path);
      expect(res.status).toBe(200);
      seen.push(...res.body.servers.map((s: { id: string }) => s.id));
      const links = res.body.servers_links as { rel: string; href: string }[] | undefined;
      if (links) {
        expect(res.body.servers).toHaveLength(7);
        expect(links[0]!.rel).toBe("next");
        const url = new URL(links[0]!.href);
        expect(url.pathname).toBe("/v2.1/servers");
        expect(url.searchParams.get("marker")).toBe(res.body.servers[6].id);
        path = `${url.pathname}${url.search}`;
      } else {
        expect(res.body.servers.length).toBeLessThan(7);
        path = null;
      }
    }
    expect(seen).toEqual(all);
  });

  it("the detail next link keeps filters and points at /detail", async () => {
    const res = await get("/v2.1/servers/detail?status=BUILD&limit=1");
    expect(res.body.servers).toHaveLength(1);
    const url = new URL(res.body.servers_links[0].href);
    expect(url.pathname).toBe("/v2.1/servers/detail");
    expect(url.searchParams.get("status")).toBe("BUILD");
    expect(url.searchParams.get("limit")).toBe("1");
  });

  it("pages correctly through servers created within the same millisecond", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await boot(valid({ name: `same-ms-${i}` }))).body.server.id);
    // Same millisecond, different microseconds (several api replicas booting at once).
    for (const [i, id] of ids.entries()) {
      await t.db("instances").where({ id }).update({ created_at: t.db.raw(`'2001-01-01 00:00:00.1234${i}0+00'::timestamptz`) });
    }
    const seen: string[] = [];
    let path: string | null = "/v2.1/servers?name=same-ms&limit=1";
    for (let i = 0; path && i < 20; i++) {
      const res: request.Response = await get(path);
      seen.push(...res.body.servers.map((s: { id: string }) => s.id));
      const next = res.body.servers_links?.[0]?.href as string | undefined;
      path = next ? new URL(next).pathname + new URL(next).search : null;
    }
    expect(seen.sort()).toEqual([...ids].sort());
  });

  it("an unknown marker, a negative limit or a non-numeric limit is 400", async () => {
    for (const q of [`marker=${randomUUID()}`, "marker=nope", "limit=-1", "limit=abc"]) {
      const res = await get(`/v2.1/servers?${q}`);
      expect(res.status, q).toBe(400);
      expect(res.body.badRequest.code).toBe(400);
    }
  });
});

describe("GET /v2.1/servers/{id}", () => {
  it("an unknown server is 404 itemNotFound 'Instance <id> could not be found.'", async () => {
    const id = randomUUID();
    const res = await get(`/v2.1/servers/${id}`);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ itemNotFound: { code: 404, message: `Instance ${id} could not be found.` } });
  });

  it("a name is not an id: 404", async () => {
    const res = await get("/v2.1/servers/first");
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.code).toBe(404);
  });
});

describe("DELETE /v2.1/servers/{id}", () => {
  it("deletes a server that never got a host: 204, then 404, its ports and IPs gone", async () => {
    const res = await boot(valid({ name: "short-lived", networks: [{ uuid: privateNet, fixed_ip: "10.0.0.200" }] }));
    expect(res.status).toBe(202);
    const id = res.body.server.id as string;
    const port = await t.db("ports").where({ device_id: id }).first();
    expect(port).toBeDefined();
    const del = await srv().delete(`/v2.1/servers/${id}`).set(auth);
    expect(del.status).toBe(204);
    expect((await get(`/v2.1/servers/${id}`)).status).toBe(404);
    expect(await t.db("ports").where({ device_id: id })).toEqual([]);
    expect(await t.db("ip_allocations").where({ port_id: port.id })).toEqual([]);
    expect((await get("/v2.1/servers")).body.servers.map((s: { id: string }) => s.id)).not.toContain(id);
    expect((await get("/v2.1/servers/detail")).body.servers.map((s: { id: string }) => s.id)).not.toContain(id);
    // Its address is free again.
    const again = await boot(valid({ name: "reuses-ip", networks: [{ uuid: privateNet, fixed_ip: "10.0.0.200" }] }));
    expect(again.status, JSON.stringify(again.body)).toBe(202);
    // A second delete is 404.
    const twice = await srv().delete(`/v2.1/servers/${id}`).set(auth);
    expect(twice.status).toBe(404);
    expect(twice.body.itemNotFound.message).toBe(`Instance ${id} could not be found.`);
  });

  it("deleting an unknown server is 404", async () => {
    const id = randomUUID();
    const res = await srv().delete(`/v2.1/servers/${id}`).set(auth);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ itemNotFound: { code: 404, message: `Instance ${id} could not be found.` } });
    expect((await srv().delete("/v2.1/servers/not-a-uuid").set(auth)).status).toBe(404);
  });

  it("a client that sends the same X-Openstack-Request-Id on boot and delete still gets 204, not 500", async () => {
    const reqId = `req-${randomUUID()}`;
    const res = await boot(valid({ name: "same-req-id" })).set("X-Openstack-Request-Id", reqId);
    expect(res.status).toBe(202);
    const del = await srv().delete(`/v2.1/servers/${res.body.server.id}`).set(auth).set("X-Openstack-Request-Id", reqId);
    expect(del.status, JSON.stringify(del.body)).toBe(204);
    expect((await get(`/v2.1/servers/${res.body.server.id}`)).status).toBe(404);
  });
});
