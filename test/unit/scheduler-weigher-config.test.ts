import { describe, expect, it } from "vitest";
import { DEFAULT_WEIGHER_MULTIPLIERS, loadConfig } from "../../common/config.js";

describe("weigher multipliers from the environment", () => {
  it("default to Nova's, with the soft group policies at 10", () => {
    expect(loadConfig({}).weigherMultipliers).toEqual({
      ram: 1,
      cpu: 1,
      disk: 1,
      numInstances: 0,
      buildFailure: 1_000_000,
      softAffinity: 10,
      softAntiAffinity: 10,
    });
    expect(loadConfig({}).weigherMultipliers).toEqual(DEFAULT_WEIGHER_MULTIPLIERS);
    expect(Object.isFrozen(DEFAULT_WEIGHER_MULTIPLIERS)).toBe(true);
  });

  it("reads every CIRRUS_*_WEIGHT_MULTIPLIER, negative values included", () => {
    const m = loadConfig({
      CIRRUS_RAM_WEIGHT_MULTIPLIER: "-1",
      CIRRUS_CPU_WEIGHT_MULTIPLIER: "2.5",
      CIRRUS_DISK_WEIGHT_MULTIPLIER: "0",
      CIRRUS_NUM_INSTANCES_WEIGHT_MULTIPLIER: "-0.5",
      CIRRUS_BUILD_FAILURE_WEIGHT_MULTIPLIER: "100",
      CIRRUS_SOFT_AFFINITY_WEIGHT_MULTIPLIER: "1",
      CIRRUS_SOFT_ANTI_AFFINITY_WEIGHT_MULTIPLIER: "3",
    }).weigherMultipliers;
    expect(m).toEqual({ ram: -1, cpu: 2.5, disk: 0, numInstances: -0.5, buildFailure: 100, softAffinity: 1, softAntiAffinity: 3 });
  });

  it("an empty value means the default", () => {
    expect(loadConfig({ CIRRUS_RAM_WEIGHT_MULTIPLIER: "" }).weigherMultipliers.ram).toBe(1);
  });

  it.each([
    ["CIRRUS_RAM_WEIGHT_MULTIPLIER", "lots"],
    ["CIRRUS_CPU_WEIGHT_MULTIPLIER", "Infinity"],
    ["CIRRUS_DISK_WEIGHT_MULTIPLIER", "NaN"],
    ["CIRRUS_NUM_INSTANCES_WEIGHT_MULTIPLIER", "1,5"],
    ["CIRRUS_BUILD_FAILURE_WEIGHT_MULTIPLIER", "1e400"],
    ["CIRRUS_SOFT_AFFINITY_WEIGHT_MULTIPLIER", "-1"],
    ["CIRRUS_SOFT_ANTI_AFFINITY_WEIGHT_MULTIPLIER", "-0.1"],
  ])("refuses %s=%s at load, naming the setting", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });
});
