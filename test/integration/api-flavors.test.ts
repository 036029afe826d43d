/** Flavors: create, list, detail, show, delete, paging and bad input (nova-contract 1.5). */
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, PUBLIC_URL, createTestApp, tableCounts, type TestApp } from "../support/services.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const auth = { "X-Auth-Token": ADMIN_TOKEN };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const create = (flavor: Record<string, unknown>) => request(t.app.server).post("/v2.1/flavors").set(auth).send({ flavor });
const get = (path: string) => request(t.app.server).get(path).set(auth);

describe("POST /v2.1/flavors", () => {
  it("creates a flavor with an explicit id (200, Nova's flavor shape)", async () => {
    const res = await create({ name: "c.small", id: "c-small", ram: 512, vcpus: 1, disk: 5 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.flavor).toMatchObject({
      id: "c-small",
      name: "c.small",
      ram: 512,
      vcpus: 1,
      disk: 5,
      swap: "",
      "OS-FLV-EXT-DATA:ephemeral": 0,
      "os-flavor-access:is_public": true,
    });
    expect(res.body.flavor.links).toEqual([
      { rel: "self", href: `${PUBLIC_URL}/v2.1/flavors/c-small` },
      { rel: "bookmark", href: `${PUBLIC_URL}/flavors/c-small` },
    ]);
    expect(await t.db("flavors").where({ id: "c-small" }).first()).toMatchObject({ name: "c.small", ram: 512 });
  });

  it("generates a UUID id when id is absent", async () => {
    const res = await create({ name: "c.noid", ram: 256, vcpus: 1, disk: 1 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.flavor.id).toMatch(UUID);
    expect((await get(`/v2.1/flavors/${res.body.flavor.id}`)).status).toBe(200);
  });

  it("generates a UUID id when id is null", async () => {
    const res = await create({ name: "c.nullid", id: null, ram: 256, vcpus: 1, disk: 1 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.flavor.id).toMatch(UUID);
  });

  it('shows swap as "" when 0 and as the number otherwise; accepts digit strings', async () => {
    const zero = await create({ name: "c.swap0", ram: "128", vcpus: "2", disk: "0", swap: 0 });
    expect(zero.status, JSON.stringify(zero.body)).toBe(200);
    expect(zero.body.flavor).toMatchObject({ swap: "", ram: 128, vcpus: 2, disk: 0 });
    const some = await create({ name: "c.swap512", ram: 128, vcpus: 1, disk: 1, swap: 512, "OS-FLV-EXT-DATA:ephemeral": 3 });
    expect(some.status, JSON.stringify(some.body)).toBe(200);
    expect(some.body.flavor.swap).toBe(512);
    expect(some.body.flavor["OS-FLV-EXT-DATA:ephemeral"]).toBe(3);
    const shown = await get(`/v2.1/flavors/${some.body.flavor.id}`);
    expect(shown.body.flavor.swap).toBe(512);
  });

  it("refuses a duplicate id with 409 conflictingRequest", async () => {
    expect((await create({ name: "dup.id.a", id: "dup-id", ram: 64, vcpus: 1, disk: 0 })).status).toBe(200);
    const before = await tableCounts(t.db);
    const res = await create({ name: "dup.id.b", id: "dup-id", ram: 64, vcpus: 1, disk: 0 });
    expect(res.status).toBe(409);
    expect(res.body.conflictingRequest.code).toBe(409);
    expect(res.body.conflictingRequest.message).toContain("dup-id");
    expect(await tableCounts(t.db)).toEqual(before);
  });

  it("refuses a duplicate name with 409 conflictingRequest", async () => {
    expect((await create({ name: "dup.name", ram: 64, vcpus: 1, disk: 0 })).status).toBe(200);
    const before = await tableCounts(t.db);
    const res = await create({ name: "dup.name", ram: 64, vcpus: 1, disk: 0 });
    expect(res.status).toBe(409);
    expect(res.body.conflictingRequest.message).toContain("dup.name");
    expect(await tableCounts(t.db)).toEqual(before);
  });

  describe("bad input is 400 badRequest and stores nothing", () => {
    const cases: [string, () => request.Test][] = [
      ["missing ram", () => create({ name: "bad.a", vcpus: 1, disk: 1 })],
      ["negative vcpus", () => create({ name: "bad.b", ram: 64, vcpus: -1, disk: 1 })],
      ["zero vcpus", () => create({ name: "bad.c", ram: 64, vcpus: 0, disk: 1 })],
      ["zero ram", () => create({ name: "bad.c2", ram: 0, vcpus: 1, disk: 1 })],
      ['vcpus "0" as a string', () => create({ name: "bad.c3", ram: 64, vcpus: "0", disk: 1 })],
      ["non-numeric ram", () => create({ name: "bad.d", ram: "lots", vcpus: 1, disk: 1 })],
      ["negative disk", () => create({ name: "bad.e", ram: 64, vcpus: 1, disk: -5 })],
      ["unknown field", () => create({ name: "bad.f", ram: 64, vcpus: 1, disk: 1, colour: "blue" })],
      ["missing name", () => create({ ram: 64, vcpus: 1, disk: 1 })],
      ["blank name", () => create({ name: "   ", ram: 64, vcpus: 1, disk: 1 })],
      ["id with a slash", () => create({ name: "bad.g", id: "a/b", ram: 64, vcpus: 1, disk: 1 })],
      ["no flavor wrapper", () => request(t.app.server).post("/v2.1/flavors").set(auth).send({ name: "bad.h", ram: 64, vcpus: 1, disk: 1 })],
      ["malformed JSON", () => request(t.app.server).post("/v2.1/flavors").set(auth).set("content-type", "application/json").send('{"flavor": {')],
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
});

describe("GET /v2.1/flavors, /detail, /{id}", () => {
  it("lists summaries {id, name, links} only", async () => {
    const res = await get("/v2.1/flavors");
    expect(res.status).toBe(200);
    expect(res.body.flavors.length).toBeGreaterThan(0);
    for (const f of res.body.flavors) {
      expect(Object.keys(f).sort()).toEqual(["id", "links", "name"]);
      expect(f.links[0]).toEqual({ rel: "self", href: `${PUBLIC_URL}/v2.1/flavors/${f.id}` });
    }
    expect(res.body.flavors.map((f: { id: string }) => f.id)).toContain("c-small");
    expect(res.body.flavors_links).toBeUndefined();
  });

  it("lists details with sizes", async () => {
    const res = await get("/v2.1/flavors/detail");
    expect(res.status).toBe(200);
    const small = res.body.flavors.find((f: { id: string }) => f.id === "c-small");
    expect(small).toMatchObject({ name: "c.small", ram: 512, vcpus: 1, disk: 5, swap: "" });
    expect(res.body.flavors.length).toBe((await get("/v2.1/flavors")).body.flavors.length);
  });

  it("filters by minRam", async () => {
    const res = await get("/v2.1/flavors/detail?minRam=500");
    expect(res.status).toBe(200);
    expect(res.body.flavors.length).toBeGreaterThan(0);
    for (const f of res.body.flavors) expect(f.ram).toBeGreaterThanOrEqual(500);
  });

  it("shows one flavor", async () => {
    const res = await get("/v2.1/flavors/c-small");
    expect(res.status).toBe(200);
    expect(res.body.flavor).toMatchObject({ id: "c-small", name: "c.small", ram: 512, vcpus: 1, disk: 5 });
  });

  it("a flavor's name is not an id: 404 itemNotFound", async () => {
    const res = await get("/v2.1/flavors/c.small");
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.code).toBe(404);
  });

  it("an unknown id is 404", async () => {
    const res = await get("/v2.1/flavors/no-such-flavor");
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.message).toContain("no-such-flavor");
  });
});

describe("DELETE /v2.1/flavors/{id}", () => {
  it("deletes (202) and the flavor is gone (404)", async () => {
    expect((await create({ name: "to.delete", id: "to-delete", ram: 64, vcpus: 1, disk: 0 })).status).toBe(200);
    const del = await request(t.app.server).delete("/v2.1/flavors/to-delete").set(auth);
    expect(del.status).toBe(202);
    expect((await get("/v2.1/flavors/to-delete")).status).toBe(404);
    expect(await t.db("flavors").where({ id: "to-delete" }).first()).toBeUndefined();
    // The name is free again.
    expect((await create({ name: "to.delete", ram: 64, vcpus: 1, disk: 0 })).status).toBe(200);
  });

  it("deleting an unknown flavor is 404", async () => {
    const res = await request(t.app.server).delete("/v2.1/flavors/never-was").set(auth);
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.code).toBe(404);
  });
});

describe("paging", () => {
  it("walks every flavor with limit/marker; next link only on a full page", async () => {
    for (const n of ["p1", "p2", "p3", "p4", "p5"]) {
      expect((await create({ name: `page.${n}`, id: `zz-page-${n}`, ram: 64, vcpus: 1, disk: 0 })).status).toBe(200);
    }
    const all = (await get("/v2.1/flavors")).body.flavors.map((f: { id: string }) => f.id) as string[];
    expect(all.length).toBeGreaterThanOrEqual(5);

    const seen: string[] = [];
    let path: string | null = "/v2.1/flavors?limit=2";
    let pages = 0;
    while (path !== null && pages < 50) {
      const res: request.Response = await get(path);
      expect(res.status).toBe(200);
      expect(res.body.flavors.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.flavors.map((f: { id: string }) => f.id));
      const next = res.body.flavors_links as { rel: string; href: string }[] | undefined;
      if (res.body.flavors.length < 2) expect(next).toBeUndefined();
      if (next) {
        expect(res.body.flavors.length).toBe(2);
        expect(next[0]!.rel).toBe("next");
        const url = new URL(next[0]!.href);
        expect(`${url.protocol}//${url.host}`).toBe(PUBLIC_URL);
        expect(url.pathname).toBe("/v2.1/flavors");
        expect(url.searchParams.get("limit")).toBe("2");
        expect(url.searchParams.get("marker")).toBe(res.body.flavors[1].id);
        path = `${url.pathname}${url.search}`;
      } else {
        path = null;
      }
      pages++;
    }
    expect(seen).toEqual(all);
  });

  it("the detail list pages too, and its next link points at /detail", async () => {
    const res = await get("/v2.1/flavors/detail?limit=1");
    expect(res.status).toBe(200);
    expect(res.body.flavors).toHaveLength(1);
    expect(res.body.flavors[0].ram).toBeTypeOf("number");
    const next = new URL(res.body.flavors_links[0].href);
    expect(next.pathname).toBe("/v2.1/flavors/detail");
    expect(next.searchParams.get("marker")).toBe(res.body.flavors[0].id);
  });

  it("a page shorter than the limit has no next link", async () => {
    const total = (await get("/v2.1/flavors")).body.flavors.length as number;
    const res = await get(`/v2.1/flavors?limit=${total + 1}`);
    expect(res.body.flavors).toHaveLength(total);
    expect(res.body.flavors_links).toBeUndefined();
  });

  it("an unknown marker is 400 badRequest", async () => {
    const res = await get("/v2.1/flavors?marker=no-such-marker");
    expect(res.status).toBe(400);
    expect(res.body.badRequest.code).toBe(400);
    expect(res.body.badRequest.message).toContain("no-such-marker");
    expect((await get("/v2.1/flavors/detail?marker=no-such-marker")).status).toBe(400);
  });

  it("a negative or non-numeric limit is 400 badRequest", async () => {
    expect((await get("/v2.1/flavors?limit=-1")).status).toBe(400);
    const res = await get("/v2.1/flavors?limit=abc");
    expect(res.status).toBe(400);
    expect(res.body.badRequest).toBeDefined();
  });
});
