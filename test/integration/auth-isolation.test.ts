/**
 * Tenant isolation and the reader role, table-driven, with real tokens from a real
 * issuer: a member of project B touching every resource of project A gets 404 (never
 * 403) and never sees it in a list; a reader of project A gets 403 on every mutating
 * route of its own project (every such route in the policy table, found automatically).
 */
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROUTE_RULES, RULES } from "../../api/policy.js";
import { as, createAuthApp, type AuthApp } from "./auth-support.js";

let t: AuthApp;
const A: Record<string, string> = {};

beforeAll(async () => {
  t = await createAuthApp();
  const admin = as(t, t.tokens.admin!);
  const a = as(t, t.tokens["member-a"]!);
  expect((await admin.post("/v2.1/flavors", { flavor: { name: "m1.small", id: "1", ram: 512, vcpus: 1, disk: 1 } })).status).toBe(200);
  const pub = await admin.post("/v2/images", { name: "cirros", disk_format: "qcow2", container_format: "bare", visibility: "public" });
  expect(pub.status).toBe(201);
  const up = await request(t.app.server)
    .put(`/v2/images/${pub.body.id}/file`)
    .set({ "X-Auth-Token": t.tokens.admin!, "content-type": "application/octet-stream" })
    .send(Buffer.alloc(4096, 1));
  expect(up.status).toBe(204);
  A.publicImage = pub.body.id;

  const img = await a.post("/v2/images", { name: "private-a", disk_format: "qcow2", container_format: "bare" });
  expect(img.status, JSON.stringify(img.body)).toBe(201);
  A.image = img.body.id;
  const net = await a.post("/v2.0/networks", { network: { name: "net-a" } });
  expect(net.status, JSON.stringify(net.body)).toBe(201);
  A.network = net.body.network.id;
  const sub = await a.post("/v2.0/subnets", { subnet: { network_id: A.network, cidr: "10.9.0.0/24", ip_version: 4 } });
  expect(sub.status, JSON.stringify(sub.body)).toBe(201);
  A.subnet = sub.body.subnet.id;
  const kp = await a.post("/v2.1/os-keypairs", { keypair: { name: "key-a" } });
  expect(kp.status, JSON.stringify(kp.body)).toBe(200);
  A.keypair = "key-a";
  const sg = await a.post("/v2.1/os-server-groups", { server_group: { name: "group-a", policies: ["anti-affinity"] } });
  expect(sg.status, JSON.stringify(sg.body)).toBe(200);
  A.group = sg.body.server_group.id;
  const boot = await a.post("/v2.1/servers", {
    server: { name: "vm-a", flavorRef: "1", imageRef: A.publicImage, networks: [{ uuid: A.network }], metadata: { k: "v" } },
  });
  expect(boot.status, JSON.stringify(boot.body)).toBe(202);
  A.server = boot.body.server.id;
  expect((await a.put(`/v2.1/servers/${A.server}/tags/t`)).status).toBe(201);
  const ports = await a.get(`/v2.0/ports?device_id=${A.server}`);
  expect(ports.status).toBe(200);
  A.port = ports.body.ports[0].id;
  const actions = await a.get(`/v2.1/servers/${A.server}/os-instance-actions`);
  A.request = actions.body.instanceActions[0].request_id;
});
afterAll(async () => {
  await t?.close();
});

