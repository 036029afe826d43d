/**
 * Version discovery, request ids, microversion negotiation, auth and the OpenAPI
 * document: the cross-cutting contract every client relies on (nova-contract 1.1).
 */
import request from "supertest";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, PUBLIC_URL, createTestApp, type TestApp } from "../support/services.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const auth = { "X-Auth-Token": ADMIN_TOKEN };
const REQ_ID = /^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The single fault key of a Nova error envelope, and its content. */
function fault(body: unknown): [string, { code: number; message: string }] {
  expect(body).toBeTypeOf("object");
  const entries = Object.entries(body as Record<string, { code: number; message: string }>);
  expect(entries).toHaveLength(1);
  const [name, content] = entries[0]!;
  expect(content.message).toBeTypeOf("string");
  expect(content.message.length).toBeGreaterThan(0);
  return [name, content];
}

describe("version discovery", () => {
  it("GET / without a token lists v2.1 as CURRENT", async () => {
    const res = await request(t.app.server).get("/");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/application\/json/);
    const versions = res.body.versions as Record<string, unknown>[];
    expect(Array.isArray(versions)).toBe(true);
    const v21 = versions.find((v) => v.id === "v2.1");
    expect(v21).toBeDefined();
    expect(v21).toMatchObject({ status: "CURRENT", version: "2.1", min_version: "2.1", updated: "2013-07-23T11:33:21Z" });
    expect(v21!.links).toContainEqual({ rel: "self", href: `${PUBLIC_URL}/v2.1/` });
  });

  it.each(["/v2.1/", "/v2.1"])("GET %s without a token is the v2.1 version document", async (path) => {
    const res = await request(t.app.server).get(path);
    expect(res.status).toBe(200);
    const v = res.body.version;
    expect(v).toMatchObject({ id: "v2.1", status: "CURRENT", version: "2.1", min_version: "2.1" });
    expect(v.updated).toBe("2013-07-23T11:33:21Z");
    expect(v["media-types"]).toEqual([{ base: "application/json", type: "application/vnd.openstack.compute+json;version=2.1" }]);
    const rels = (v.links as { rel: string; href: string }[]).map((l) => l.rel);
    expect(rels).toContain("self");
    expect(rels).toContain("describedby");
    expect(v.links.find((l: { rel: string }) => l.rel === "self").href).toBe(`${PUBLIC_URL}/v2.1/`);
  });
});

describe("request ids", () => {
  it("every response carries x-openstack-request-id and x-compute-request-id of the form req-<uuid4>", async () => {
    const responses = [
      await request(t.app.server).get("/"),
      await request(t.app.server).get("/v2.1/"),
      await request(t.app.server).get("/v2.1/flavors").set(auth),
      await request(t.app.server).get("/v2.1/flavors"), // 401
      await request(t.app.server).get("/v2.1/servers/nope").set(auth), // 404
      await request(t.app.server).post("/v2.1/flavors").set(auth).set("content-type", "application/json").send("{bad"), // 400
      await request(t.app.server).get("/v2.1/").set("OpenStack-API-Version", "compute 2.99"), // 406
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 401, 404, 400, 406]);
    const ids = new Set<string>();
    for (const res of responses) {
      expect(res.headers["x-openstack-request-id"], `status ${res.status}`).toMatch(REQ_ID);
      expect(res.headers["x-compute-request-id"], `status ${res.status}`).toMatch(REQ_ID);
      ids.add(res.headers["x-openstack-request-id"] as string);
    }
    expect(ids.size).toBe(responses.length);
  });

  it("echoes a valid client-sent X-Openstack-Request-Id", async () => {
    const mine = `req-${randomUUID()}`;
    const res = await request(t.app.server).get("/v2.1/flavors").set(auth).set("X-Openstack-Request-Id", mine);
    expect(res.status).toBe(200);
    expect(res.headers["x-openstack-request-id"]).toBe(mine);
  });

  it("ignores a malformed client-sent request id and generates its own", async () => {
    const res = await request(t.app.server).get("/v2.1/flavors").set(auth).set("X-Openstack-Request-Id", "not-a-request-id");
    expect(res.status).toBe(200);
    expect(res.headers["x-openstack-request-id"]).not.toBe("not-a-request-id");
    expect(res.headers["x-openstack-request-id"]).toMatch(REQ_ID);
  });
});

