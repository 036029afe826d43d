/**
 * The image download route and the agent's image cache, against the real API listening
 * on a real port (Postgres behind it) and, for truncation, a deliberately broken server.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ImageSnapshot } from "../../common/messages.js";
import { ImageCache, baseName, qcow2BackingFile } from "../../compute-agent/image-cache.js";
import { ADMIN_TOKEN, createTestApp, type TestApp } from "../support/services.js";

const run = promisify(execFile);
let t: TestApp;
let url: string;
let tmp: string;
const bytes = randomBytes(3 * 1024 * 1024 + 17); // several chunks
let imageId: string;

async function api(method: string, p: string, body?: unknown, headers: Record<string, string> = {}) {
  return fetch(url + p, {
    method,
    headers: { "x-auth-token": ADMIN_TOKEN, ...(body !== undefined && !(body instanceof Buffer) ? { "content-type": "application/json" } : {}), ...headers },
    ...(body !== undefined ? { body: body instanceof Buffer ? body : JSON.stringify(body) } : {}),
  });
}

async function createImage(): Promise<string> {
  const res = await api("POST", "/v2/images", { name: "cached", disk_format: "raw", container_format: "bare" });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

function snapshot(id: string, overrides: Partial<ImageSnapshot> = {}): ImageSnapshot {
  return {
    id,
    name: "cached",
    disk_format: "raw",
    location: "/nonexistent",
    size: bytes.length,
    checksum: createHash("md5").update(bytes).digest("hex"),
    os_hash_value: createHash("sha256").update(bytes).digest("hex"),
    properties: {},
    ...overrides,
  };
}

beforeAll(async () => {
  t = await createTestApp();
  await t.app.listen({ port: 0, host: "127.0.0.1" });
  url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  tmp = await mkdtemp(path.join(os.tmpdir(), "cirrus-imgcache-"));
  imageId = await createImage();
  const up = await api("PUT", `/v2/images/${imageId}/file`, bytes, { "content-type": "application/octet-stream" });
  expect(up.status).toBe(204);
});

afterAll(async () => {
  await t?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe("GET /v2/images/{id}/file", () => {
  it("streams the bytes with Content-Length and Content-MD5 (200)", async () => {
    const res = await api("GET", `/v2/images/${imageId}/file`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(res.headers.get("content-length")).toBe(String(bytes.length));
    expect(res.headers.get("content-md5")).toBe(createHash("md5").update(bytes).digest("hex"));
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it("is 204 while the image has no data, 404 for an unknown or malformed id, 401 without a token", async () => {
    const queued = await createImage();
    const empty = await api("GET", `/v2/images/${queued}/file`);
    expect(empty.status).toBe(204);
    expect(await empty.text()).toBe("");
    expect((await api("GET", `/v2/images/${randomUUID()}/file`)).status).toBe(404);
    expect((await api("GET", "/v2/images/nope/file")).status).toBe(404);
    expect((await fetch(`${url}/v2/images/${imageId}/file`)).status).toBe(401);
  });
});

describe("ImageCache", () => {
  const cacheFor = (name: string, extra: Partial<ConstructorParameters<typeof ImageCache>[0]> = {}) =>
    new ImageCache({ cachePath: path.join(tmp, name), apiUrl: url, token: ADMIN_TOKEN, ...extra });

  it("ten simultaneous fetches of an uncached image download it once", async () => {
    const cache = cacheFor("ten");
    const paths = await Promise.all(Array.from({ length: 10 }, () => cache.fetch(snapshot(imageId))));
    expect(new Set(paths)).toEqual(new Set([cache.basePath(imageId)]));
    expect(path.basename(paths[0]!)).toBe(createHash("sha1").update(imageId).digest("hex"));
    expect(cache.downloads).toBe(1);
    expect((await readFile(paths[0]!)).equals(bytes)).toBe(true);
    expect(await readdir(cache.cachePath)).toEqual([baseName(imageId)]); // no leftovers
    // Cached now: a later fetch downloads nothing.
    await cache.fetch(snapshot(imageId));
    expect(cache.downloads).toBe(1);
  });

  it("rejects a download whose checksum differs and caches nothing", async () => {
    const cache = cacheFor("corrupt");
    await expect(cache.fetch(snapshot(imageId, { checksum: "0".repeat(32) }))).rejects.toThrow(/corrupt and was discarded: md5/);
    await expect(cache.fetch(snapshot(imageId, { os_hash_value: "f".repeat(64) }))).rejects.toThrow(/sha256 .* differs/);
    expect(await readdir(cache.cachePath)).toEqual([]);
    expect(cache.downloads).toBe(0);
  });

  it("rejects a truncated download and caches nothing", async () => {
    // A server that promises the whole image and hangs up halfway.
    const broken = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(bytes.length) });
      res.write(bytes.subarray(0, 1000), () => res.socket?.destroy());
    });
    await new Promise<void>((r) => broken.listen(0, "127.0.0.1", r));
    try {
      const cache = cacheFor("truncated", { apiUrl: `http://127.0.0.1:${(broken.address() as AddressInfo).port}` });
      await expect(cache.fetch(snapshot(imageId))).rejects.toThrow(/interrupted|truncated/);
      // Even without any checksum to compare, the short body is refused.
      await expect(cache.fetch(snapshot(imageId, { checksum: null, os_hash_value: null, size: null }))).rejects.toThrow(/interrupted|truncated/);
      expect(await readdir(cache.cachePath)).toEqual([]);
    } finally {
      broken.close();
    }
  });

  it("fails clearly for an image without data or an unknown image", async () => {
    const cache = cacheFor("missing");
    const queued = await createImage();
    await expect(cache.fetch(snapshot(queued))).rejects.toThrow(/has no data/);
    await expect(cache.fetch(snapshot(randomUUID()))).rejects.toThrow(/HTTP 404/);
  });

  it("cleanup removes bases unused for longer than the age unless an instance disk sits on them", async () => {
    const instances = path.join(tmp, "cleanup-instances");
    const cache = cacheFor("cleanup", { instancesPath: instances });
    await mkdir(cache.cachePath, { recursive: true });
    const [oldUnused, oldInUse, fresh] = [randomUUID(), randomUUID(), randomUUID()].map((id) => cache.basePath(id));
    for (const f of [oldUnused!, oldInUse!]) await run("qemu-img", ["create", "-f", "qcow2", f, "16M"]);
    await writeFile(fresh!, "fresh");
    await writeFile(path.join(cache.cachePath, "not-a-base.txt"), "left alone");
    const overlayDir = path.join(instances, randomUUID());
    await mkdir(overlayDir, { recursive: true });
    await run("qemu-img", ["create", "-f", "qcow2", "-F", "qcow2", "-b", oldInUse!, path.join(overlayDir, "disk")]);
    expect(await qcow2BackingFile(path.join(overlayDir, "disk"))).toBe(oldInUse);
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    for (const f of [oldUnused!, oldInUse!]) await utimes(f, twoDaysAgo, twoDaysAgo);

    const removed = await cache.cleanup(86_400);
    expect(removed).toEqual([oldUnused]);
    expect(existsSync(oldUnused!)).toBe(false);
    expect(existsSync(oldInUse!)).toBe(true);
    expect(existsSync(fresh!)).toBe(true);
    expect(existsSync(path.join(cache.cachePath, "not-a-base.txt"))).toBe(true);

    // Once the instance is gone its base goes too.
    await rm(overlayDir, { recursive: true });
    expect(await cache.cleanup(86_400)).toEqual([oldInUse]);
  });

  it("a use touches the base, so cleanup keeps a base that was just used", async () => {
    const cache = cacheFor("touch");
    const base = await cache.fetch(snapshot(imageId));
    const old = new Date(Date.now() - 10 * 86_400_000);
    await utimes(base, old, old);
    await cache.fetch(snapshot(imageId));
    expect(await cache.cleanup(86_400)).toEqual([]);
    expect(cache.downloads).toBe(1);
  });
});
