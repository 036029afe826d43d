/** Flavor extra specs and private flavor access (nova-contract 1.5, microversion 2.1). */
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../api/app.js";
import type { Authenticator } from "../../api/auth/dev-auth.js";
import { ADMIN_TOKEN, PUBLIC_URL, createTestDatabase, type TestDatabase } from "../support/services.js";

// Two callers: the admin of project "admin" and a member of project "p1".
const auth: Authenticator = async (req) => {
  const token = req.headers["x-auth-token"];
  if (token === ADMIN_TOKEN) return { projectId: "admin", userId: "admin", roles: ["admin"], isAdmin: true };
  if (token === "member-p1") return { projectId: "p1", userId: "u1", roles: ["member"], isAdmin: false };
  if (token === "member-p2") return { projectId: "p2", userId: "u2", roles: ["member"], isAdmin: false };
  return null;
};

let database: TestDatabase;
let app: Awaited<ReturnType<typeof buildApp>>;
beforeAll(async () => {
  database = await createTestDatabase();
  app = await buildApp({ db: database.db, config: { publicUrl: PUBLIC_URL, imageStoreDir: "/tmp", serviceDownTimeSec: 60 }, auth });
  await app.ready();
  const mk = (flavor: Record<string, unknown>) => request(app.server).post("/v2.1/flavors").set({ "X-Auth-Token": ADMIN_TOKEN }).send({ flavor });
  expect((await mk({ name: "pub", id: "pub", ram: 64, vcpus: 1, disk: 1 })).status).toBe(200);
  expect((await mk({ name: "priv", id: "priv", ram: 64, vcpus: 1, disk: 1, "os-flavor-access:is_public": false })).status).toBe(200);
});
afterAll(async () => {
  await app.close();
  await database.drop();
});

const as = (token: string) => ({
  get: (p: string) => request(app.server).get(p).set({ "X-Auth-Token": token }),
  post: (p: string, body: unknown) => request(app.server).post(p).set({ "X-Auth-Token": token }).send(body as object),
  put: (p: string, body: unknown) => request(app.server).put(p).set({ "X-Auth-Token": token }).send(body as object),
  del: (p: string) => request(app.server).delete(p).set({ "X-Auth-Token": token }),
});
const admin = as(ADMIN_TOKEN);
const p1 = as("member-p1");
const p2 = as("member-p2");

