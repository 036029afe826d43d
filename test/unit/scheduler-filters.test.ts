import { describe, expect, it } from "vitest";
import { capacity, free, resourcesForFlavor } from "../../scheduler/host-state.js";
import type { HostState, ResourceUsage } from "../../scheduler/host-state.js";
import { availabilityZoneFilter, DEFAULT_AVAILABILITY_ZONE } from "../../scheduler/filters/availability-zone.js";
import { capacityFilter } from "../../scheduler/filters/capacity.js";
import { DEFAULT_FILTERS, runFilters } from "../../scheduler/filters/index.js";
import type { HostFilter, RequestSpec } from "../../scheduler/filters/index.js";
import { retryFilter } from "../../scheduler/filters/retry.js";
import { appliesTo, type ScopedFilter } from "../../scheduler/filters/scoped.js";

const usage = (over: Partial<ResourceUsage> = {}): ResourceUsage => ({
  total: 16,
  reserved: 0,
  min_unit: 1,
  max_unit: 16,
  step_size: 1,
  allocation_ratio: 1,
  used: 0,
  ...over,
});

const host = (name: string, over: Partial<HostState> = {}): HostState => ({
  providerId: `rp-${name}`,
  host: name,
  hypervisorHostname: `${name}.local`,
  generation: 1,
  availabilityZone: null,
  resources: {
    VCPU: usage({ total: 8, max_unit: 8 }),
    MEMORY_MB: usage({ total: 8192, max_unit: 8192 }),
    DISK_GB: usage({ total: 100, max_unit: 100 }),
  },
  instanceCount: 0,
  enabled: true,
  forcedDown: false,
  lastSeenMs: 1_000_000,
  hypervisorType: "QEMU",
  cpuArch: "x86_64",
  aggregateMetadata: {},
  failedBuilds: 0,
  tieKey: 0,
  ...over,
});

const spec = (over: Partial<RequestSpec> = {}): RequestSpec => ({
  instanceId: "i-1",
  resources: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 },
  availabilityZone: null,
  ignoreHosts: [],
  ...over,
});

const withResource = (rc: "VCPU" | "MEMORY_MB" | "DISK_GB", r: ResourceUsage): HostState => {
  const h = host("h1");
  return { ...h, resources: { ...h.resources, [rc]: r } };
};

describe("capacity and free (placement's rule)", () => {
  it("is floor((total - reserved) * allocation_ratio)", () => {
    expect(capacity(usage({ total: 4, reserved: 0, allocation_ratio: 16 }))).toBe(64);
    expect(capacity(usage({ total: 5825, reserved: 512, allocation_ratio: 1.5 }))).toBe(7969); // 7969.5
    expect(capacity(usage({ total: 3, reserved: 0, allocation_ratio: 1.5 }))).toBe(4); // 4.5
    expect(capacity(usage({ total: 10, reserved: 3, allocation_ratio: 1 }))).toBe(7);
    expect(capacity(usage({ total: 10, reserved: 0, allocation_ratio: 0.5 }))).toBe(5);
  });

  it("free subtracts what is used", () => {
    expect(free(usage({ total: 10, reserved: 2, allocation_ratio: 2, used: 5 }))).toBe(11);
  });
});

describe("resourcesForFlavor", () => {
  it("asks for vcpus, ram and disk + ephemeral + swap rounded up to GiB", () => {
    expect(resourcesForFlavor({ vcpus: 2, ram: 2048, disk: 20, ephemeral: 5, swap: 1 })).toEqual({ VCPU: 2, MEMORY_MB: 2048, DISK_GB: 26 });
    expect(resourcesForFlavor({ vcpus: 1, ram: 512, disk: 1, ephemeral: 0, swap: 1024 })).toEqual({ VCPU: 1, MEMORY_MB: 512, DISK_GB: 2 });
    expect(resourcesForFlavor({ vcpus: 1, ram: 512, disk: 1, ephemeral: 0, swap: 1025 })).toEqual({ VCPU: 1, MEMORY_MB: 512, DISK_GB: 3 });
    expect(resourcesForFlavor({ vcpus: 1, ram: 512, disk: 10, ephemeral: 0, swap: 0 })).toEqual({ VCPU: 1, MEMORY_MB: 512, DISK_GB: 10 });
  });

  it("omits DISK_GB when the flavor needs no disk", () => {
    const r = resourcesForFlavor({ vcpus: 1, ram: 64, disk: 0, ephemeral: 0, swap: 0 });
    expect(r).toEqual({ VCPU: 1, MEMORY_MB: 64 });
    expect("DISK_GB" in r).toBe(false);
    // swap alone still needs a disk
    expect(resourcesForFlavor({ vcpus: 1, ram: 64, disk: 0, ephemeral: 0, swap: 512 })).toEqual({ VCPU: 1, MEMORY_MB: 64, DISK_GB: 1 });
  });
});

