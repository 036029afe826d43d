import { describe, expect, it } from "vitest";
import type { HostState } from "../../scheduler/host-state.js";
import { processTieKey, tieKey } from "../../scheduler/tie-order.js";
import { cpuWeigher, DEFAULT_WEIGHERS, hostWeights, rank, ramWeigher, weigh, type Weigher } from "../../scheduler/weighers/index.js";

const host = (name: string, freeRam: number, freeCpu = 4): HostState => ({
  providerId: `rp-${name}`,
  host: name,
  hypervisorHostname: name,
  generation: 1,
  availabilityZone: null,
  resources: {
    MEMORY_MB: { total: 16384, reserved: 0, min_unit: 1, max_unit: 16384, step_size: 1, allocation_ratio: 1, used: 16384 - freeRam },
    VCPU: { total: 8, reserved: 0, min_unit: 1, max_unit: 8, step_size: 1, allocation_ratio: 1, used: 8 - freeCpu },
  },
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
const names = (hs: HostState[]) => hs.map((h) => h.host);

/** A deterministic pseudo-random sequence, so a failure can be replayed. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe("hostWeights", () => {
  it("normalises each weigher across all candidates, then multiplies and sums", () => {
    const hosts = [host("a", 0, 1), host("b", 8000, 3), host("c", 16000, 5)];
    expect(Array.from(hostWeights(hosts, [ramWeigher(1), cpuWeigher(2)]))).toEqual([0, 0.5 + 1, 1 + 2]);
  });

  it("a weigher whose values are all equal, or whose multiplier is 0, adds nothing", () => {
    const hosts = [host("a", 100, 2), host("b", 100, 4)];
    expect(Array.from(hostWeights(hosts, [ramWeigher(5), cpuWeigher(0)]))).toEqual([0, 0]);
  });

  it("does not call a weigher whose multiplier is 0", () => {
    let calls = 0;
    const spy: Weigher = { name: "Spy", multiplier: 0, value: () => (calls++, 1) };
    hostWeights([host("a", 1), host("b", 2)], [spy]);
    expect(calls).toBe(0);
  });
  it("gives every weigher its own column, one to eight of them (the generic tail after the sixth included)", () => {
    const next = lcg(7);
    const hosts = Array.from({ length: 50 }, (_, i) => host(`h${i}`, Math.floor(next() * 16000), 1 + Math.floor(next() * 7)));
    const weighers = Array.from({ length: 8 }, (_, j): Weigher => ({ name: `W${j}`, multiplier: j + 1, value: (h) => ((h.resources.MEMORY_MB!.used * (j + 3)) % 97) + j * h.resources.VCPU!.used }));
    for (let m = 1; m <= 8; m++) {
      const ws = weighers.slice(0, m);
      const expected = hosts.map(() => 0);
      for (const w of ws) {
        const values = hosts.map((h) => w.value(h));
        const [min, max] = [Math.min(...values), Math.max(...values)];
        values.forEach((v, i) => (expected[i]! += max > min ? ((v - min) / (max - min)) * w.multiplier : 0));
      }
      Array.from(hostWeights(hosts, ws)).forEach((got, i) => expect(got, `${m} weighers, host ${i}`).toBeCloseTo(expected[i]!, 9));
    }
  });
});

describe("rank", () => {
  it("returns the best k in order", () => {
    const hosts = [host("a", 1000), host("b", 9000), host("c", 5000), host("d", 7000), host("e", 3000)];
    expect(names(rank(hosts, [ramWeigher()], 3))).toEqual(["b", "d", "c"]);
    expect(names(rank(hosts, [ramWeigher(-1)], 2))).toEqual(["a", "e"]);
  });

  it("normalises across all candidates, not just the k kept", () => {
    // Over all three, b wins (RAM 0.75 + CPU 0.75); over a and b alone they would tie and a would win by name.
    const hosts = [host("a", 16000, 1), host("b", 12000, 4), host("c", 0, 5)];
    const weighers = [ramWeigher(1), cpuWeigher(1)];
    expect(names(rank(hosts, weighers, 1))).toEqual(["b"]);
    expect(names(weigh(hosts.slice(0, 2), weighers))[0]).toBe("a");
  });

  it("breaks ties by host name", () => {
    const hosts = [host("d", 100), host("b", 100), host("c", 100), host("a", 100)];
    expect(names(rank(hosts, DEFAULT_WEIGHERS, 2))).toEqual(["a", "b"]);
    expect(names(rank(hosts, [], 4))).toEqual(["a", "b", "c", "d"]);
  });

  it("k of 0 or below gives nothing, k above n gives everything; the input is not reordered", () => {
    const hosts = [host("b", 1), host("a", 2)];
    expect(rank(hosts, DEFAULT_WEIGHERS, 0)).toEqual([]);
    expect(rank(hosts, DEFAULT_WEIGHERS, -3)).toEqual([]);
    expect(rank([], DEFAULT_WEIGHERS, 5)).toEqual([]);
    expect(names(rank(hosts, [ramWeigher()], 10))).toEqual(["a", "b"]);
    expect(names(hosts)).toEqual(["b", "a"]);
  });

  it("agrees with the full order of weigh() for every k, on random hosts with many ties", () => {
    const next = lcg(42);
    for (let round = 0; round < 30; round++) {
      const n = 1 + Math.floor(next() * 60);
      const hosts = Array.from({ length: n }, (_, i) => host(`h${String(Math.floor(next() * 1000)).padStart(3, "0")}-${i}`, Math.floor(next() * 4) * 1000, 1 + Math.floor(next() * 3)));
      const weighers = [ramWeigher(next() * 4 - 2), cpuWeigher(next() * 4 - 2)];
      const full = names(weigh(hosts, weighers));
      for (const k of [1, 2, 3, Math.ceil(n / 2), n]) expect(names(rank(hosts, weighers, k)), `round ${round} k ${k}`).toEqual(full.slice(0, k));
    }
  });
});

describe("tie order", () => {
  const keyed = (name: string, key: number, freeRam = 8192): HostState => ({ ...host(name, freeRam), tieKey: key });
  const identical = (salt: number) => Array.from({ length: 1000 }, (_, i) => `compute-${String(i).padStart(4, "0")}`).map((n) => keyed(n, tieKey(n, salt)));

  it("is a function of the name and the salt, in 32 bits", () => {
    expect(tieKey("compute-0001", 7)).toBe(tieKey("compute-0001", 7));
    expect(tieKey("compute-0001", 7)).not.toBe(tieKey("compute-0002", 7));
    expect(tieKey("compute-0001", 7)).not.toBe(tieKey("compute-0001", 8));
    for (const n of ["", "a", "compute-9999"]) {
      const k = tieKey(n, 0xffffffff);
      expect(Number.isInteger(k) && k >= 0 && k < 2 ** 32).toBe(true);
    }
    expect(processTieKey("compute-0001")).toBe(processTieKey("compute-0001"));
  });

  it("orders hosts that weigh the same by tie key, then by name; never a lighter host before a heavier one", () => {
    const hosts = [keyed("a", 30), keyed("b", 10), keyed("c", 20), keyed("d", 10), keyed("roomy", 99, 16000)];
    expect(names(rank(hosts, DEFAULT_WEIGHERS, 5))).toEqual(["roomy", "b", "d", "c", "a"]);
  });

  it("two processes placing on 1,000 identical hosts choose mostly different ones", () => {
    const best = (salt: number) => new Set(names(rank(identical(salt), DEFAULT_WEIGHERS, 32)));
    const [one, two] = [best(0x1234), best(0xbeef)];
    const shared = [...one].filter((n) => two.has(n)).length;
    // Two random 32-host draws from 1,000 share about one host; with the name as the only
    // tie order they shared all 32.
    expect(shared).toBeLessThan(6);
    expect(best(0x1234)).toEqual(one);
  });
});
