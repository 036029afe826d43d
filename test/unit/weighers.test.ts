import { describe, expect, it } from "vitest";
import type { HostState, ResourceUsage } from "../../scheduler/host-state.js";
import { cpuWeigher, DEFAULT_WEIGHERS, ramWeigher, weigh } from "../../scheduler/weighers/index.js";

const usage = (total: number, used: number): ResourceUsage => ({
  total, reserved: 0, min_unit: 1, max_unit: total, step_size: 1, allocation_ratio: 1, used,
});

const host = (name: string, freeRam: number, freeCpu = 8): HostState => ({
  providerId: `rp-${name}`,
  host: name,
  hypervisorHostname: name,
  generation: 1,
  availabilityZone: null,
  resources: { MEMORY_MB: usage(16384, 16384 - freeRam), VCPU: usage(8, 8 - freeCpu) },
  instanceCount: 0,
});

const names = (hs: HostState[]) => hs.map((h) => h.host);

describe("weigh", () => {
  it("default weighers are RAM then CPU, both spreading", () => {
    expect(DEFAULT_WEIGHERS.map((w) => [w.name, w.multiplier])).toEqual([["RAMWeigher", 1], ["CPUWeigher", 1]]);
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
