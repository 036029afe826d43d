/**
 * The server views are sent with JSON.stringify (api/plain-json.ts), not with the
 * serialiser Fastify compiles from the response schema. This holds the two together: for
 * servers in every state a view takes (building, active on a host, in ERROR with a fault,
 * with and without addresses, a key, a config drive, metadata), as an admin and as a
 * member, each body the show, detail and list routes send is exactly what fast-json-stringify
 * makes of it with the route's schema (no property the schema lacks, none in another type
 * or order).
 */
import build from "fast-json-stringify";
import request from "supertest";
import { Type, type TSchema } from "typebox";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Links } from "../../api/schemas/common.js";
import { Server, ServerSummary } from "../../api/schemas/server.js";
import { as, createAuthApp, type AuthApp } from "./auth-support.js";

let t: AuthApp;
const ids: string[] = [];

const compile = (schema: TSchema) => build(JSON.parse(JSON.stringify(schema)) as never);
const detailPage = compile(Type.Object({ servers: Type.Array(Server), servers_links: Type.Optional(Links) }));
const showOne = compile(Type.Object({ server: Server }));
const summaryPage = compile(Type.Object({ servers: Type.Array(ServerSummary), servers_links: Type.Optional(Links) }));

beforeAll(async () => {
  t = await createAuthApp({ enforceQuotas: false });
  const admin = as(t, t.tokens.admin!);
  const member = as(t, t.tokens["member-a"]!);
  expect((await admin.post("/v2.1/flavors", { flavor: { name: "m1.small", id: "1", ram: 512, vcpus: 1, disk: 1 } })).status).toBe(200);
  const img = await admin.post("/v2/images", { name: "cirros", disk_format: "qcow2", container_format: "bare", visibility: "public" });
  const up = await request(t.app.server)
    .put(`/v2/images/${img.body.id}/file`)
    .set({ "X-Auth-Token": t.tokens.admin!, "content-type": "application/octet-stream" })
    .send(Buffer.alloc(64, 1));
  expect(up.status).toBe(204);
  const net = await member.post("/v2.0/networks", { network: { name: "json-net" } });
  expect((await member.post("/v2.0/subnets", { subnet: { network_id: net.body.network.id, cidr: "10.77.0.0/24", ip_version: 4 } })).status).toBe(201);
  expect((await member.post("/v2.1/os-keypairs", { keypair: { name: "json-key" } })).status).toBe(200);
  const bodies = [
    { name: "plain", flavorRef: "1", imageRef: img.body.id, networks: "none" },
    { name: "wired", flavorRef: "1", imageRef: img.body.id, networks: [{ uuid: net.body.network.id }], metadata: { role: "db", "ü": "ß" } },
    { name: "failed", flavorRef: "1", imageRef: img.body.id, networks: [{ uuid: net.body.network.id }], key_name: "json-key", config_drive: true },
  ];
  for (const server of bodies) {
    const res = await member.post("/v2.1/servers", { server });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    ids.push(res.body.server.id);
  }
  const db = t.database.db;
  await db("instances")
    .where({ id: ids[1] })
    .update({ vm_state: "active", task_state: null, power_state: 1, host: "json-host", node: "json-host", launched_at: db.fn.now() });
  await db("instances").where({ id: ids[2] }).update({ vm_state: "error", task_state: null, host: "json-host", node: "json-host" });
  await db("instance_faults").insert({ instance_id: ids[2], code: 500, message: "Build failed", details: "Traceback: nothing here", host: "json-host" });
}, 60_000);
afterAll(async () => {
  await t?.close();
});

describe("server views sent as JSON.stringify makes them", () => {
  for (const persona of ["admin", "member-a"]) {
    it(`match the route schema's serialiser, as ${persona}`, async () => {
      const get = (url: string) => request(t.app.server).get(url).set("X-Auth-Token", t.tokens[persona]!).buffer(true);
      const detail = await get(`/v2.1/servers/detail${persona === "admin" ? "?all_tenants=1" : ""}`);
      expect(detail.status).toBe(200);
      expect(detail.headers["content-type"]).toMatch(/^application\/json/);
      expect(detail.body.servers).toHaveLength(3);
      expect(detail.body.servers.some((s: { fault?: unknown }) => s.fault !== undefined)).toBe(true);
      expect(detail.text).toBe(detailPage(JSON.parse(detail.text)));
      for (const id of ids) {
        const show = await get(`/v2.1/servers/${id}`);
        expect(show.status).toBe(200);
        expect(show.text).toBe(showOne(JSON.parse(show.text)));
      }
      // A page with a next link.
      const paged = await get(`/v2.1/servers/detail?limit=2${persona === "admin" ? "&all_tenants=1" : ""}`);
      expect(paged.body.servers_links).toHaveLength(1);
      expect(paged.text).toBe(detailPage(JSON.parse(paged.text)));
      // The summary list, whole and paged.
      for (const query of ["", "?limit=2"]) {
        const summary = await get(`/v2.1/servers${query}${persona === "admin" ? `${query ? "&" : "?"}all_tenants=1` : ""}`);
        expect(summary.status).toBe(200);
        expect(summary.body.servers.length).toBe(query ? 2 : 3);
        expect(summary.text).toBe(summaryPage(JSON.parse(summary.text)));
      }
    });
  }

  it("would catch a property the schema lacks", async () => {
    const show = await request(t.app.server).get(`/v2.1/servers/${ids[0]}`).set("X-Auth-Token", t.tokens.admin!);
    const withExtra = { server: { ...show.body.server, secret: "y" } };
    expect(JSON.stringify(withExtra)).not.toBe(showOne(withExtra));
    expect(JSON.stringify(show.body)).toBe(showOne(show.body));
  });
});