describe("capacityFilter", () => {
  const passes = (h: HostState, s: RequestSpec) => capacityFilter.passes(h, s);

  it("passes when every class fits and fails when one does not", () => {
    expect(passes(host("h1"), spec())).toBe(true);
    expect(passes(host("h1"), spec({ resources: { VCPU: 9 } }))).toBe(false);
    expect(passes(withResource("MEMORY_MB", usage({ total: 8192, max_unit: 8192, used: 8000 })), spec())).toBe(false);
  });

  it("counts the reservation out", () => {
    const h = withResource("MEMORY_MB", usage({ total: 4096, reserved: 512, max_unit: 4096 }));
    expect(passes(h, spec({ resources: { MEMORY_MB: 3584 } }))).toBe(true);
    expect(passes(h, spec({ resources: { MEMORY_MB: 3585 } }))).toBe(false);
  });

  it("multiplies by the allocation ratio", () => {
    const h = withResource("VCPU", usage({ total: 4, allocation_ratio: 4, max_unit: 16, used: 10 }));
    expect(passes(h, spec({ resources: { VCPU: 6 } }))).toBe(true); // 16 - 10
    expect(passes(h, spec({ resources: { VCPU: 7 } }))).toBe(false);
  });

  it("enforces min_unit", () => {
    const h = withResource("DISK_GB", usage({ total: 100, max_unit: 100, min_unit: 5 }));
    expect(passes(h, spec({ resources: { DISK_GB: 4 } }))).toBe(false);
    expect(passes(h, spec({ resources: { DISK_GB: 5 } }))).toBe(true);
  });

  it("enforces max_unit even when there is room", () => {
    const h = withResource("VCPU", usage({ total: 8, allocation_ratio: 4, max_unit: 8 }));
    expect(passes(h, spec({ resources: { VCPU: 8 } }))).toBe(true);
    expect(passes(h, spec({ resources: { VCPU: 9 } }))).toBe(false);
  });

  it("enforces step_size", () => {
    const h = withResource("MEMORY_MB", usage({ total: 8192, max_unit: 8192, step_size: 256 }));
    expect(passes(h, spec({ resources: { MEMORY_MB: 512 } }))).toBe(true);
    expect(passes(h, spec({ resources: { MEMORY_MB: 500 } }))).toBe(false);
  });

  it("reserved and allocation ratio together: (total - reserved) * ratio, the boundary included", () => {
    const h = withResource("VCPU", usage({ total: 10, reserved: 2, allocation_ratio: 1.5, max_unit: 12, used: 5 }));
    expect(passes(h, spec({ resources: { VCPU: 7 } }))).toBe(true); // 8 * 1.5 - 5 = 7
    expect(passes(h, spec({ resources: { VCPU: 8 } }))).toBe(false);
    const over = withResource("MEMORY_MB", usage({ total: 512, reserved: 1024, max_unit: 512 }));
    expect(passes(over, spec({ resources: { MEMORY_MB: 1 } }))).toBe(false); // reserved above total: no capacity
  });

  it("min_unit, max_unit and step_size are checked together, whatever the free room", () => {
    const h = withResource("DISK_GB", usage({ total: 1000, max_unit: 40, min_unit: 10, step_size: 10 }));
    expect([5, 10, 15, 20, 40, 45, 50].map((d) => passes(h, spec({ resources: { DISK_GB: d } })))).toEqual([false, true, false, true, true, false, false]);
  });

  it("fails a host lacking a requested resource class", () => {
    const h = host("h1");
    delete h.resources.DISK_GB;
    expect(passes(h, spec({ resources: { VCPU: 1, DISK_GB: 1 } }))).toBe(false);
    expect(passes(h, spec({ resources: { VCPU: 1, MEMORY_MB: 64 } }))).toBe(true);
  });

  it("ignores a zero request, even for a class the host lacks or has no room in", () => {
    const h = host("h1");
    delete h.resources.DISK_GB;
    expect(passes(h, spec({ resources: { VCPU: 1, MEMORY_MB: 64, DISK_GB: 0 } }))).toBe(true);
    const full = withResource("VCPU", usage({ total: 1, used: 1, max_unit: 1, min_unit: 1 }));
    expect(passes(full, spec({ resources: { VCPU: 0, MEMORY_MB: 64 } }))).toBe(true);
    expect(passes(host("h1"), spec({ resources: {} }))).toBe(true);
  });
});