describe("microversions", () => {
  const expectVersionHeaders = (res: request.Response) => {
    expect(res.headers["openstack-api-version"]).toBe("compute 2.1");
    expect(res.headers["x-openstack-nova-api-version"]).toBe("2.1");
    const vary = String(res.headers["vary"]).toLowerCase();
    expect(vary).toContain("openstack-api-version");
    expect(vary).toContain("x-openstack-nova-api-version");
  };

  it("answers 2.1 headers on /v2.1 responses when no version is asked for", async () => {
    const res = await request(t.app.server).get("/v2.1/flavors").set(auth);
    expect(res.status).toBe(200);
    expectVersionHeaders(res);
  });

  it("answers version headers on /v2.1 error responses too", async () => {
    const res = await request(t.app.server).get(`/v2.1/servers/${randomUUID()}`).set(auth);
    expect(res.status).toBe(404);
    expectVersionHeaders(res);
  });

  it("accepts OpenStack-API-Version: compute 2.1", async () => {
    const res = await request(t.app.server).get("/v2.1/flavors").set(auth).set("OpenStack-API-Version", "compute 2.1");
    expect(res.status).toBe(200);
    expectVersionHeaders(res);
  });

  it("accepts the legacy X-OpenStack-Nova-API-Version: 2.1", async () => {
    const res = await request(t.app.server).get("/v2.1/flavors").set(auth).set("X-OpenStack-Nova-API-Version", "2.1");
    expect(res.status).toBe(200);
    expectVersionHeaders(res);
  });

  it("maps latest to 2.1", async () => {
    const res = await request(t.app.server).get("/v2.1/flavors").set(auth).set("OpenStack-API-Version", "compute latest");
    expect(res.status).toBe(200);
    expectVersionHeaders(res);
    const legacy = await request(t.app.server).get("/v2.1/flavors").set(auth).set("X-OpenStack-Nova-API-Version", "latest");
    expect(legacy.status).toBe(200);
    expectVersionHeaders(legacy);
  });

  it.each([
    ["OpenStack-API-Version", "compute 2.99"],
    ["OpenStack-API-Version", "compute 3.0"],
    ["X-OpenStack-Nova-API-Version", "2.99"],
  ])("%s: %s is 406 with the Nova envelope", async (header, value) => {
    const res = await request(t.app.server).get("/v2.1/flavors").set(auth).set(header, value);
    expect(res.status).toBe(406);
    const [, content] = fault(res.body);
    expect(content.code).toBe(406);
    expect(content.message).toContain(value.replace("compute ", ""));
    expect(res.headers["vary"]).toBeDefined();
    expect(res.headers["x-openstack-request-id"]).toMatch(REQ_ID);
  });

  it("a malformed version is 400 badRequest, as Nova answers it", async () => {
    const res = await request(t.app.server).get("/v2.1/flavors").set(auth).set("OpenStack-API-Version", "compute banana");
    expect(res.status).toBe(400);
    expect(res.body.badRequest.message).toContain("banana");
  });

  it("an unsupported microversion is 406 even without a token", async () => {
    const res = await request(t.app.server).get("/v2.1/servers").set("OpenStack-API-Version", "compute 2.99");
    expect(res.status).toBe(406);
  });
});

describe("auth", () => {
  it("no token is 401 unauthorized with a WWW-Authenticate header", async () => {
    const res = await request(t.app.server).get("/v2.1/servers");
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ unauthorized: { code: 401, message: expect.any(String) } });
    expect(res.headers["www-authenticate"]).toBeTruthy();
  });

  it("a wrong token is 401", async () => {
    const res = await request(t.app.server).get("/v2.1/servers").set("X-Auth-Token", "wrong-token");
    expect(res.status).toBe(401);
    expect(res.body.unauthorized.code).toBe(401);
    expect(res.headers["www-authenticate"]).toBeTruthy();
  });

  it("a wrong token of the right length is 401", async () => {
    const res = await request(t.app.server).get("/v2.1/servers").set("X-Auth-Token", "x".repeat(ADMIN_TOKEN.length));
    expect(res.status).toBe(401);
  });

  it("a wrong token is 401 on the image and network APIs as well", async () => {
    expect((await request(t.app.server).get("/v2/images")).status).toBe(401);
    expect((await request(t.app.server).get("/v2.0/networks").set("X-Auth-Token", "nope")).status).toBe(401);
  });

  it("Authorization: Bearer <token> works", async () => {
    const res = await request(t.app.server).get("/v2.1/servers").set("Authorization", `Bearer ${ADMIN_TOKEN}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ servers: [] });
  });

  it("Authorization: Bearer with a wrong token is 401", async () => {
    const res = await request(t.app.server).get("/v2.1/servers").set("Authorization", "Bearer nope");
    expect(res.status).toBe(401);
  });

  it("X-Auth-Token works", async () => {
    const res = await request(t.app.server).get("/v2.1/servers").set(auth);
    expect(res.status).toBe(200);
  });
});

describe("OpenAPI document", () => {
  it("is served without a token as OpenAPI 3.1 with the servers path", async () => {
    const res = await request(t.app.server).get("/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toMatch(/^3\.1\./);
    expect(res.body.info.title).toBeTypeOf("string");
    expect(Object.keys(res.body.paths)).toContain("/v2.1/servers");
    expect(res.body.paths["/v2.1/servers"].post).toBeDefined();
    expect(res.body.paths["/v2.1/servers"].get).toBeDefined();
    expect(Object.keys(res.body.paths)).toContain("/v2.1/flavors");
    expect(Object.keys(res.body.paths)).toContain("/v2/images");
    expect(Object.keys(res.body.paths)).toContain("/v2.0/networks");
  });
});

describe("unknown paths", () => {
  it("an unknown path is 404 itemNotFound", async () => {
    const res = await request(t.app.server).get("/v2.1/no-such-thing").set(auth);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ itemNotFound: { code: 404, message: expect.any(String) } });
    expect(res.headers["x-openstack-request-id"]).toMatch(REQ_ID);
  });

  it("an unknown path outside /v2.1 is 404 itemNotFound", async () => {
    const res = await request(t.app.server).get("/nothing/here").set(auth);
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.code).toBe(404);
  });
});
