/**
 * Shared by the ext-*.test.ts files: the real app on a fresh migrated database, with an
 * authenticator that knows an admin (project "admin") and members of projects p1, p2,
 * so project scoping and admin-only rules can be shown; plus a bootable image.
 */
import request from "supertest";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "vitest";
import { buildApp } from "../../api/app.js";
import { createLogger } from "../../common/logger.js";
import type { PlacementDeps } from "../../scheduler/place.js";
import type { Authenticator } from "../../api/auth/dev-auth.js";
import { ADMIN_TOKEN, PUBLIC_URL, createTestDatabase, type TestDatabase } from "../support/services.js";

export const MEMBER_P1 = "member-p1";
export const MEMBER_P1_OTHER_USER = "member-p1-u3";
export const MEMBER_P2 = "member-p2";

const auth: Authenticator = async (req) => {
  const token = req.headers["x-auth-token"];
  if (token === ADMIN_TOKEN) return { projectId: "admin", userId: "admin", roles: ["admin", "member", "reader"], isAdmin: true };
  if (token === MEMBER_P1) return { projectId: "p1", userId: "u1", roles: ["member"], isAdmin: false };
  if (token === MEMBER_P1_OTHER_USER) return { projectId: "p1", userId: "u3", roles: ["member"], isAdmin: false };
  if (token === MEMBER_P2) return { projectId: "p2", userId: "u2", roles: ["member"], isAdmin: false };
  return null;
};

export interface ExtApp {
  app: Awaited<ReturnType<typeof buildApp>>;
  database: TestDatabase;
  close(): Promise<void>;
}

export async function createExtApp(options: { enforceQuotas?: boolean } = {}): Promise<ExtApp> {
  const database = await createTestDatabase();
  const imageStoreDir = await mkdtemp(path.join(os.tmpdir(), "cirrus-ext-"));
  const app = await buildApp({ db: database.db, config: { publicUrl: PUBLIC_URL, imageStoreDir, serviceDownTimeSec: 60, enforceQuotas: options.enforceQuotas ?? false }, auth });
  await app.listen({ port: 0, host: "127.0.0.1" });
  return {
    app,
    database,
    close: async () => {
      await app.close();
      await database.drop();
      await rm(imageStoreDir, { recursive: true, force: true });
    },
  };
}

export function client(t: ExtApp, token: string) {
  const h = { "X-Auth-Token": token };
  return {
    get: (p: string) => request(t.app.server).get(p).set(h),
    post: (p: string, body?: unknown) => request(t.app.server).post(p).set(h).send(body as object),
    put: (p: string, body?: unknown) => request(t.app.server).put(p).set(h).send(body as object),
    del: (p: string) => request(t.app.server).delete(p).set(h),
  };
}

export const admin = (t: ExtApp) => client(t, ADMIN_TOKEN);

/** A public, uploaded image and flavor "1" (1 vCPU, 512 MiB), ready for boots with networks "none". */
export async function bootables(t: ExtApp): Promise<{ imageId: string }> {
  const a = admin(t);
  const f = await a.post("/v2.1/flavors", { flavor: { name: "m1.small", id: "1", ram: 512, vcpus: 1, disk: 1 } });
  expect(f.status, JSON.stringify(f.body)).toBe(200);
  const f2 = await a.post("/v2.1/flavors", { flavor: { name: "m1.big", id: "big", ram: 4096, vcpus: 8, disk: 1 } });
  expect(f2.status, JSON.stringify(f2.body)).toBe(200);
  const img = await a.post("/v2/images", { name: "cirros", disk_format: "qcow2", container_format: "bare", visibility: "public" });
  expect(img.status, JSON.stringify(img.body)).toBe(201);
  const up = await request(t.app.server)
    .put(`/v2/images/${img.body.id}/file`)
    .set({ "X-Auth-Token": ADMIN_TOKEN, "content-type": "application/octet-stream" })
    .send(Buffer.alloc(4096, 1));
  expect(up.status).toBe(204);
  return { imageId: img.body.id as string };
}

/** Registers a compute host (service, provider, inventory) that the scheduler sees as up. */
export async function registerHost(
  t: ExtApp,
  host: string,
  over: { availability_zone?: string | null; status?: string; forced_down?: boolean; vcpus?: number } = {},
): Promise<{ serviceId: string; providerId: string }> {
  const { randomUUID } = await import("node:crypto");
  const serviceId = randomUUID();
  const providerId = randomUUID();
  const db = t.database.db;
  await db("compute_services").insert({
    id: serviceId,
    host,
    status: over.status ?? "enabled",
    forced_down: over.forced_down ?? false,
    availability_zone: over.availability_zone ?? null,
    hypervisor_type: "QEMU",
    hypervisor_version: 8002000,
    hypervisor_hostname: host,
    host_ip: "192.0.2.1",
    libvirt_uri: "test:///default",
    last_seen_at: db.fn.now(),
  });
  await db("resource_providers").insert({ id: providerId, name: host, compute_service_id: serviceId });
  const vcpus = over.vcpus ?? 16;
  await db("inventories").insert([
    { provider_id: providerId, resource_class: "VCPU", total: vcpus, max_unit: vcpus, allocation_ratio: 1.0 },
    { provider_id: providerId, resource_class: "MEMORY_MB", total: 65536, max_unit: 65536 },
    { provider_id: providerId, resource_class: "DISK_GB", total: 1000, max_unit: 1000 },
  ]);
  return { serviceId, providerId };
}

/** What placeInstance/placeBatch need to place against the app's database, with a quiet log. */
export function placementDeps(t: ExtApp, over: Partial<PlacementDeps> = {}): PlacementDeps {
  return { db: t.database.db, log: createLogger("test", "silent"), serviceDownTimeSec: 60, maxAttempts: 3, ...over };
}
