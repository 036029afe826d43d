/** Hypervisors and compute services, as the admin views show them from compute_services and placement rows. */
import request from "supertest";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, createTestApp, type TestApp } from "../support/services.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const auth = { "X-Auth-Token": ADMIN_TOKEN };
const get = (p: string) => request(t.app.server).get(p).set(auth);

describe("with no compute services", () => {
  it.each([
    ["/v2.1/os-hypervisors", "hypervisors"],
    ["/v2.1/os-hypervisors/detail", "hypervisors"],
    ["/v2.1/os-services", "services"],
  ])("GET %s is 200 with an empty %s list", async (path, key) => {
    const res = await get(path);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ [key]: [] });
  });

  it("needs a token", async () => {
    expect((await request(t.app.server).get("/v2.1/os-hypervisors")).status).toBe(401);
    expect((await request(t.app.server).get("/v2.1/os-services")).status).toBe(401);
  });
});

describe("with compute services", () => {
  const upId = randomUUID();
  const downId = randomUUID();
  const providerId = randomUUID();
  const downProviderId = randomUUID();
  const consumer = randomUUID();

  beforeAll(async () => {
    await t.db("compute_services").insert([
      {
        id: upId,
        host: "compute-a",
        hypervisor_type: "QEMU",
        hypervisor_version: 8002000,
        hypervisor_hostname: "compute-a.example",
        host_ip: "192.0.2.10",
        libvirt_uri: "test:///default",
        last_seen_at: t.db.fn.now(),
      },
      {
        id: downId,
        host: "compute-b",
        status: "disabled",
        disabled_reason: "maintenance",
        availability_zone: "az2",
        hypervisor_type: "QEMU",
        hypervisor_version: 8002000,
        hypervisor_hostname: "compute-b.example",
        host_ip: "192.0.2.11",
        libvirt_uri: "test:///default",
        last_seen_at: t.db.raw("now() - interval '10 minutes'"),
      },
    ]);
    await t.db("resource_providers").insert([
      { id: providerId, name: "compute-a.example", compute_service_id: upId },
      { id: downProviderId, name: "compute-b.example", compute_service_id: downId },
    ]);
    await t.db("inventories").insert([
      { provider_id: providerId, resource_class: "VCPU", total: 8, max_unit: 8, allocation_ratio: 4.0 },
      { provider_id: providerId, resource_class: "MEMORY_MB", total: 16384, reserved: 512, max_unit: 16384 },
      { provider_id: providerId, resource_class: "DISK_GB", total: 200, max_unit: 200 },
      { provider_id: downProviderId, resource_class: "VCPU", total: 4, max_unit: 4 },
      { provider_id: downProviderId, resource_class: "MEMORY_MB", total: 4096, max_unit: 4096 },
      { provider_id: downProviderId, resource_class: "DISK_GB", total: 50, max_unit: 50 },
    ]);
    await t.db("allocations").insert([
      { provider_id: providerId, consumer_id: consumer, resource_class: "VCPU", used: 2 },
      { provider_id: providerId, consumer_id: consumer, resource_class: "MEMORY_MB", used: 2048 },
      { provider_id: providerId, consumer_id: consumer, resource_class: "DISK_GB", used: 20 },
    ]);
  });

  it("GET /os-hypervisors lists both with state up/down by last_seen_at", async () => {
    const res = await get("/v2.1/os-hypervisors");
    expect(res.status).toBe(200);
    expect(res.body.hypervisors).toEqual([
      { id: upId, hypervisor_hostname: "compute-a.example", state: "up", status: "enabled" },
      { id: downId, hypervisor_hostname: "compute-b.example", state: "down", status: "disabled" },
    ]);
  });

  it("GET /os-hypervisors/detail shows inventory totals and usage", async () => {
    const res = await get("/v2.1/os-hypervisors/detail");
    expect(res.status).toBe(200);
    const a = res.body.hypervisors.find((h: { id: string }) => h.id === upId);
    expect(a).toMatchObject({
      hypervisor_hostname: "compute-a.example",
      hypervisor_type: "QEMU",
      hypervisor_version: 8002000,
      host_ip: "192.0.2.10",
      state: "up",
      status: "enabled",
      service: { id: upId, host: "compute-a", disabled_reason: null },
      vcpus: 8,
      vcpus_used: 2,
      memory_mb: 16384,
      memory_mb_used: 2048,
      free_ram_mb: 16384 - 2048,
      local_gb: 200,
      local_gb_used: 20,
      free_disk_gb: 180,
      running_vms: 0,
    });
    const b = res.body.hypervisors.find((h: { id: string }) => h.id === downId);
    expect(b).toMatchObject({
      state: "down",
      status: "disabled",
      service: { id: downId, host: "compute-b", disabled_reason: "maintenance" },
      vcpus: 4,
      vcpus_used: 0,
      memory_mb: 4096,
      memory_mb_used: 0,
      local_gb: 50,
    });
  });

  it("GET /os-hypervisors/{id} shows one hypervisor", async () => {
    const res = await get(`/v2.1/os-hypervisors/${upId}`);
    expect(res.status).toBe(200);
    expect(res.body.hypervisor).toMatchObject({ id: upId, hypervisor_hostname: "compute-a.example", vcpus: 8, vcpus_used: 2, state: "up" });
  });

  it("an unknown hypervisor id is 404 itemNotFound", async () => {
    const res = await get(`/v2.1/os-hypervisors/${randomUUID()}`);
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.code).toBe(404);
    const bad = await get("/v2.1/os-hypervisors/compute-a");
    expect(bad.status).toBe(404);
    expect(bad.body.itemNotFound.code).toBe(404);
  });

  it("GET /os-services shows nova-compute in zone nova, up, and the down one in its own zone", async () => {
    const res = await get("/v2.1/os-services");
    expect(res.status).toBe(200);
    const a = res.body.services.find((s: { id: string }) => s.id === upId);
    expect(a).toMatchObject({
      binary: "nova-compute",
      host: "compute-a",
      zone: "nova",
      status: "enabled",
      state: "up",
      disabled_reason: null,
      forced_down: false,
    });
    expect(a.updated_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
    const b = res.body.services.find((s: { id: string }) => s.id === downId);
    expect(b).toMatchObject({ host: "compute-b", zone: "az2", status: "disabled", state: "down", disabled_reason: "maintenance" });
  });

  it("GET /os-services filters by host and binary", async () => {
    const byHost = await get("/v2.1/os-services?host=compute-a");
    expect(byHost.body.services.map((s: { id: string }) => s.id)).toEqual([upId]);
    expect((await get("/v2.1/os-services?binary=nova-scheduler")).body.services).toEqual([]);
    expect((await get("/v2.1/os-services?binary=nova-compute")).body.services).toHaveLength(2);
  });

  it("a forced-down service is down even when recently seen", async () => {
    await t.db("compute_services").where({ id: upId }).update({ forced_down: true });
    try {
      const res = await get("/v2.1/os-services?host=compute-a");
      expect(res.body.services[0]).toMatchObject({ state: "down", forced_down: true });
      expect((await get(`/v2.1/os-hypervisors/${upId}`)).body.hypervisor.state).toBe("down");
    } finally {
      await t.db("compute_services").where({ id: upId }).update({ forced_down: false });
    }
  });
});