describe("os-extra_specs", () => {
  it("starts empty", async () => {
    const res = await admin.get("/v2.1/flavors/pub/os-extra_specs");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ extra_specs: {} });
  });

  it("POST merges keys, answers with the given keys, and stores numbers and booleans as text", async () => {
    const a = await admin.post("/v2.1/flavors/pub/os-extra_specs", { extra_specs: { "hw:cpu_policy": "dedicated", "quota:cpu_shares": 1024 } });
    expect(a.status, JSON.stringify(a.body)).toBe(200);
    expect(a.body).toEqual({ extra_specs: { "hw:cpu_policy": "dedicated", "quota:cpu_shares": "1024" } });
    const b = await admin.post("/v2.1/flavors/pub/os-extra_specs", { extra_specs: { "hw:mem_page_size": "large", "trait:X": true } });
    expect(b.body).toEqual({ extra_specs: { "hw:mem_page_size": "large", "trait:X": "true" } });
    const all = await admin.get("/v2.1/flavors/pub/os-extra_specs");
    expect(all.body.extra_specs).toEqual({
      "hw:cpu_policy": "dedicated",
      "quota:cpu_shares": "1024",
      "hw:mem_page_size": "large",
      "trait:X": "true",
    });
  });

  it("GET, PUT and DELETE one key", async () => {
    expect((await admin.get("/v2.1/flavors/pub/os-extra_specs/hw:cpu_policy")).body).toEqual({ "hw:cpu_policy": "dedicated" });
    const put = await admin.put("/v2.1/flavors/pub/os-extra_specs/hw:cpu_policy", { "hw:cpu_policy": "shared" });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body).toEqual({ "hw:cpu_policy": "shared" });
    expect((await admin.get("/v2.1/flavors/pub/os-extra_specs/hw:cpu_policy")).body).toEqual({ "hw:cpu_policy": "shared" });
    const del = await admin.del("/v2.1/flavors/pub/os-extra_specs/hw:cpu_policy");
    expect(del.status).toBe(200);
    const gone = await admin.get("/v2.1/flavors/pub/os-extra_specs/hw:cpu_policy");
    expect(gone.status).toBe(404);
    expect(gone.body.itemNotFound.message).toBe("Flavor pub has no extra specs with key hw:cpu_policy.");
    expect((await admin.del("/v2.1/flavors/pub/os-extra_specs/hw:cpu_policy")).status).toBe(404);
  });

  it("PUT refuses a body that does not match the path or has several keys", async () => {
    const mismatch = await admin.put("/v2.1/flavors/pub/os-extra_specs/a", { b: "1" });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.badRequest.message).toBe("Request body and URI mismatch");
    const many = await admin.put("/v2.1/flavors/pub/os-extra_specs/a", { a: "1", b: "2" });
    expect(many.status).toBe(400);
    expect(many.body.badRequest.message).toBe("Request body contains too many items");
    expect((await admin.put("/v2.1/flavors/pub/os-extra_specs/a", {})).status).toBe(400);
  });

  it("refuses bad keys and values with 400 and stores nothing", async () => {
    const before = (await admin.get("/v2.1/flavors/pub/os-extra_specs")).body;
    for (const body of [
      { extra_specs: { "bad/key": "x" } },
      { extra_specs: { ok: "x".repeat(256) } },
      { extra_specs: { ok: { nested: 1 } } },
      { extra_specs: "nope" },
      { specs: {} },
    ]) {
      const res = await admin.post("/v2.1/flavors/pub/os-extra_specs", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.badRequest.code).toBe(400);
    }
    expect((await admin.get("/v2.1/flavors/pub/os-extra_specs")).body).toEqual(before);
  });

  it("404 for an unknown flavor", async () => {
    expect((await admin.get("/v2.1/flavors/nope/os-extra_specs")).status).toBe(404);
    expect((await admin.post("/v2.1/flavors/nope/os-extra_specs", { extra_specs: { a: "b" } })).status).toBe(404);
    expect((await admin.put("/v2.1/flavors/nope/os-extra_specs/a", { a: "b" })).status).toBe(404);
    const res = await admin.get("/v2.1/flavors/nope/os-extra_specs/a");
    expect(res.body.itemNotFound.message).toBe("Flavor nope could not be found.");
  });

  it("writes are admin only (403); members may read specs of flavors they see", async () => {
    const res = await p1.post("/v2.1/flavors/pub/os-extra_specs", { extra_specs: { a: "b" } });
    expect(res.status).toBe(403);
    expect(res.body.forbidden.message).toContain("os-flavor-extra-specs:create");
    expect((await p1.put("/v2.1/flavors/pub/os-extra_specs/a", { a: "b" })).status).toBe(403);
    expect((await p1.del("/v2.1/flavors/pub/os-extra_specs/hw:mem_page_size")).status).toBe(403);
    expect((await p1.get("/v2.1/flavors/pub/os-extra_specs")).status).toBe(200);
    expect((await p1.get("/v2.1/flavors/priv/os-extra_specs")).status).toBe(404);
  });
});

