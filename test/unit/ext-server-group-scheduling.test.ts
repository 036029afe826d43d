import { describe, expect, it } from "vitest";
import { DEFAULT_FILTERS, filtersFor, runFilters, SERVER_GROUP_FILTERS } from "../../scheduler/filters/index.js";
import type { RequestSpec, ServerGroupSpec } from "../../scheduler/filters/index.js";
import { serverGroupAffinityFilter, serverGroupAntiAffinityFilter } from "../../scheduler/filters/server-group.js";
import type { HostState, ResourceUsage } from "../../scheduler/host-state.js";
import { DEFAULT_WEIGHERS, weigh, weighersFor } from "../../scheduler/weighers/index.js";
import { softAffinityWeigher, softAntiAffinityWeigher } from "../../scheduler/weighers/server-group.js";

const usage = (total: number, used = 0): ResourceUsage => ({ total, reserved: 0, min_unit: 1, max_unit: total, step_size: 1, allocation_ratio: 1, used });
const host = (name: string, ramUsed = 0): HostState => ({
  providerId: `rp-${name}`,
  host: name,
  hypervisorHostname: name,
  generation: 0,
  availabilityZone: null,
  resources: { VCPU: usage(16), MEMORY_MB: usage(16384, ramUsed), DISK_GB: usage(100) },
  instanceCount: 0,
  enabled: true,
  forcedDown: false,
  lastSeenMs: 0,
  hypervisorType: "QEMU",
  cpuArch: "x86_64",
  aggregateMetadata: {},
  failedBuilds: 0,
  tieKey: 0,
});
const group = (policy: ServerGroupSpec["policy"], hosts: Record<string, number> = {}): ServerGroupSpec => ({ id: "g", policy, hosts });
const spec = (g?: ServerGroupSpec | null): RequestSpec => ({
  instanceId: "i",
  resources: { VCPU: 1, MEMORY_MB: 512 },
  availabilityZone: null,
  ignoreHosts: [],
  ...(g !== undefined ? { group: g } : {}),
});
const names = (hs: HostState[]) => hs.map((h) => h.host);

describe("ServerGroupAntiAffinityFilter", () => {
  it("refuses hosts that run another member; passes everything for other policies or no group", () => {
    const s = spec(group("anti-affinity", { a: 1, b: 0 }));
    expect(serverGroupAntiAffinityFilter.passes(host("a"), s)).toBe(false);
    expect(serverGroupAntiAffinityFilter.passes(host("b"), s)).toBe(true);
    expect(serverGroupAntiAffinityFilter.passes(host("c"), s)).toBe(true);
    expect(serverGroupAntiAffinityFilter.passes(host("a"), spec(group("soft-anti-affinity", { a: 3 })))).toBe(true);
    expect(serverGroupAntiAffinityFilter.passes(host("a"), spec(group("affinity", { a: 1 })))).toBe(true);
    expect(serverGroupAntiAffinityFilter.passes(host("a"), spec())).toBe(true);
    expect(serverGroupAntiAffinityFilter.passes(host("a"), spec(null))).toBe(true);
  });
});

describe("ServerGroupAffinityFilter", () => {
  it("keeps only the members' hosts once a member is placed", () => {
    const s = spec(group("affinity", { b: 2 }));
    expect(serverGroupAffinityFilter.passes(host("a"), s)).toBe(false);
    expect(serverGroupAffinityFilter.passes(host("b"), s)).toBe(true);
  });

  it("lets the first member go anywhere", () => {
    expect(serverGroupAffinityFilter.passes(host("a"), spec(group("affinity")))).toBe(true);
    expect(serverGroupAffinityFilter.passes(host("a"), spec(group("affinity", { b: 0 })))).toBe(true);
  });

  it("ignores other policies", () => {
    expect(serverGroupAffinityFilter.passes(host("a"), spec(group("soft-affinity", { b: 1 })))).toBe(true);
    expect(serverGroupAffinityFilter.passes(host("a"), spec(group("anti-affinity", { b: 1 })))).toBe(true);
  });
});

