import { describe, expect, it } from "vitest";
import { parseSimArgs, simHostNames } from "../../compute-agent/sim/args.js";

describe("npm run sim arguments", () => {
  it("takes the host count and sizes, with defaults for the rest", () => {
    expect(parseSimArgs(["--", "--hosts", "100", "--prefix", "rack1", "--ram-mb", "1024"])).toEqual({
      hosts: 100,
      prefix: "rack1",
      vcpus: 64,
      ramMb: 1024,
      diskGb: 4000,
      dedicatedWorkers: 2000,
      onDemandWorkers: 1000,
    });
  });

  it("refuses a missing host count, unknown options, bad numbers and prefixes", () => {
    expect(() => parseSimArgs([])).toThrow(/--hosts is required/);
    expect(() => parseSimArgs(["--hosts", "2", "--cpus", "4"])).toThrow(/--cpus: unknown option/);
    expect(() => parseSimArgs(["--hosts", "2.5"])).toThrow(/whole number/);
    expect(() => parseSimArgs(["--hosts", "2", "--prefix", "a:b"])).toThrow(/--prefix/);
    expect(() => parseSimArgs(["--hosts"])).toThrow(/missing value/);
  });

  it("names hosts <prefix>-<n>, zero-padded so they sort in order", () => {
    expect(simHostNames("sim", 3)).toEqual(["sim-0", "sim-1", "sim-2"]);
    const names = simHostNames("sim", 1000);
    expect(names[7]).toBe("sim-007");
    expect([...names].sort()).toEqual(names);
  });
});