/** Every route that touches one of A's resources, as [method, path, body]. */
const onA = (): [string, string, unknown?][] => [
  ["GET", `/v2.1/servers/${A.server}`],
  ["PUT", `/v2.1/servers/${A.server}`, { server: { name: "stolen" } }],
  ["DELETE", `/v2.1/servers/${A.server}`],
  ["POST", `/v2.1/servers/${A.server}/action`, { "os-stop": null }],
  ["POST", `/v2.1/servers/${A.server}/action`, { lock: null }],
  ["POST", `/v2.1/servers/${A.server}/action`, { createImage: { name: "x" } }],
  ["POST", `/v2.1/servers/${A.server}/action`, { "os-getConsoleOutput": {} }],
  ["GET", `/v2.1/servers/${A.server}/metadata`],
  ["POST", `/v2.1/servers/${A.server}/metadata`, { metadata: { x: "y" } }],
  ["PUT", `/v2.1/servers/${A.server}/metadata`, { metadata: { x: "y" } }],
  ["GET", `/v2.1/servers/${A.server}/metadata/k`],
  ["PUT", `/v2.1/servers/${A.server}/metadata/k`, { meta: { k: "w" } }],
  ["DELETE", `/v2.1/servers/${A.server}/metadata/k`],
  ["GET", `/v2.1/servers/${A.server}/tags`],
  ["PUT", `/v2.1/servers/${A.server}/tags`, { tags: ["x"] }],
  ["DELETE", `/v2.1/servers/${A.server}/tags`],
  ["GET", `/v2.1/servers/${A.server}/tags/t`],
  ["PUT", `/v2.1/servers/${A.server}/tags/u`],
  ["DELETE", `/v2.1/servers/${A.server}/tags/t`],
  ["GET", `/v2.1/servers/${A.server}/os-instance-actions`],
  ["GET", `/v2.1/servers/${A.server}/os-instance-actions/${A.request}`],
  ["GET", `/v2/images/${A.image}`],
  ["GET", `/v2/images/${A.image}/file`],
  ["DELETE", `/v2/images/${A.image}`],
  ["GET", `/v2.0/networks/${A.network}`],
  ["DELETE", `/v2.0/networks/${A.network}`],
  ["GET", `/v2.0/subnets/${A.subnet}`],
  ["DELETE", `/v2.0/subnets/${A.subnet}`],
  ["GET", `/v2.0/ports/${A.port}`],
  ["GET", `/v2.1/os-keypairs/${A.keypair}`],
  ["DELETE", `/v2.1/os-keypairs/${A.keypair}`],
  ["GET", `/v2.1/os-server-groups/${A.group}`],
  ["DELETE", `/v2.1/os-server-groups/${A.group}`],
];

describe("a member of project B against project A's resources", () => {
  it("gets 404 on every route, and nothing changes", async () => {
    const b = as(t, t.tokens["member-b"]!);
    const wrong: string[] = [];
    for (const [method, path, body] of onA()) {
      const res = await b.call(method, path, body);
      if (res.status !== 404) wrong.push(`${method} ${path} ${JSON.stringify(body ?? null)} -> ${res.status} ${JSON.stringify(res.body)}`);
    }
    expect(wrong).toEqual([]);
    // A still has all of it.
    const a = as(t, t.tokens["member-a"]!);
    expect((await a.get(`/v2.1/servers/${A.server}`)).body.server.name).toBe("vm-a");
    expect((await a.get(`/v2.1/servers/${A.server}/tags`)).body.tags).toEqual(["t"]);
    expect((await a.get(`/v2.1/os-keypairs/${A.keypair}`)).status).toBe(200);
  });

  it("never sees them in a list (also with all_tenants)", async () => {
    const b = as(t, t.tokens["member-b"]!);
    const lists: [string, (body: any) => string[]][] = [
      ["/v2.1/servers", (x) => x.servers.map((s: any) => s.id)],
      ["/v2.1/servers?all_tenants=1", (x) => x.servers.map((s: any) => s.id)],
      ["/v2.1/servers/detail?all_tenants=1", (x) => x.servers.map((s: any) => s.id)],
      ["/v2/images", (x) => x.images.map((i: any) => i.id)],
      ["/v2.0/networks", (x) => x.networks.map((n: any) => n.id)],
      ["/v2.0/subnets", (x) => x.subnets.map((s: any) => s.id)],
      ["/v2.0/ports", (x) => x.ports.map((p: any) => p.id)],
      [`/v2.0/ports?device_id=${A.server}`, (x) => x.ports.map((p: any) => p.id)],
      ["/v2.1/os-keypairs", (x) => x.keypairs.map((k: any) => k.keypair.name)],
      ["/v2.1/os-server-groups?all_projects=1", (x) => x.server_groups.map((g: any) => g.id)],
    ];
    const secrets = Object.values(A).filter((v) => v !== A.publicImage);
    for (const [path, ids] of lists) {
      const res = await b.get(path);
      expect(res.status, path).toBe(200);
      const seen = ids(res.body);
      expect(seen.filter((id) => secrets.includes(id)), path).toEqual([]);
    }
    // ...while A sees its own, so the lists above were not empty by accident.
    const a = as(t, t.tokens["member-a"]!);
    expect((await a.get("/v2.1/servers")).body.servers.map((s: any) => s.id)).toContain(A.server);
    expect((await a.get("/v2/images")).body.images.map((i: any) => i.id)).toContain(A.image);
    expect((await a.get("/v2.0/ports")).body.ports.map((p: any) => p.id)).toContain(A.port);
  });

  it("cannot boot on A's private network or image", async () => {
    const b = as(t, t.tokens["member-b"]!);
    const net = await b.post("/v2.1/servers", { server: { name: "x", flavorRef: "1", imageRef: A.publicImage, networks: [{ uuid: A.network }] } });
    expect(net.status).toBe(400);
    expect(net.body.badRequest.message).toMatch(/could not be found/);
    const img = await b.post("/v2.1/servers", { server: { name: "x", flavorRef: "1", imageRef: A.image, networks: "none" } });
    expect([400, 404]).toContain(img.status);
  });
});