describe("private flavors and os-flavor-access", () => {
  it("a private flavor starts with an empty access list; a public one has none (404)", async () => {
    const res = await admin.get("/v2.1/flavors/priv/os-flavor-access");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ flavor_access: [] });
    const pub = await admin.get("/v2.1/flavors/pub/os-flavor-access");
    expect(pub.status).toBe(404);
    expect(pub.body.itemNotFound.message).toBe("Access list not available for public flavors.");
    expect((await admin.get("/v2.1/flavors/nope/os-flavor-access")).status).toBe(404);
  });

  it("non-admins see only public flavors until their project is given access", async () => {
    const list = await p1.get("/v2.1/flavors");
    expect(list.body.flavors.map((f: { id: string }) => f.id)).toEqual(["pub"]);
    expect((await p1.get("/v2.1/flavors/priv")).status).toBe(404);

    const add = await admin.post("/v2.1/flavors/priv/action", { addTenantAccess: { tenant: "p1" } });
    expect(add.status, JSON.stringify(add.body)).toBe(200);
    expect(add.body).toEqual({ flavor_access: [{ flavor_id: "priv", tenant_id: "p1" }] });

    expect((await p1.get("/v2.1/flavors")).body.flavors.map((f: { id: string }) => f.id)).toEqual(["priv", "pub"]);
    const detail = await p1.get("/v2.1/flavors/detail");
    expect(detail.body.flavors.find((f: { id: string }) => f.id === "priv")["os-flavor-access:is_public"]).toBe(false);
    expect((await p1.get("/v2.1/flavors/priv")).status).toBe(200);
    expect((await p1.get("/v2.1/flavors/priv/os-extra_specs")).status).toBe(200);
    // Another project still does not see it.
    expect((await p2.get("/v2.1/flavors")).body.flavors.map((f: { id: string }) => f.id)).toEqual(["pub"]);
    expect((await p2.get("/v2.1/flavors/priv")).status).toBe(404);
    // The admin's default list is public flavors; is_public=none shows all.
    expect((await admin.get("/v2.1/flavors?is_public=none")).body.flavors.map((f: { id: string }) => f.id)).toEqual(["priv", "pub"]);
  });

  it("adding twice is 409; adding to a public flavor is 409", async () => {
    const again = await admin.post("/v2.1/flavors/priv/action", { addTenantAccess: { tenant: "p1" } });
    expect(again.status).toBe(409);
    expect(again.body.conflictingRequest.message).toBe("Flavor access already exists for flavor priv and project p1 combination.");
    const pub = await admin.post("/v2.1/flavors/pub/action", { addTenantAccess: { tenant: "p1" } });
    expect(pub.status).toBe(409);
    expect(pub.body.conflictingRequest.message).toBe("Can not add access to a public flavor.");
  });

  it("removeTenantAccess takes access away; removing absent access is 404", async () => {
    await admin.post("/v2.1/flavors/priv/action", { addTenantAccess: { tenant: "p2" } });
    const rm = await admin.post("/v2.1/flavors/priv/action", { removeTenantAccess: { tenant: "p1" } });
    expect(rm.status).toBe(200);
    expect(rm.body).toEqual({ flavor_access: [{ flavor_id: "priv", tenant_id: "p2" }] });
    expect((await p1.get("/v2.1/flavors/priv")).status).toBe(404);
    const again = await admin.post("/v2.1/flavors/priv/action", { removeTenantAccess: { tenant: "p1" } });
    expect(again.status).toBe(404);
    expect(again.body.itemNotFound.message).toBe("Flavor access not found for priv / p1 combination.");
  });

  it("bad action bodies are 400; unknown flavor 404; members 403", async () => {
    for (const body of [{}, { addTenantAccess: {} }, { addTenantAccess: { tenant: "" } }, { grant: { tenant: "x" } }, { addTenantAccess: { tenant: "x", extra: 1 } }]) {
      const res = await admin.post("/v2.1/flavors/priv/action", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect((await admin.post("/v2.1/flavors/nope/action", { addTenantAccess: { tenant: "x" } })).status).toBe(404);
    expect((await p2.post("/v2.1/flavors/priv/action", { addTenantAccess: { tenant: "p2" } })).status).toBe(403);
    expect((await p2.get("/v2.1/flavors/priv/os-flavor-access")).status).toBe(403);
  });

  it("deleting a flavor removes its access rows", async () => {
    expect((await admin.del("/v2.1/flavors/priv")).status).toBe(202);
    expect(await database.db("flavor_access").where({ flavor_id: "priv" })).toEqual([]);
  });
});
