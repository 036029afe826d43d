/**
 * The scheduler's in-memory host view against a real Postgres: it sees claims,
 * releases, service and aggregate changes made by others through incremental reads,
 * including a change stamped before a refresh but committed after it.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { releaseAllocations } from "../../common/db/allocations.js";
import { claim } from "../../scheduler/claim.js";
import { runFilters, type RequestSpec } from "../../scheduler/filters/index.js";
import { HostStateView } from "../../scheduler/host-state-view.js";
import { rank, weighersFor } from "../../scheduler/weighers/index.js";
import { createTestDatabase, type TestDatabase } from "../support/services.js";

let t: TestDatabase;
let view: HostStateView;

async function addHost(host: string, vcpus = 8): Promise<string> {
  const serviceId = randomUUID();
  const providerId = randomUUID();
  await t.db.transaction(async (trx) => {
    await trx("compute_services").insert({
      id: serviceId, host, hypervisor_type: "QEMU", hypervisor_version: 1, hypervisor_hostname: host,
      host_ip: "192.0.2.1", libvirt_uri: "test:///default", cpu_arch: "x86_64",
    });
    await trx("resource_providers").insert({ id: providerId, name: host, compute_service_id: serviceId });
    await trx("inventories").insert([
      { provider_id: providerId, resource_class: "VCPU", total: vcpus, max_unit: vcpus },
      { provider_id: providerId, resource_class: "MEMORY_MB", total: 4096, max_unit: 4096 },
    ]);
  });
  return providerId;
}

const hostNamed = (name: string) => view.hosts().find((h) => h.host === name)!;

beforeAll(async () => {
  t = await createTestDatabase();
  view = new HostStateView(t.db, { livenessMaxAgeMs: 0, freshWithinMs: 30_000, fullResyncMs: 3_600_000 });
});
afterAll(async () => t?.drop());

describe("HostStateView", () => {
  it("loads every host with its inventory, usage and service status", async () => {
    await addHost("v-1");
    await addHost("v-2", 4);
    await view.refresh();
    expect(view.size).toBe(2);
    expect(hostNamed("v-2")).toMatchObject({ enabled: true, forcedDown: false, cpuArch: "x86_64", hypervisorType: "QEMU", instanceCount: 0 });
    expect(hostNamed("v-2").resources.VCPU).toMatchObject({ total: 4, used: 0 });
  });

  it("sees hosts added later and claims and releases made by another scheduler", async () => {
    await addHost("v-3");
    await view.refresh();
    expect(view.size).toBe(3);
    const v1 = hostNamed("v-1");
    const consumer = randomUUID();
    await t.db.transaction(async (trx) => {
      expect(await claim(trx, { ...v1 }, consumer, { VCPU: 2, MEMORY_MB: 512 })).toBe(true);
    });
    await view.refresh();
    expect(hostNamed("v-1").resources.VCPU!.used).toBe(2);
    expect(hostNamed("v-1").instanceCount).toBe(1);
    expect(hostNamed("v-1").generation).toBe(v1.generation);
    await t.db.transaction((trx) => releaseAllocations(trx, consumer));
    await view.refresh();
    expect(hostNamed("v-1").resources.VCPU!.used).toBe(0);
    expect(hostNamed("v-1").instanceCount).toBe(0);
  });

  it("catches a change stamped before a refresh and committed after it", async () => {
    const v2 = hostNamed("v-2");
    const consumer = randomUUID();
    const trx = await t.db.transaction();
    expect(await claim(trx, { ...v2 }, consumer, { VCPU: 3 })).toBe(true);
    await view.refresh(); // the claim is not committed yet: not visible
    expect(hostNamed("v-2").resources.VCPU!.used).toBe(0);
    await trx.commit();
    await view.refresh();
    expect(hostNamed("v-2").resources.VCPU!.used).toBe(3);
  });

  it("catches a service change made before a refresh and committed after it", async () => {
    const trx = await t.db.transaction();
    await trx("compute_services").where({ host: "v-2" }).update({ status: "disabled" });
    await view.refresh();
    expect(hostNamed("v-2").enabled).toBe(true);
    await trx.commit();
    await view.refresh();
    expect(hostNamed("v-2").enabled).toBe(false);
    await t.db("compute_services").where({ host: "v-2" }).update({ status: "enabled" });
    await view.refresh();
    expect(hostNamed("v-2").enabled).toBe(true);
  });

  it("sees a disabled or forced-down service and a new aggregate's zone and metadata", async () => {
    await t.db("compute_services").where({ host: "v-3" }).update({ status: "disabled" });
    await t.db("compute_services").where({ host: "v-1" }).update({ forced_down: true });
    const [agg] = await t.db("aggregates").insert({ uuid: randomUUID(), name: "fast", availability_zone: "az-fast", metadata: { ssd: "true" } }).returning("id");
    await t.db("aggregate_hosts").insert({ aggregate_id: (agg as { id: number }).id, host: "v-2" });
    await view.refresh();
    expect(hostNamed("v-3").enabled).toBe(false);
    expect(hostNamed("v-1").forcedDown).toBe(true);
    expect(hostNamed("v-2")).toMatchObject({ availabilityZone: "az-fast", aggregateMetadata: { ssd: ["true"] } });
    await t.db("aggregate_hosts").where({ host: "v-2" }).delete();
    await view.refresh();
    expect(hostNamed("v-2")).toMatchObject({ availabilityZone: null, aggregateMetadata: {} });
  });

  it("re-reads heartbeats without re-reading providers", async () => {
    await t.db("compute_services").where({ host: "v-2" }).update({ last_seen_at: t.db.raw("now() - interval '1 hour'") });
    await view.refresh();
    expect(Date.now() - hostNamed("v-2").lastSeenMs).toBeGreaterThan(3_000_000);
  });

  it("reads only the heartbeats older than freshWithinMs; a fresher one counts as exactly that old, never newer than it is", async () => {
    await t.db("compute_services").where({ host: "v-2" }).update({ last_seen_at: t.db.raw("now() - interval '10 seconds'") });
    await t.db("compute_services").where({ host: "v-1" }).update({ last_seen_at: t.db.raw("now() - interval '45 seconds'") });
    await view.refreshLiveness();
    const age = (host: string) => Date.now() - hostNamed(host).lastSeenMs;
    // v-2 (10 s) reads as 30 s old, the window; v-1 (45 s, outside it) as its own heartbeat.
    expect(age("v-2")).toBeGreaterThanOrEqual(30_000 - 1_000);
    expect(age("v-2")).toBeLessThan(40_000);
    expect(age("v-1")).toBeGreaterThanOrEqual(45_000 - 1_000);
    expect(age("v-1")).toBeLessThan(55_000);
    // Back to a fresh heartbeat: v-1 is inside the window again.
    await t.db("compute_services").where({ host: "v-1" }).update({ last_seen_at: t.db.fn.now() });
    await view.refreshLiveness();
    expect(age("v-1")).toBeLessThan(40_000);
  });

  it("reload() forgets a provider that is gone", async () => {
    const gone = hostNamed("v-3").providerId;
    await t.db("compute_services").where({ host: "v-3" }).delete();
    await view.reload(t.db, [gone]);
    expect(view.hosts().some((h) => h.host === "v-3")).toBe(false);
  });

  it("keeps a standing pass up to date with what each refresh reads and each claim it won", async () => {
    // A fresh view: the ones above changed services by hand.
    const fresh = new HostStateView(t.db, { livenessMaxAgeMs: 0, freshWithinMs: 30_000, fullResyncMs: 3_600_000 });
    await t.db("compute_services").update({ status: "enabled", forced_down: false, last_seen_at: t.db.fn.now() });
    const spec: RequestSpec = { instanceId: "x", resources: { VCPU: 2, MEMORY_MB: 256 }, availabilityZone: null, ignoreHosts: [] };
    const weighers = weighersFor(spec);
    // What the pass says, against filtering and weighing every host afresh.
    const check = async () => {
      await fresh.refresh();
      const upSinceMs = Date.now() - 60_000;
      const pass = fresh.standing.passFor("k", fresh.hosts(), spec, weighers, upSinceMs)!;
      const passing = runFilters(fresh.hosts(), { ...spec, upSinceMs }).hosts;
      expect(pass.best(3).map((r) => pass.rows.hosts[r]!.host)).toEqual(rank(passing, weighers, 3).map((h) => h.host));
      expect(fresh.hosts().filter((_, row) => pass.passing[row] === 1)).toEqual(passing);
    };
    await check();
    const best = fresh.hosts().find((h) => h.host === "v-1")!;
    await t.db.transaction(async (trx) => {
      expect(await claim(trx, { ...best }, randomUUID(), { VCPU: 6, MEMORY_MB: 512 })).toBe(true);
    });
    await check();
    await t.db("compute_services").where({ host: "v-2" }).update({ status: "disabled" });
    await check();
    await t.db("compute_services").where({ host: "v-2" }).update({ status: "enabled", last_seen_at: t.db.raw("now() - interval '2 minutes'") });
    await check();
    await t.db("compute_services").where({ host: "v-2" }).update({ last_seen_at: t.db.fn.now() });
    await fresh.refreshLiveness();
    await check();
    const [agg] = await t.db("aggregates").insert({ uuid: randomUUID(), name: "other", availability_zone: "az-other" }).returning("id");
    await t.db("aggregate_hosts").insert({ aggregate_id: (agg as { id: number }).id, host: "v-1" });
    await check();
    // A claim this process won reaches the pass through applyWon, before any refresh.
    const v2 = fresh.hosts().find((h) => h.host === "v-2")!;
    fresh.applyWon({ ...v2, generation: v2.generation + 1, instanceCount: v2.instanceCount + 1, resources: { ...v2.resources, VCPU: { ...v2.resources.VCPU!, used: 7 } } });
    const pass = fresh.standing.passFor("k", fresh.hosts(), spec, weighers, Date.now() - 60_000)!;
    expect(pass.rows.hosts.filter((_, row) => pass.passing[row] === 1).map((h) => h.host)).not.toContain("v-2");
  });
});
