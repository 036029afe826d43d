import { describe, expect, it } from "vitest";
import type { HostState, ResourceUsage } from "../../scheduler/host-state.js";
import { DEFAULT_WEIGHER_MULTIPLIERS } from "../../common/config.js";
import type { RequestSpec } from "../../scheduler/filters/types.js";
import {
  buildFailureWeigher,
  cpuWeigher,
  DEFAULT_WEIGHERS,
  diskWeigher,
  numInstancesWeigher,
  ramWeigher,
  weigh,
  weighersFor,
} from "../../scheduler/weighers/index.js";

const usage = (total: number, used: number): ResourceUsage => ({
  total, reserved: 0, min_unit: 1, max_unit: total, step_size: 1, allocation_ratio: 1, used,
});

const host = (name: string, freeRam: number, freeCpu = 8, over: Partial<HostState> = {}): HostState => ({
  providerId: `rp-${name}`,
  host: name,
  hypervisorHostname: name,
  generation: 1,
  availabilityZone: null,
  resources: { MEMORY_MB: usage(16384, 16384 - freeRam), VCPU: usage(8, 8 - freeCpu) },
  instanceCount: 0,
  enabled: true,
  forcedDown: false,
  lastSeenMs: 0,
  hypervisorType: "QEMU",
  cpuArch: "x86_64",
  aggregateMetadata: {},
  failedBuilds: 0,
  tieKey: 0,
  ...over,
});
const withDisk = (name: string, freeDisk: number): HostState => host(name, 4096, 4, { resources: { ...host(name, 4096, 4).resources, DISK_GB: usage(100, 100 - freeDisk) } });
const spec = (over: Partial<RequestSpec> = {}): RequestSpec => ({ instanceId: "i", resources: {}, availabilityZone: null, ignoreHosts: [], ...over });

const names = (hs: HostState[]) => hs.map((h) => h.host);

describe("weigh", () => {
  it("default weighers: RAM, CPU and disk spreading, build failures sinking; NumInstances (0) left out", () => {
    expect(DEFAULT_WEIGHERS.map((w) => [w.name, w.multiplier])).toEqual([
      ["RAMWeigher", 1],
      ["CPUWeigher", 1],
      ["DiskWeigher", 1],
      ["BuildFailureWeigher", 1_000_000],
    ]);
  });

  it("spreads by free RAM with a positive multiplier", () => {
    const hosts = [host("a", 1024), host("b", 8192), host("c", 4096)];
    expect(names(weigh(hosts, [ramWeigher(1)]))).toEqual(["b", "c", "a"]);
  });

  it("packs with a negative multiplier", () => {
    const hosts = [host("a", 1024), host("b", 8192), host("c", 4096)];
    expect(names(weigh(hosts, [ramWeigher(-1)]))).toEqual(["a", "c", "b"]);
  });

  it("orders ties by host name, whatever the input order", () => {
    const hosts = [host("c", 2048), host("a", 2048), host("d", 8192), host("b", 2048)];
    expect(names(weigh(hosts, [ramWeigher()]))).toEqual(["d", "a", "b", "c"]);
    expect(names(weigh([...hosts].reverse(), [ramWeigher()]))).toEqual(["d", "a", "b", "c"]);
  });

  it("orders by host name when all values are equal (normalised to 0)", () => {
    const hosts = [host("z", 4096, 2), host("m", 4096, 2), host("a", 4096, 2)];
    expect(names(weigh(hosts))).toEqual(["a", "m", "z"]);
    expect(names(weigh(hosts, [ramWeigher(-5), cpuWeigher(3)]))).toEqual(["a", "m", "z"]);
  });

  it("a weigher whose values are all equal does not drown the others", () => {
    const hosts = [host("a", 4096, 1), host("b", 4096, 6), host("c", 4096, 3)];
    expect(names(weigh(hosts, [ramWeigher(1), cpuWeigher(1)]))).toEqual(["b", "c", "a"]);
    expect(names(weigh(hosts, [ramWeigher(1), cpuWeigher(-1)]))).toEqual(["a", "c", "b"]);
  });

  it("normalises each weigher to [0, 1] before multiplying, so raw scale does not dominate", () => {
    // a: most free RAM (by thousands of MiB) but fewest free CPUs; b the reverse.
    const a = host("a", 16000, 1);
    const b = host("b", 1000, 8);
    const mid = host("m", 8500, 2); // RAM norm 0.5, CPU norm 1/7
    // equal multipliers: a = 1 + 0, b = 0 + 1 → tie → by name; m = 0.5 + 0.14
    expect(names(weigh([b, mid, a], [ramWeigher(1), cpuWeigher(1)]))).toEqual(["a", "b", "m"]);
    // CPU twice as important: b wins although its raw RAM difference is huge
    expect(names(weigh([a, mid, b], [ramWeigher(1), cpuWeigher(2)]))).toEqual(["b", "a", "m"]);
  });

  it("returns a single host, and nothing for no hosts, as new arrays", () => {
    const one = [host("only", 1)];
    const out = weigh(one);
    expect(names(out)).toEqual(["only"]);
    expect(out).not.toBe(one);
    expect(weigh([])).toEqual([]);
  });

  it("does not reorder its input", () => {
    const hosts = [host("a", 1024), host("b", 8192)];
    weigh(hosts, [ramWeigher()]);
    expect(names(hosts)).toEqual(["a", "b"]);
  });

  it("treats a host without the resource as having none free", () => {
    const bare: HostState = { ...host("bare", 0), resources: {} };
    expect(names(weigh([bare, host("x", 1)], [ramWeigher()]))).toEqual(["x", "bare"]);
    expect(names(weigh([host("x", 1, 1), bare], [cpuWeigher()]))).toEqual(["x", "bare"]);
  });
});