describe("a reader of project A", () => {
  const fill = (route: string): string =>
    route
      .replace(/^(\S+) /, "")
      .replace(/\/servers\/:id/, `/servers/${A.server}`)
      .replace(/\/images\/:id/, `/images/${A.image}`)
      .replace(/\/networks\/:id/, `/networks/${A.network}`)
      .replace(/\/subnets\/:id/, `/subnets/${A.subnet}`)
      .replace(/\/os-server-groups\/:id/, `/os-server-groups/${A.group}`)
      .replace(/:project_id/, "pa")
      .replace(/:name/, A.keypair!)
      .replace(/:request_id/, A.request!)
      .replace(/:id/, "1")
      .replace(/:key/, "k")
      .replace(/:tag/, "t");

  it("gets 403 on every mutating route, and reads its own project", async () => {
    const r = as(t, t.tokens["reader-a"]!);
    const mutating = Object.keys(ROUTE_RULES).filter((k) => /^(POST|PUT|DELETE|PATCH) /.test(k));
    expect(mutating.length).toBeGreaterThan(30);
    const wrong: string[] = [];
    for (const route of mutating) {
      const method = route.split(" ")[0]!;
      const res = await r.call(method, fill(route), {});
      if (res.status !== 403) wrong.push(`${route} -> ${res.status} ${JSON.stringify(res.body)}`);
    }
    expect(wrong).toEqual([]);
    expect((await r.get(`/v2.1/servers/${A.server}`)).status).toBe(200);
    expect((await r.get(`/v2.1/servers/${A.server}/metadata`)).body.metadata).toEqual({ k: "v" });
    expect((await r.get(`/v2/images/${A.image}`)).status).toBe(200);
  });
});

describe("every route names its rule", () => {
  it("each documented route is in the policy table, with a rule that exists", async () => {
    const doc = t.app.swagger() as { paths: Record<string, Record<string, unknown>> };
    const missing: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) {
        if (!["get", "post", "put", "delete", "patch"].includes(method)) continue;
        const key = `${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ":$1")}`;
        const isPublic = (await request(t.app.server)[method as "get"](path.replace(/\{[^}]+\}/g, "x"))).status !== 401;
        if (isPublic) continue;
        if (!(key in ROUTE_RULES)) missing.push(key);
        else expect(RULES[ROUTE_RULES[key]!], key).toBeDefined();
      }
    }
    expect(missing).toEqual([]);
  });
});