describe("availabilityZoneFilter", () => {
  const az = (name: string, zone: string | null) => host(name, { availabilityZone: zone });

  it("passes every host when no zone is requested", () => {
    for (const h of [az("a", null), az("b", "nova"), az("c", "zone-1")]) {
      expect(availabilityZoneFilter.passes(h, spec({ availabilityZone: null })), h.host).toBe(true);
    }
  });

  it("keeps only the hosts in the requested zone", () => {
    expect(availabilityZoneFilter.passes(az("a", "zone-1"), spec({ availabilityZone: "zone-1" }))).toBe(true);
    expect(availabilityZoneFilter.passes(az("b", "zone-2"), spec({ availabilityZone: "zone-1" }))).toBe(false);
    expect(availabilityZoneFilter.passes(az("c", null), spec({ availabilityZone: "zone-1" }))).toBe(false);
  });

  it("puts hosts without a zone in nova", () => {
    expect(DEFAULT_AVAILABILITY_ZONE).toBe("nova");
    expect(availabilityZoneFilter.passes(az("a", null), spec({ availabilityZone: "nova" }))).toBe(true);
    expect(availabilityZoneFilter.passes(az("b", "zone-1"), spec({ availabilityZone: "nova" }))).toBe(false);
  });
});

describe("retryFilter", () => {
  it("drops the hosts that already failed this build", () => {
    const s = spec({ ignoreHosts: ["h1", "h3"] });
    expect(retryFilter.passes(host("h1"), s)).toBe(false);
    expect(retryFilter.passes(host("h2"), s)).toBe(true);
    expect(retryFilter.passes(host("h3"), s)).toBe(false);
    expect(retryFilter.passes(host("h1"), spec())).toBe(true);
  });

  it("matches on the host name, not the hypervisor hostname", () => {
    expect(retryFilter.passes(host("h1"), spec({ ignoreHosts: ["h1.local"] }))).toBe(true);
  });
});