describe("DiskWeigher", () => {
  it("spreads by free DISK_GB; packs with a negative multiplier; a host without disk has none free", () => {
    const hosts = [withDisk("a", 10), withDisk("b", 90), withDisk("c", 50)];
    expect(names(weigh(hosts, [diskWeigher()]))).toEqual(["b", "c", "a"]);
    expect(names(weigh(hosts, [diskWeigher(-1)]))).toEqual(["a", "c", "b"]);
    expect(diskWeigher().value(host("bare", 1))).toBe(0);
  });

  it("counts reserved and allocation ratio as capacity does", () => {
    const h = host("r", 1, 1, { resources: { DISK_GB: { total: 100, reserved: 10, min_unit: 1, max_unit: 100, step_size: 1, allocation_ratio: 2, used: 30 } } });
    expect(diskWeigher().value(h)).toBe(150);
  });
});

describe("NumInstancesWeigher", () => {
  const hosts = [host("a", 4096, 4, { instanceCount: 5 }), host("b", 4096, 4, { instanceCount: 0 }), host("c", 4096, 4, { instanceCount: 2 })];

  it("defaults to Nova's 0: no effect", () => {
    expect(numInstancesWeigher().multiplier).toBe(0);
    expect(names(weigh(hosts, [numInstancesWeigher()]))).toEqual(["a", "b", "c"]);
  });

  it("positive prefers busy hosts (packs), negative idle ones (spreads)", () => {
    expect(names(weigh(hosts, [numInstancesWeigher(1)]))).toEqual(["a", "c", "b"]);
    expect(names(weigh(hosts, [numInstancesWeigher(-1)]))).toEqual(["b", "c", "a"]);
  });
});

describe("BuildFailureWeigher", () => {
  it("sinks any host with a recent failure below every host without, whatever the free room", () => {
    const hosts = [host("roomy", 16000, 8, { failedBuilds: 1 }), host("tight", 512, 1), host("mid", 4096, 4)];
    expect(names(weigh(hosts, DEFAULT_WEIGHERS))).toEqual(["mid", "tight", "roomy"]);
  });

  it("more failures sink further", () => {
    const hosts = [host("a", 4096, 4, { failedBuilds: 3 }), host("b", 4096, 4, { failedBuilds: 1 }), host("c", 4096, 4)];
    expect(names(weigh(hosts, [buildFailureWeigher()]))).toEqual(["c", "b", "a"]);
  });

  it("its value is the failures negated, Nova's multiplier 1,000,000 by default", () => {
    expect(buildFailureWeigher().multiplier).toBe(1_000_000);
    expect(buildFailureWeigher().value(host("a", 1, 1, { failedBuilds: 4 }))).toBe(-4);
  });

  it("a multiplier of 0 turns it off", () => {
    const hosts = [host("a", 8000, 4, { failedBuilds: 9 }), host("b", 1000, 4)];
    expect(names(weigh(hosts, weighersFor(spec(), { ...DEFAULT_WEIGHER_MULTIPLIERS, buildFailure: 0 })))[0]).toBe("a");
  });
});

describe("weighersFor with multipliers", () => {
  it("uses the configured multipliers and leaves out weighers at 0", () => {
    const m = { ram: 2, cpu: 0, disk: -1, numInstances: 0.5, buildFailure: 10, softAffinity: 3, softAntiAffinity: 4 };
    expect(weighersFor(spec(), m).map((w) => [w.name, w.multiplier])).toEqual([
      ["RAMWeigher", 2],
      ["DiskWeigher", -1],
      ["NumInstancesWeigher", 0.5],
      ["BuildFailureWeigher", 10],
    ]);
    const g = { id: "g", hosts: {} };
    expect(weighersFor(spec({ group: { ...g, policy: "soft-affinity" } }), m).at(-1)).toMatchObject({ name: "ServerGroupSoftAffinityWeigher", multiplier: 3 });
    expect(weighersFor(spec({ group: { ...g, policy: "soft-anti-affinity" } }), m).at(-1)).toMatchObject({ name: "ServerGroupSoftAntiAffinityWeigher", multiplier: 4 });
    expect(weighersFor(spec({ group: { ...g, policy: "soft-affinity" } }), { ...m, softAffinity: 0 }).map((w) => w.name)).not.toContain("ServerGroupSoftAffinityWeigher");
  });

  it("builds the weighers once per multipliers object", () => {
    const m = { ...DEFAULT_WEIGHER_MULTIPLIERS, ram: -1 };
    expect(weighersFor(spec(), m)).toBe(weighersFor(spec(), m));
  });

  it("negative RAM and CPU multipliers pack: the fullest host that fits first", () => {
    const m = { ...DEFAULT_WEIGHER_MULTIPLIERS, ram: -1, cpu: -1 };
    const hosts = [host("empty", 16000, 8), host("half", 8000, 4), host("full", 1000, 1)];
    expect(names(weigh(hosts, weighersFor(spec(), m)))).toEqual(["full", "half", "empty"]);
    expect(names(weigh(hosts, weighersFor(spec())))).toEqual(["empty", "half", "full"]);
  });
});
