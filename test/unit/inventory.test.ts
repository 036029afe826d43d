import { describe, expect, it } from "vitest";
import type { Config } from "../../common/config.js";
import { inventoryFor } from "../../compute-agent/inventory.js";
import type { HostResources } from "../../compute-agent/virt/driver.js";

const hv = (over: Partial<HostResources> = {}): HostResources => ({
  vcpus: 8,
  memory_mb: 16384,
  disk_gb: 200,
  hypervisor_type: "QEMU",
  hypervisor_version: 8_002_000,
  hypervisor_hostname: "compute-1",
  cpu_arch: "x86_64",
  ...over,
});

// Nova's defaults: initial_cpu_allocation_ratio 4.0, ram 1.0, disk 1.0, reserved_host_memory_mb 512.
const cfg = (over: Partial<Config["agentInventory"]> = {}): Config["agentInventory"] => ({
  vcpus: null,
  memoryMb: null,
  diskGb: null,
  cpuAllocationRatio: 4.0,
  ramAllocationRatio: 1.0,
  diskAllocationRatio: 1.0,
  reservedHostMemoryMb: 512,
  reservedHostDiskGb: 0,
  ...over,
});

const spec = (total: number, reserved: number, allocation_ratio: number) => ({
  total, reserved, min_unit: 1, max_unit: total, step_size: 1, allocation_ratio,
});

describe("inventoryFor", () => {
  it("offers what the hypervisor reports, with the configured reservations", () => {
    expect(inventoryFor(hv(), cfg({ reservedHostDiskGb: 10 }))).toEqual({
      VCPU: spec(8, 0, 4.0),
      MEMORY_MB: spec(16384, 512, 1.0),
      DISK_GB: spec(200, 10, 1.0),
    });
  });

  it("uses configured overrides, and reserves nothing for an overridden class", () => {
    const inv = inventoryFor(hv(), cfg({ vcpus: 2, memoryMb: 2048, diskGb: 20, reservedHostDiskGb: 5 }));
    expect(inv).toEqual({
      VCPU: spec(2, 0, 4.0),
      MEMORY_MB: spec(2048, 0, 1.0),
      DISK_GB: spec(20, 0, 1.0),
    });
  });

  it("overrides each class independently", () => {
    const inv = inventoryFor(hv(), cfg({ memoryMb: 4096, reservedHostDiskGb: 5 }));
    expect(inv.VCPU).toEqual(spec(8, 0, 4.0));
    expect(inv.MEMORY_MB).toEqual(spec(4096, 0, 1.0));
    expect(inv.DISK_GB).toEqual(spec(200, 5, 1.0)); // not overridden: still reserved
  });

  it("caps the memory reservation at half of a tiny host", () => {
    expect(inventoryFor(hv({ memory_mb: 768 }), cfg()).MEMORY_MB).toEqual(spec(768, 384, 1.0));
    expect(inventoryFor(hv({ memory_mb: 1025 }), cfg()).MEMORY_MB).toEqual(spec(1025, 512, 1.0));
    expect(inventoryFor(hv({ memory_mb: 1023 }), cfg()).MEMORY_MB).toEqual(spec(1023, 511, 1.0));
  });

  it("caps the disk reservation at half of a tiny host", () => {
    expect(inventoryFor(hv({ disk_gb: 9 }), cfg({ reservedHostDiskGb: 100 })).DISK_GB).toEqual(spec(9, 4, 1.0));
  });

  it("passes the allocation ratios through", () => {
    const inv = inventoryFor(hv(), cfg({ cpuAllocationRatio: 16, ramAllocationRatio: 1.5, diskAllocationRatio: 0.9 }));
    expect(inv.VCPU.allocation_ratio).toBe(16);
    expect(inv.MEMORY_MB.allocation_ratio).toBe(1.5);
    expect(inv.DISK_GB.allocation_ratio).toBe(0.9);
  });

  it("sets max_unit to the total of each class", () => {
    const inv = inventoryFor(hv({ vcpus: 3, memory_mb: 3000, disk_gb: 30 }), cfg());
    expect(inv.VCPU.max_unit).toBe(3);
    expect(inv.MEMORY_MB.max_unit).toBe(3000);
    expect(inv.DISK_GB.max_unit).toBe(30);
    expect(inventoryFor(hv(), cfg({ vcpus: 5 })).VCPU.max_unit).toBe(5);
  });

  it("offers exactly the three resource classes", () => {
    expect(Object.keys(inventoryFor(hv(), cfg())).sort()).toEqual(["DISK_GB", "MEMORY_MB", "VCPU"]);
  });
});
