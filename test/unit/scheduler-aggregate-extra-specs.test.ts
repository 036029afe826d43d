import { describe, expect, it } from "vitest";
import { aggregateInstanceExtraSpecsFilter, aggregateRequirements } from "../../scheduler/filters/aggregate-instance-extra-specs.js";
import { compileRequirement, pythonFloat } from "../../scheduler/filters/extra-specs-ops.js";
import type { RequestSpec } from "../../scheduler/filters/types.js";
import type { HostState } from "../../scheduler/host-state.js";

const host = (aggregateMetadata: Record<string, string[]>): HostState => ({
  providerId: "rp",
  host: "h",
  hypervisorHostname: "h",
  generation: 1,
  availabilityZone: null,
  resources: {},
  instanceCount: 0,
  enabled: true,
  forcedDown: false,
  lastSeenMs: 0,
  hypervisorType: "QEMU",
  cpuArch: "x86_64",
  aggregateMetadata,
  failedBuilds: 0,
  tieKey: 0,
});
const spec = (flavorExtraSpecs?: Record<string, string>): RequestSpec => ({
  instanceId: "i",
  resources: {},
  availabilityZone: null,
  ignoreHosts: [],
  ...(flavorExtraSpecs ? { flavorExtraSpecs } : {}),
});
const passes = (meta: Record<string, string[]>, specs?: Record<string, string>) => aggregateInstanceExtraSpecsFilter.passes(host(meta), spec(specs));
const match = (req: string, value: string) => compileRequirement(req)(value);

describe("extra spec operators (Nova's extra_specs_ops)", () => {
  it("no operator: the value equals the whole requirement", () => {
    expect(match("ssd", "ssd")).toBe(true);
    expect(match("ssd", "SSD")).toBe(false);
    expect(match("fast ssd", "fast ssd")).toBe(true);
    expect(match("fast ssd", "fast")).toBe(false);
    expect(match("", "")).toBe(true);
  });

  it("= is a numeric at-least; ==, !=, >=, <= compare numbers", () => {
    expect([match("= 4", "4"), match("= 4", "8"), match("= 4", "3.5")]).toEqual([true, true, false]);
    expect([match("== 4", "4.0"), match("== 4", "5")]).toEqual([true, false]);
    expect([match("!= 4", "5"), match("!= 4", "4.0")]).toEqual([true, false]);
    expect([match(">= 2.5", "2.5"), match(">= 2.5", "2")]).toEqual([true, false]);
    expect([match("<= 1e3", "999"), match("<= 1e3", "1001")]).toEqual([true, false]);
  });

  it("a value that is not a number never satisfies a numeric operator (Nova would raise)", () => {
    expect(match("= 4", "many")).toBe(false);
    expect(match("!= 4", "many")).toBe(false);
    expect(match(">= x", "4")).toBe(false);
    expect(match("== 0", "")).toBe(false); // Number("") is 0, Python's float("") is an error
    expect(match("== 16", "0x10")).toBe(false);
  });

  it("s== s!= s< s<= s> s>= compare strings", () => {
    expect([match("s== abc", "abc"), match("s== abc", "abd")]).toEqual([true, false]);
    expect([match("s!= abc", "abd"), match("s!= abc", "abc")]).toEqual([true, false]);
    expect([match("s< b", "a"), match("s< b", "b")]).toEqual([true, false]);
    expect([match("s<= b", "b"), match("s<= b", "c")]).toEqual([true, false]);
    expect([match("s> b", "c"), match("s> b", "b")]).toEqual([true, false]);
    expect([match("s>= b", "b"), match("s>= b", "a")]).toEqual([true, false]);
    expect(match("s< 10", "9")).toBe(false); // strings, not numbers
  });

  it("<in> is a substring test, <all-in> needs every word", () => {
    expect(match("<in> avx", "sse avx2")).toBe(true);
    expect(match("<in> avx512", "sse avx2")).toBe(false);
    expect(match("<all-in> sse avx", "sse avx2")).toBe(true);
    expect(match("<all-in> sse neon", "sse avx2")).toBe(false);
  });

  it("<or> accepts any of the alternatives, exactly", () => {
    const req = "<or> ssd <or> nvme <or> tape";
    expect(["ssd", "nvme", "tape", "hdd", "<or>"].map((v) => match(req, v))).toEqual([true, true, true, false, false]);
    expect(match("<or> ssd", "ssd")).toBe(true);
  });

  it("an operator without its argument matches nothing", () => {
    for (const req of ["=", "s==", "<in>", "<all-in>", "<or>", "  <or>  "]) expect(match(req, "x"), req).toBe(false);
  });

  it("extra whitespace between words does not matter for operators", () => {
    expect(match("  >=   4 ", "5")).toBe(true);
  });

  it("pythonFloat takes what Python's float() takes (no hex, no empty string)", () => {
    expect([" 1.5 ", "-2", ".5", "5.", "1e3", "inf", "-Infinity"].map(pythonFloat)).toEqual([1.5, -2, 0.5, 5, 1000, Infinity, -Infinity]);
    expect(["", "0x10", "abc", "1.2.3", "nan"].map(pythonFloat).every(Number.isNaN)).toBe(true);
  });
});

