import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, createTestApp, type TestApp } from "../support/services.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

describe("smoke", () => {
  it("boots a server record", async () => {
    const auth = { "X-Auth-Token": ADMIN_TOKEN };
    const s = t.app.server;
    const v = await request(s).get("/v2.1/");
    expect(v.status).toBe(200);
    const f = await request(s).post("/v2.1/flavors").set(auth).send({ flavor: { name: "m1.tiny", ram: 64, vcpus: 1, disk: 1, id: "1" } });
    expect(f.status, JSON.stringify(f.body)).toBe(200);
    const img = await request(s).post("/v2/images").set(auth).send({ name: "cirros", disk_format: "qcow2", container_format: "bare", visibility: "public" });
    expect(img.status, JSON.stringify(img.body)).toBe(201);
    const up = await request(s).put(`/v2/images/${img.body.id}/file`).set(auth).set("content-type", "application/octet-stream").send(Buffer.alloc(1024, 1));
    expect(up.status, JSON.stringify(up.body)).toBe(204);
    const n = await request(s).post("/v2.0/networks").set(auth).send({ network: { name: "private" } });
    expect(n.status, JSON.stringify(n.body)).toBe(201);
    const sn = await request(s).post("/v2.0/subnets").set(auth).send({ subnet: { network_id: n.body.network.id, cidr: "10.0.0.0/24", ip_version: 4 } });
    expect(sn.status, JSON.stringify(sn.body)).toBe(201);
    const srv = await request(s).post("/v2.1/servers").set(auth).send({ server: { name: "vm1", flavorRef: "1", imageRef: img.body.id, networks: [{ uuid: n.body.network.id }] } });
    expect(srv.status, JSON.stringify(srv.body)).toBe(202);
    const show = await request(s).get(`/v2.1/servers/${srv.body.server.id}`).set(auth);
    expect(show.status, JSON.stringify(show.body)).toBe(200);
    console.log(JSON.stringify(show.body, null, 1));
    const list = await request(s).get(`/v2.1/servers/detail?status=BUILD`).set(auth);
    expect(list.body.servers.length).toBe(1);
    const del = await request(s).delete(`/v2.1/servers/${srv.body.server.id}`).set(auth);
    expect(del.status).toBe(204);
    expect((await request(s).get(`/v2.1/servers/${srv.body.server.id}`).set(auth)).status).toBe(404);
    const bad = await request(s).post("/v2.1/servers").set(auth).set("content-type", "application/json").send("{bad");
    console.log(bad.status, bad.body);
  });
});
