/**
 * Idempotency-Key on POST /servers and POST /servers/{id}/action, against real Postgres:
 * a replay returns the first answer and creates nothing; another body with the key is
 * 422; keys are per project; concurrent duplicates create one server; a refused request
 * keeps the key free; the header is in the OpenAPI document.
 */
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalJson, fingerprint, withIdempotency } from "../../api/idempotency.js";
import { ADMIN_TOKEN, createTestApp, tableCounts, type TestApp } from "../support/services.js";

let t: TestApp;
const auth = { "X-Auth-Token": ADMIN_TOKEN };
let imageId: string;
const srv = () => request(t.app.server);
const boot = (body: unknown, key?: string) => {
  const r = srv().post("/v2.1/servers").set(auth);
  return (key ? r.set("Idempotency-Key", key) : r).send(body as object);
};
const countInstances = async () => Number((await t.db("instances").count<{ c: number }[]>("* as c"))[0]!.c);

beforeAll(async () => {
  t = await createTestApp({ enforceQuotas: false });
  await t.app.listen({ port: 0, host: "127.0.0.1" });
  expect((await srv().post("/v2.1/flavors").set(auth).send({ flavor: { name: "tiny", id: "tiny", ram: 64, vcpus: 1, disk: 1 } })).status).toBe(200);
  const img = await srv().post("/v2/images").set(auth).send({ disk_format: "qcow2", container_format: "bare", visibility: "public" });
  await srv().put(`/v2/images/${img.body.id}/file`).set(auth).set("content-type", "application/octet-stream").send(Buffer.alloc(1024));
  imageId = img.body.id;
});

afterAll(async () => t?.close());

const body = (name: string) => ({ server: { name, flavorRef: "tiny", imageRef: imageId, networks: "none" } });

describe("Idempotency-Key on POST /v2.1/servers", () => {
  it("replays the first answer (status, body, Location) and creates nothing new", async () => {
    const first = await boot(body("idem-1"), "key-1");
    expect(first.status).toBe(202);
    const before = await tableCounts(t.db);
    const again = await boot(body("idem-1"), "key-1");
    expect(again.status).toBe(202);
    expect(again.body).toEqual(first.body);
    expect(again.headers.location).toBe(first.headers.location);
    expect(again.headers["idempotent-replayed"]).toBe("true");
    expect(await tableCounts(t.db)).toEqual(before);
  });

  it("treats the same body with its keys in another order as the same request", async () => {
    const a = await boot({ server: { name: "idem-order", flavorRef: "tiny", imageRef: imageId, networks: "none" } }, "key-order");
    const b = await boot({ server: { networks: "none", imageRef: imageId, flavorRef: "tiny", name: "idem-order" } }, "key-order");
    expect(b.body.server.id).toBe(a.body.server.id);
    expect(canonicalJson({ b: 1, a: [2, { d: 1, c: 2 }] })).toBe('{"a":[2,{"c":2,"d":1}],"b":1}');
    expect(fingerprint("POST", "/x", { a: 1, b: 2 })).toBe(fingerprint("post", "/x", { b: 2, a: 1 }));
  });

  it("answers 422 with a clear message for the same key with another body, and changes nothing", async () => {
    await boot(body("idem-2"), "key-2");
    const before = await tableCounts(t.db);
    const other = await boot(body("idem-2-different"), "key-2");
    expect(other.status).toBe(422);
    expect(other.body.unprocessableEntity.code).toBe(422);
    expect(other.body.unprocessableEntity.message).toMatch(/Idempotency-Key key-2 was already used with a different request/);
    expect(await tableCounts(t.db)).toEqual(before);
  });

  it("keeps keys per project", async () => {
    const stored = (status: number) => async () => ({ status, body: { n: status }, headers: {} });
    const a = await withIdempotency(t.db, { projectId: "project-a", key: "shared-key", fingerprint: "fa" }, stored(201));
    const b = await withIdempotency(t.db, { projectId: "project-b", key: "shared-key", fingerprint: "fb" }, stored(202));
    expect([a.replayed, b.replayed]).toEqual([false, false]);
    expect(b.response.status).toBe(202);
    const a2 = await withIdempotency(t.db, { projectId: "project-a", key: "shared-key", fingerprint: "fa" }, stored(500));
    expect(a2).toEqual({ replayed: true, response: { status: 201, body: { n: 201 }, headers: {} } });
    await expect(withIdempotency(t.db, { projectId: "project-b", key: "shared-key", fingerprint: "fa" }, stored(500))).rejects.toThrow(/different request/);
  });

  it("creates exactly one server for concurrent duplicates", async () => {
    const before = await countInstances();
    const answers = await Promise.all(Array.from({ length: 12 }, () => boot(body("idem-race"), "key-race")));
    expect(answers.map((a) => a.status)).toEqual(new Array(12).fill(202));
    expect(new Set(answers.map((a) => a.body.server.id)).size).toBe(1);
    expect(await countInstances()).toBe(before + 1);
  });

  it("stores nothing for a refused request: the key stays free for a corrected retry", async () => {
    const bad = await boot({ server: { name: "idem-bad", flavorRef: "no-such-flavor", imageRef: imageId, networks: "none" } }, "key-bad");
    expect(bad.status).toBe(400);
    expect(await t.db("idempotency_keys").where({ key: "key-bad" }).first()).toBeUndefined();
    const good = await boot(body("idem-bad"), "key-bad");
    expect(good.status).toBe(202);
  });

  it("refuses a malformed key with 400", async () => {
    const res = await boot(body("idem-x"), "has space");
    expect(res.status).toBe(400);
    const long = await boot(body("idem-x"), "k".repeat(256));
    expect(long.status).toBe(400);
  });

  it("is a header parameter of both routes in the OpenAPI document", async () => {
    const doc = (await srv().get("/openapi.json")).body;
    for (const [p, m] of [["/v2.1/servers", "post"], ["/v2.1/servers/{id}/action", "post"]] as const) {
      const params = (doc.paths[p][m].parameters ?? []) as { in: string; name: string }[];
      expect(params.some((x) => x.in === "header" && x.name.toLowerCase() === "idempotency-key"), p).toBe(true);
    }
  });
});

describe("Idempotency-Key on POST /v2.1/servers/{id}/action", () => {
  it("replays the first answer of an action and starts nothing new", async () => {
    const created = await boot(body("idem-act"));
    const id = created.body.server.id as string;
    await t.db("instances").where({ id }).update({ vm_state: "active", task_state: null, host: "h1", power_state: 1 });
    const act = (b: unknown, key: string) => srv().post(`/v2.1/servers/${id}/action`).set(auth).set("Idempotency-Key", key).send(b as object);
    const first = await act({ "os-stop": null }, "stop-1");
    expect(first.status).toBe(202);
    const before = await tableCounts(t.db);
    const again = await act({ "os-stop": null }, "stop-1");
    expect(again.status).toBe(202); // not the 409 a second stop would get
    expect(again.headers["idempotent-replayed"]).toBe("true");
    expect(await tableCounts(t.db)).toEqual(before);
    const other = await act({ "os-start": null }, "stop-1");
    expect(other.status).toBe(422);
    const fresh = await act({ "os-stop": null }, "stop-2");
    expect(fresh.status).toBe(409);
  });
});