describe("aggregateRequirements", () => {
  it("keeps aggregate_instance_extra_specs: keys (scope dropped) and unscoped keys; ignores other scopes", () => {
    const reqs = aggregateRequirements({
      "aggregate_instance_extra_specs:ssd": "true",
      "aggregate_instance_extra_specs:a:b": "x",
      gpu: "1",
      "hw:cpu_policy": "dedicated",
      "quota:cpu_shares": "1024",
      "capabilities:cpu_info": "x",
    });
    expect(reqs.map((r) => r.key)).toEqual(["ssd", "a:b", "gpu"]);
  });

  it("nothing to check for no extra specs", () => {
    expect(aggregateRequirements(undefined)).toEqual([]);
    expect(aggregateRequirements({})).toEqual([]);
  });
});

describe("AggregateInstanceExtraSpecsFilter", () => {
  it("passes every host when the flavor has no extra specs, or only other scopes", () => {
    expect(passes({})).toBe(true);
    expect(passes({}, {})).toBe(true);
    expect(passes({}, { "hw:cpu_policy": "dedicated", "resources:VGPU": "1" })).toBe(true);
  });

  it("a scoped key needs an aggregate value that matches", () => {
    const specs = { "aggregate_instance_extra_specs:ssd": "true" };
    expect(passes({ ssd: ["true"] }, specs)).toBe(true);
    expect(passes({ ssd: ["false"] }, specs)).toBe(false);
    expect(passes({}, specs)).toBe(false);
    expect(passes({ ssd: [] }, specs)).toBe(false);
  });

  it("an unscoped key is checked too", () => {
    expect(passes({ gpu: ["nvidia"] }, { gpu: "nvidia" })).toBe(true);
    expect(passes({ other: ["nvidia"] }, { gpu: "nvidia" })).toBe(false);
  });

  it("one matching value among those of several aggregates is enough", () => {
    expect(passes({ tier: ["gold", "silver"] }, { tier: "silver" })).toBe(true);
    expect(passes({ tier: ["gold", "silver"] }, { tier: "bronze" })).toBe(false);
  });

  it("aggregate values are split on commas and trimmed, as Nova does", () => {
    expect(passes({ disk: ["ssd, nvme"] }, { disk: "nvme" })).toBe(true);
    expect(passes({ disk: ["ssd,nvme"] }, { disk: "ssd" })).toBe(true);
    expect(passes({ disk: ["ssd, nvme"] }, { disk: "ssd, nvme" })).toBe(false);
    expect(passes({ disk: [" ssd "] }, { disk: "ssd" })).toBe(true);
  });

  it("every checked key must hold", () => {
    const specs = { "aggregate_instance_extra_specs:ssd": "true", cores: ">= 32" };
    expect(passes({ ssd: ["true"], cores: ["64"] }, specs)).toBe(true);
    expect(passes({ ssd: ["true"], cores: ["16"] }, specs)).toBe(false);
    expect(passes({ cores: ["64"] }, specs)).toBe(false);
  });

  it("operators apply to aggregate values", () => {
    expect(passes({ ram_class: ["large"] }, { ram_class: "<or> medium <or> large" })).toBe(true);
    expect(passes({ ghz: ["2.4"] }, { ghz: "= 3" })).toBe(false);
  });

  it("a key named like an Object.prototype member is looked up as plain data", () => {
    expect(passes({}, { constructor: "x" })).toBe(false);
    expect(passes({}, { toString: "<in> function" })).toBe(false);
    expect(passes({ constructor: ["x"] }, { constructor: "x" })).toBe(true);
  });

  it("a new extra specs object is compiled afresh (the per-request cache follows the object)", () => {
    const h = host({ ssd: ["true"] });
    expect(aggregateInstanceExtraSpecsFilter.passes(h, spec({ ssd: "false" }))).toBe(false);
    expect(aggregateInstanceExtraSpecsFilter.passes(h, spec({ ssd: "true" }))).toBe(true);
    expect(aggregateInstanceExtraSpecsFilter.passes(h, spec())).toBe(true);
  });
});
