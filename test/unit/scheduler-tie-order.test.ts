import { describe, expect, it } from "vitest";
import type { HostState } from "../../scheduler/host-state.js";
import { processTieKey, tieKey } from "../../scheduler/tie-order.js";
import { DEFAULT_WEIGHERS, rank } from "../../scheduler/weighers/index.js";

const host = (name: string, key: number, freeRam = 8192): HostState => ({
  providerId: `rp-${name}`,
  host: name,
  hypervisorHostname: name,
  generation: 1,
  availabilityZone: null,
  resources: {
    MEMORY_MB: { total: 16384, reserved: 0, min_unit: 1, max_unit: 16384, step_size: 1, allocation_ratio: 1, used: 16384 - freeRam },
    VCPU: { total: 8, reserved: 0, min_unit: 1, max_unit: 8, step_size: 1, allocation_ratio: 1, used: 4 },
  },
  instanceCount: 0,
  enabled: true,
  forcedDown: false,
  lastSeenMs: 0,
  hypervisorType: "QEMU",
  cpuArch: "x86_64",
  aggregateMetadata: {},
  failedBuilds: 0,
  tieKey: key,
});
const names = (hs: HostState[]) => hs.map((h) => h.host);
const identical = (salt: number) => Array.from({ length: 1000 }, (_, i) => `compute-${String(i).padStart(4, "0")}`).map((n) => host(n, tieKey(n, salt)));

describe("tie order", () => {
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
    const hosts = [host("a", 30), host("b", 10), host("c", 20), host("d", 10), host("roomy", 99, 16000)];
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
