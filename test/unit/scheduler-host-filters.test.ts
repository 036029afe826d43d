import { describe, expect, it } from "vitest";
import { computeFilter } from "../../scheduler/filters/compute.js";
import { differentHostFilter } from "../../scheduler/filters/different-host.js";
import { sameHostFilter } from "../../scheduler/filters/same-host.js";
import type { RequestSpec } from "../../scheduler/filters/types.js";
import type { HostState } from "../../scheduler/host-state.js";

const host = (name: string, over: Partial<HostState> = {}): HostState => ({
  providerId: `rp-${name}`,
  host: name,
  hypervisorHostname: name,
  generation: 1,
  availabilityZone: null,
  resources: {},
  instanceCount: 0,
  enabled: true,
  forcedDown: false,
  lastSeenMs: 50_000,
  hypervisorType: "QEMU",
  cpuArch: "x86_64",
  aggregateMetadata: {},
  failedBuilds: 0,
  tieKey: 0,
  ...over,
});
const spec = (over: Partial<RequestSpec> = {}): RequestSpec => ({ instanceId: "i", resources: {}, availabilityZone: null, ignoreHosts: [], ...over });

describe("ComputeFilter", () => {
  it("passes an enabled host that is not forced down", () => {
    expect(computeFilter.passes(host("a"), spec())).toBe(true);
  });

  it("refuses a disabled host and a forced-down one", () => {
    expect(computeFilter.passes(host("a", { enabled: false }), spec())).toBe(false);
    expect(computeFilter.passes(host("a", { forcedDown: true }), spec())).toBe(false);
  });

  it("with upSinceMs, refuses a host last heard from before it; the cut-off itself is still up", () => {
    expect(computeFilter.passes(host("a", { lastSeenMs: 49_999 }), spec({ upSinceMs: 50_000 }))).toBe(false);
    expect(computeFilter.passes(host("a", { lastSeenMs: 50_000 }), spec({ upSinceMs: 50_000 }))).toBe(true);
    expect(computeFilter.passes(host("a", { lastSeenMs: 60_000 }), spec({ upSinceMs: 50_000 }))).toBe(true);
  });

  it("without upSinceMs, does not look at the heartbeat at all", () => {
    expect(computeFilter.passes(host("a", { lastSeenMs: 0 }), spec())).toBe(true);
  });

  it("a recent heartbeat does not save a disabled host", () => {
    expect(computeFilter.passes(host("a", { enabled: false, lastSeenMs: 99_999 }), spec({ upSinceMs: 1 }))).toBe(false);
  });
});

describe("SameHostFilter", () => {
  it("passes every host without the hint", () => {
    expect(sameHostFilter.passes(host("a"), spec())).toBe(true);
    expect(sameHostFilter.passes(host("a"), spec({ sameHost: null }))).toBe(true);
  });

  it("keeps only the hosts of the named instances", () => {
    const s = spec({ sameHost: ["b", "c"] });
    expect(sameHostFilter.passes(host("a"), s)).toBe(false);
    expect(sameHostFilter.passes(host("b"), s)).toBe(true);
    expect(sameHostFilter.passes(host("c"), s)).toBe(true);
  });

  it("a hint whose instances are on no host leaves no host (Nova: no overlap anywhere)", () => {
    expect(sameHostFilter.passes(host("a"), spec({ sameHost: [] }))).toBe(false);
  });

  it("matches the host name, not the hypervisor hostname", () => {
    expect(sameHostFilter.passes(host("a", { hypervisorHostname: "b" }), spec({ sameHost: ["b"] }))).toBe(false);
  });
});

describe("DifferentHostFilter", () => {
  it("passes every host without the hint or with an empty one", () => {
    expect(differentHostFilter.passes(host("a"), spec())).toBe(true);
    expect(differentHostFilter.passes(host("a"), spec({ differentHost: null }))).toBe(true);
    expect(differentHostFilter.passes(host("a"), spec({ differentHost: [] }))).toBe(true);
  });

  it("refuses the hosts of the named instances", () => {
    const s = spec({ differentHost: ["b", "c"] });
    expect(differentHostFilter.passes(host("a"), s)).toBe(true);
    expect(differentHostFilter.passes(host("b"), s)).toBe(false);
    expect(differentHostFilter.passes(host("c"), s)).toBe(false);
  });

  it("both hints together can leave nothing", () => {
    const s = spec({ sameHost: ["b"], differentHost: ["b"] });
    expect(sameHostFilter.passes(host("b"), s) && differentHostFilter.passes(host("b"), s)).toBe(false);
  });
});
