/**
 * requestSpecOf (scheduler/place.ts): every spec is one literal with every field present
 * in one order, whatever the caller resolved, so the filters' per-host reads of it keep
 * seeing one hidden class.
 */
import { describe, expect, it } from "vitest";
import { requestSpecOf, type PlaceableInstance } from "../../scheduler/place.js";

const inst = (over: Partial<PlaceableInstance> = {}): PlaceableInstance =>
  ({
    id: "i-1",
    availability_zone: null,
    flavor: { vcpus: 2, ram: 1024, disk: 10, ephemeral: 0, swap: 0, extra_specs: { "aggregate_instance_extra_specs:ssd": "true" } },
    image: { id: "img", properties: { hw_architecture: "x86_64" } },
    tried_hosts: ["h-failed"],
    ...over,
  }) as unknown as PlaceableInstance;

describe("requestSpecOf", () => {
  it("has the same fields in the same order with or without what the caller resolved", () => {
    const bare = requestSpecOf(inst());
    const resolved = requestSpecOf(inst(), ["a"], {
      group: { id: "g", policy: "anti-affinity", hosts: { h1: 1 } },
      sameHost: ["h2"],
      differentHost: ["h3"],
      upSinceMs: 1_800_000_000_000,
    });
    expect(Object.keys(resolved)).toEqual(Object.keys(bare));
    expect(Object.keys(bare)).toEqual([
      "instanceId", "resources", "availabilityZone", "ignoreHosts", "group", "imageProperties", "flavorExtraSpecs", "sameHost", "differentHost", "upSinceMs",
    ]);
  });

  it("fills in what the caller did not resolve, and passes on what it did", () => {
    const bare = requestSpecOf(inst({ image: { id: "img" } as never }));
    expect(bare).toMatchObject({ instanceId: "i-1", ignoreHosts: ["h-failed"], group: null, sameHost: null, differentHost: null, imageProperties: {} });
    expect(bare.upSinceMs).toBeUndefined();
    expect(bare.resources).toEqual({ VCPU: 2, MEMORY_MB: 1024, DISK_GB: 10 });
    const group = { id: "g", policy: "affinity" as const, hosts: {} };
    const resolved = requestSpecOf(inst(), [], { group, sameHost: ["h2"], differentHost: [], upSinceMs: 42 });
    expect(resolved).toMatchObject({ ignoreHosts: [], group, sameHost: ["h2"], differentHost: [], upSinceMs: 42 });
    expect(resolved.imageProperties).toEqual({ hw_architecture: "x86_64" });
    expect(resolved.flavorExtraSpecs).toEqual({ "aggregate_instance_extra_specs:ssd": "true" });
  });
});