describe("filtersFor / runFilters", () => {
  it("the chain always holds both group filters; they pass every host for a request outside a group", () => {
    expect(filtersFor(spec())).toBe(DEFAULT_FILTERS);
    expect(filtersFor(spec(group("affinity")))).toBe(DEFAULT_FILTERS);
    expect(SERVER_GROUP_FILTERS.map((f) => f.name)).toEqual(["ServerGroupAntiAffinityFilter", "ServerGroupAffinityFilter"]);
    for (const f of SERVER_GROUP_FILTERS) expect(DEFAULT_FILTERS).toContain(f);
    expect(names(runFilters([host("a"), host("b")], spec(null)).hosts)).toEqual(["a", "b"]);
  });

  it("runFilters uses them by default and reports them in the trail", () => {
    const r = runFilters([host("a"), host("b"), host("c")], spec(group("anti-affinity", { a: 1, c: 1 })));
    expect(names(r.hosts)).toEqual(["b"]);
    expect(r.trail.filter((t) => t.filter.startsWith("ServerGroup"))).toEqual([
      { filter: "ServerGroupAntiAffinityFilter", remaining: 1 },
      { filter: "ServerGroupAffinityFilter", remaining: 1 },
    ]);
    const none = runFilters([host("a")], spec(group("anti-affinity", { a: 1 })));
    expect(none.hosts).toEqual([]);
    expect(none.trail.at(-1)).toEqual({ filter: "ServerGroupAntiAffinityFilter", remaining: 0 });
  });

  it("affinity: counts updated in place between two members of one pass are seen", () => {
    const s = spec(group("affinity", {}));
    expect(serverGroupAffinityFilter.passes(host("a"), s)).toBe(true);
    expect(runFilters([host("a"), host("b")], s).hosts).toHaveLength(2);
    s.group!.hosts.b = 1; // the first member was placed on b
    expect(serverGroupAffinityFilter.passes(host("a"), s)).toBe(false);
    expect(names(runFilters([host("a"), host("b")], s).hosts)).toEqual(["b"]);
  });

  it("a host named like an Object.prototype member is not mistaken for a member's host", () => {
    expect(serverGroupAntiAffinityFilter.passes(host("constructor"), spec(group("anti-affinity", { a: 1 })))).toBe(true);
    expect(serverGroupAffinityFilter.passes(host("constructor"), spec(group("affinity", { a: 1 })))).toBe(false);
    expect(softAffinityWeigher(group("soft-affinity", {})).value(host("toString"))).toBe(0);
  });
});

describe("soft group weighers", () => {
  it("weighersFor adds the matching soft weigher only", () => {
    expect(weighersFor(spec())).toBe(DEFAULT_WEIGHERS);
    expect(weighersFor(spec(group("soft-affinity"))).slice(0, -1)).toEqual(DEFAULT_WEIGHERS);
    expect(weighersFor(spec(group("affinity")))).toBe(DEFAULT_WEIGHERS);
    expect(weighersFor(spec(group("anti-affinity")))).toBe(DEFAULT_WEIGHERS);
    expect(weighersFor(spec(group("soft-affinity"))).at(-1)!.name).toBe("ServerGroupSoftAffinityWeigher");
    expect(weighersFor(spec(group("soft-anti-affinity"))).at(-1)!.name).toBe("ServerGroupSoftAntiAffinityWeigher");
  });

  it("soft-affinity prefers the host with most members over a host with more free RAM", () => {
    const g = group("soft-affinity", { busy: 2, some: 1 });
    const hosts = [host("empty"), host("some", 4000), host("busy", 8000)];
    expect(names(weigh(hosts, DEFAULT_WEIGHERS))[0]).toBe("empty");
    expect(names(weigh(hosts, weighersFor(spec(g))))).toEqual(["busy", "some", "empty"]);
  });

  it("soft-anti-affinity prefers hosts with fewest members even when fuller", () => {
    const g = group("soft-anti-affinity", { empty: 2, some: 1 });
    const hosts = [host("empty"), host("some", 4000), host("full", 8000)];
    expect(names(weigh(hosts, weighersFor(spec(g))))).toEqual(["full", "some", "empty"]);
  });

  it("values are member counts (negated for anti), multiplier configurable", () => {
    const g = group("soft-affinity", { a: 3 });
    expect(softAffinityWeigher(g).value(host("a"))).toBe(3);
    expect(softAffinityWeigher(g).value(host("b"))).toBe(0);
    expect(softAntiAffinityWeigher(g).value(host("a"))).toBe(-3);
    expect(softAffinityWeigher(g, 2).multiplier).toBe(2);
    // With Nova's multiplier of 1.0, RAM and CPU spreading outvote the soft policy.
    const hosts = [host("a", 8000), host("b")];
    expect(names(weigh(hosts, [...DEFAULT_WEIGHERS, softAffinityWeigher(g, 0.5)]))[0]).toBe("b");
  });
});
