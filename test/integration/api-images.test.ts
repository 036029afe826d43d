/** The image API in Glance v2 shapes: create, upload, list, show, delete and bad input. */
import request from "supertest";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, createTestApp, tableCounts, type TestApp } from "../support/services.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const auth = { "X-Auth-Token": ADMIN_TOKEN };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const createImage = (body: Record<string, unknown>) => request(t.app.server).post("/v2/images").set(auth).send(body);
const upload = (id: string, bytes: Buffer) =>
  request(t.app.server).put(`/v2/images/${id}/file`).set(auth).set("content-type", "application/octet-stream").send(bytes);
const show = (id: string) => request(t.app.server).get(`/v2/images/${id}`).set(auth);

describe("POST /v2/images", () => {
  it("creates a queued image record (201) with Glance fields and extra properties as top-level keys", async () => {
    const res = await createImage({
      name: "cirros-0.6",
      disk_format: "qcow2",
      container_format: "bare",
      visibility: "public",
      min_ram: 64,
      min_disk: 1,
      tags: ["test"],
      hw_disk_bus: "virtio",
      os_type: "linux",
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const img = res.body;
    expect(img.id).toMatch(UUID);
    expect(img).toMatchObject({
      name: "cirros-0.6",
      status: "queued",
      disk_format: "qcow2",
      container_format: "bare",
      visibility: "public",
      protected: false,
      min_ram: 64,
      min_disk: 1,
      size: null,
      checksum: null,
      os_hash_value: null,
      tags: ["test"],
      hw_disk_bus: "virtio",
      os_type: "linux",
      self: `/v2/images/${img.id}`,
      file: `/v2/images/${img.id}/file`,
      schema: "/v2/schemas/image",
    });
    expect(img.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(res.headers["location"]).toContain(`/v2/images/${img.id}`);
    const row = await t.db("images").where({ id: img.id }).first();
    expect(row).toMatchObject({ status: "queued", name: "cirros-0.6" });
    expect(row.properties).toEqual({ hw_disk_bus: "virtio", os_type: "linux" });
    // And the property survives a GET.
    const again = await show(img.id);
    expect(again.body.hw_disk_bus).toBe("virtio");
  });

  it("honours a client-chosen id and refuses it a second time (409)", async () => {
    const id = randomUUID();
    const first = await createImage({ id, name: "fixed-id", disk_format: "raw", container_format: "bare" });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body.id).toBe(id);
    const before = await tableCounts(t.db);
    const second = await createImage({ id, name: "fixed-id-2", disk_format: "raw", container_format: "bare" });
    expect(second.status).toBe(409);
    expect(second.body.conflictingRequest.code).toBe(409);
    expect(await tableCounts(t.db)).toEqual(before);
  });

  it.each(["location", "status", "checksum", "size", "owner", "self"])("a reserved key (%s) is 403 and stores nothing", async (key) => {
    const before = await tableCounts(t.db);
    const res = await createImage({ name: "sneaky", disk_format: "qcow2", container_format: "bare", [key]: "/etc/passwd" });
    expect(res.status, JSON.stringify(res.body)).toBe(403);
    expect(res.body.forbidden.code).toBe(403);
    expect(res.body.forbidden.message).toContain(key);
    expect(await tableCounts(t.db)).toEqual(before);
  });

  describe("bad input is 400 and stores nothing", () => {
    const cases: [string, () => request.Test][] = [
      ["unknown disk_format", () => createImage({ name: "x", disk_format: "vhdx-ish", container_format: "bare" })],
      ["unknown container_format", () => createImage({ name: "x", disk_format: "raw", container_format: "docker-ish" })],
      ["unknown visibility", () => createImage({ name: "x", visibility: "everyone" })],
      ["negative min_ram", () => createImage({ name: "x", min_ram: -1 })],
      ["non-uuid id", () => createImage({ id: "not-a-uuid", name: "x" })],
      ["non-string property", () => createImage({ name: "x", hw_disk_bus: { nested: true } })],
      ["malformed JSON", () => request(t.app.server).post("/v2/images").set(auth).set("content-type", "application/json").send("{nope")],
    ];
    it.each(cases)("%s", async (_label, send) => {
      const before = await tableCounts(t.db);
      const res = await send();
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.badRequest.code).toBe(400);
      expect(await tableCounts(t.db)).toEqual(before);
    });
  });
});

describe("PUT /v2/images/{id}/file", () => {
  it("stores the bytes (204); the image becomes active with size, md5 checksum and sha256 hash", async () => {
    const created = await createImage({ name: "upload-me", disk_format: "raw", container_format: "bare" });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const bytes = randomBytes(300 * 1024 + 17);
    const res = await upload(id, bytes);
    expect(res.status, JSON.stringify(res.body)).toBe(204);

    const img = (await show(id)).body;
    expect(img.status).toBe("active");
    expect(img.size).toBe(bytes.length);
    expect(img.checksum).toBe(createHash("md5").update(bytes).digest("hex"));
    expect(img.os_hash_algo).toBe("sha256");
    expect(img.os_hash_value).toBe(createHash("sha256").update(bytes).digest("hex"));

    const file = path.join(t.imageStoreDir, id);
    expect((await stat(file)).size).toBe(bytes.length);
    expect((await readFile(file)).equals(bytes)).toBe(true);

    // A second upload to an active image is a conflict and leaves the bytes alone.
    const again = await upload(id, randomBytes(64));
    expect(again.status).toBe(409);
    expect(again.body.conflictingRequest.code).toBe(409);
    expect((await readFile(file)).equals(bytes)).toBe(true);
    expect((await show(id)).body.checksum).toBe(img.checksum);
  });

  it("an upload with a JSON content type is refused (400/415) and changes nothing", async () => {
    const created = await createImage({ name: "json-upload", disk_format: "raw", container_format: "bare" });
    const id = created.body.id as string;
    const res = await request(t.app.server)
      .put(`/v2/images/${id}/file`)
      .set(auth)
      .set("content-type", "application/json")
      .send(JSON.stringify({ data: "not bytes" }));
    expect([400, 415]).toContain(res.status);
    expect(Object.keys(res.body)).toHaveLength(1);
    const img = (await show(id)).body;
    expect(img.status).toBe("queued");
    expect(img.size).toBeNull();
    await expect(stat(path.join(t.imageStoreDir, id))).rejects.toThrow();
    // It can still be uploaded properly afterwards.
    expect((await upload(id, Buffer.from("real bytes"))).status).toBe(204);
  });

  it("an upload of an unknown image is 404", async () => {
    const res = await upload(randomUUID(), Buffer.from("x"));
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.code).toBe(404);
  });

  it("an empty upload is 400 and the image stays queued", async () => {
    const created = await createImage({ name: "empty", disk_format: "raw", container_format: "bare" });
    const res = await upload(created.body.id, Buffer.alloc(0));
    expect(res.status).toBe(400);
    expect((await show(created.body.id)).body.status).toBe("queued");
  });
});