describe("runFilters", () => {
  it("runs every filter by default, cheapest and most selective first", () => {
    expect(DEFAULT_FILTERS.map((f) => f.name)).toEqual([
      "ComputeFilter",
      "RetryFilter",
      "AvailabilityZoneFilter",
      "SameHostFilter",
      "DifferentHostFilter",
      "ServerGroupAntiAffinityFilter",
      "ServerGroupAffinityFilter",
      "ImagePropertiesFilter",
      "CapacityFilter",
      "AggregateInstanceExtraSpecsFilter",
    ]);
  });

  it("records how many hosts each filter left", () => {
    const hosts = [
      host("h1", { availabilityZone: "z1" }),
      host("h2", { availabilityZone: "z1" }),
      host("h3", { availabilityZone: "z2" }),
      host("h4", { availabilityZone: "z1", resources: { ...host("x").resources, VCPU: usage({ total: 1, max_unit: 1, used: 1 }) } }),
    ];
    const r = runFilters(hosts, spec({ ignoreHosts: ["h2"], availabilityZone: "z1" }));
    const at = (name: string) => r.trail.find((t) => t.filter === name)?.remaining;
    expect(r.trail).toHaveLength(DEFAULT_FILTERS.length);
    expect([at("ComputeFilter"), at("RetryFilter"), at("AvailabilityZoneFilter"), at("CapacityFilter"), at("AggregateInstanceExtraSpecsFilter")]).toEqual([4, 3, 2, 1, 1]);
    expect(r.hosts.map((h) => h.host)).toEqual(["h1"]);
  });

  it("stops at the first filter that leaves nothing", () => {
    let laterCalls = 0;
    const later: HostFilter = { name: "Later", passes: () => (laterCalls++, true) };
    const r = runFilters([host("h1", { availabilityZone: "z1" })], spec({ availabilityZone: "z9" }), [retryFilter, availabilityZoneFilter, later]);
    expect(r.hosts).toEqual([]);
    expect(r.trail).toEqual([
      { filter: "RetryFilter", remaining: 1 },
      { filter: "AvailabilityZoneFilter", remaining: 0 },
    ]);
    expect(laterCalls).toBe(0);
  });

  it("keeps the input order and does not modify the input", () => {
    const hosts = [host("c"), host("a"), host("b")];
    const r = runFilters(hosts, spec());
    expect(r.hosts.map((h) => h.host)).toEqual(["c", "a", "b"]);
    expect(hosts.map((h) => h.host)).toEqual(["c", "a", "b"]);
  });

  it("with no hosts, stops after the first filter", () => {
    expect(runFilters([], spec())).toEqual({ hosts: [], trail: [{ filter: "ComputeFilter", remaining: 0 }] });
  });

  it("skips a filter with nothing to check for the request, but keeps it in the trail", () => {
    let calls = 0;
    const idle: ScopedFilter = { name: "Idle", appliesTo: () => false, passes: () => (calls++, false) };
    const r = runFilters([host("h1"), host("h2")], spec(), [idle, retryFilter]);
    expect(calls).toBe(0);
    expect(r.hosts.map((h) => h.host)).toEqual(["h1", "h2"]);
    expect(r.trail).toEqual([
      { filter: "Idle", remaining: 2 },
      { filter: "RetryFilter", remaining: 2 },
    ]);
  });

  it("each default filter with nothing to check passes every host (skipping it changes nothing)", () => {
    const hosts = [host("h1"), host("h2", { availabilityZone: "z" }), host("h3", { cpuArch: null, hypervisorType: "xen" })];
    const plain = spec({ resources: {} });
    for (const f of DEFAULT_FILTERS) {
      if (appliesTo(f, plain)) continue;
      for (const h of hosts) expect(f.passes(h, plain), `${f.name} on ${h.host}`).toBe(true);
    }
    expect(DEFAULT_FILTERS.filter((f) => appliesTo(f, plain)).map((f) => f.name)).toEqual(["ComputeFilter"]);
  });

  it("a filter never sees a host an earlier one refused", () => {
    const seen: string[] = [];
    const spy: HostFilter = { name: "Spy", passes: (h) => (seen.push(h.host), true) };
    const r = runFilters([host("h1"), host("h2"), host("h3")], spec({ ignoreHosts: ["h2"] }), [retryFilter, spy]);
    expect(seen).toEqual(["h1", "h3"]);
    expect(r.trail).toEqual([
      { filter: "RetryFilter", remaining: 2 },
      { filter: "Spy", remaining: 2 },
    ]);
  });

  it("with one to eight filters, keeps and counts exactly what filtering one filter after another does", () => {
    // Filters that refuse hosts by a bit of their index: every position, the generic tail after the fourth included.
    const byBit = (bit: number): HostFilter => ({ name: `Bit${bit}`, passes: (h) => ((Number(h.host.slice(1)) >> bit) & 1) === 0 });
    const hosts = Array.from({ length: 300 }, (_, i) => host(`h${i}`));
    for (let n = 1; n <= 8; n++) {
      const filters = Array.from({ length: n }, (_, bit) => byBit(bit));
      let left = hosts;
      const trail: { filter: string; remaining: number }[] = [];
      for (const f of filters) {
        left = left.filter((h) => f.passes(h, spec()));
        trail.push({ filter: f.name, remaining: left.length });
        if (left.length === 0) break;
      }
      const r = runFilters(hosts, spec(), filters);
      expect(r.hosts, `${n} filters`).toEqual(left);
      expect(r.trail, `${n} filters`).toEqual(trail);
    }
  });
});