describe("GET /v2/images", () => {
  it("lists images and filters by ?name=", async () => {
    await createImage({ name: "findme", disk_format: "raw", container_format: "bare" });
    await createImage({ name: "other", disk_format: "raw", container_format: "bare" });
    const all = await request(t.app.server).get("/v2/images").set(auth);
    expect(all.status).toBe(200);
    expect(all.body.first).toBe("/v2/images");
    expect(all.body.schema).toBe("/v2/schemas/images");
    expect(all.body.images.length).toBeGreaterThanOrEqual(2);
    const found = await request(t.app.server).get("/v2/images?name=findme").set(auth);
    expect(found.status).toBe(200);
    expect(found.body.images).toHaveLength(1);
    expect(found.body.images[0]).toMatchObject({ name: "findme", status: "queued" });
    const none = await request(t.app.server).get("/v2/images?name=nothing-is-called-this").set(auth);
    expect(none.body.images).toEqual([]);
  });

  it("pages with limit/marker without skipping or repeating", async () => {
    const total = (await request(t.app.server).get("/v2/images").set(auth)).body.images.length as number;
    const seen: string[] = [];
    let url: string | null = "/v2/images?limit=2";
    for (let i = 0; url && i < 100; i++) {
      const res: request.Response = await request(t.app.server).get(url).set(auth);
      expect(res.status).toBe(200);
      seen.push(...res.body.images.map((im: { id: string }) => im.id));
      url = (res.body.next as string | undefined) ?? null;
    }
    expect(seen).toHaveLength(total);
    expect(new Set(seen).size).toBe(total);
  });

  it("pages correctly through images created within the same millisecond", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await createImage({ name: `same-ms-${i}`, disk_format: "raw", container_format: "bare" });
      ids.push(res.body.id);
    }
    // Same millisecond, different microseconds: Postgres keeps them apart, a JS Date does not.
    for (const [i, id] of ids.entries()) {
      await t.db("images").where({ id }).update({ created_at: t.db.raw(`'2001-01-01 00:00:00.1234${i}0+00'::timestamptz`) });
    }
    const seen: string[] = [];
    let url: string | null = "/v2/images?limit=1";
    for (let i = 0; url && i < 100; i++) {
      const res: request.Response = await request(t.app.server).get(url).set(auth);
      seen.push(...res.body.images.map((im: { id: string }) => im.id));
      url = (res.body.next as string | undefined) ?? null;
    }
    for (const id of ids) expect(seen, `image ${id} was skipped`).toContain(id);
  });

  it("an unknown marker is 400", async () => {
    const res = await request(t.app.server).get(`/v2/images?marker=${randomUUID()}`).set(auth);
    expect(res.status).toBe(400);
    expect(res.body.badRequest.code).toBe(400);
  });
});

describe("GET /v2/images/{id}", () => {
  it("shows one image as a bare object", async () => {
    const created = await createImage({ name: "show-me", disk_format: "iso", container_format: "bare" });
    const res = await show(created.body.id);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: created.body.id, name: "show-me", disk_format: "iso", status: "queued" });
    expect(res.body.image).toBeUndefined();
  });

  it("an unknown id is 404", async () => {
    const res = await show(randomUUID());
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.code).toBe(404);
  });

  it("a non-uuid id is 404 (not 400, not 500)", async () => {
    const res = await show("cirros");
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.code).toBe(404);
  });
});

describe("DELETE /v2/images/{id}", () => {
  it("deletes (204), then the image is 404 and its file is gone", async () => {
    const created = await createImage({ name: "delete-me", disk_format: "raw", container_format: "bare" });
    const id = created.body.id as string;
    expect((await upload(id, Buffer.from("some bytes"))).status).toBe(204);
    const file = path.join(t.imageStoreDir, id);
    await stat(file);
    const del = await request(t.app.server).delete(`/v2/images/${id}`).set(auth);
    expect(del.status).toBe(204);
    expect((await show(id)).status).toBe(404);
    await expect(stat(file)).rejects.toThrow();
    const list = await request(t.app.server).get("/v2/images?name=delete-me").set(auth);
    expect(list.body.images).toEqual([]);
    expect((await request(t.app.server).delete(`/v2/images/${id}`).set(auth)).status).toBe(404);
  });

  it("a protected image cannot be deleted (403)", async () => {
    const created = await createImage({ name: "keep-me", protected: true });
    const del = await request(t.app.server).delete(`/v2/images/${created.body.id}`).set(auth);
    expect(del.status).toBe(403);
    expect((await show(created.body.id)).status).toBe(200);
  });

  it("deleting an unknown image is 404", async () => {
    expect((await request(t.app.server).delete(`/v2/images/${randomUUID()}`).set(auth)).status).toBe(404);
    expect((await request(t.app.server).delete("/v2/images/not-a-uuid").set(auth)).status).toBe(404);
  });
});
