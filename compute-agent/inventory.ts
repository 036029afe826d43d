/** The inventory a host offers placement, from what the hypervisor reports and the agent's configuration. Pure. */
import type { Config } from "../common/config.js";
import type { InventorySpec, ResourceClass } from "../common/messages.js";
import type { HostResources } from "./virt/driver.js";

export function inventoryFor(resources: HostResources, cfg: Config["agentInventory"]): Record<ResourceClass, InventorySpec> {
  const vcpus = cfg.vcpus ?? resources.vcpus;
  const memory = cfg.memoryMb ?? resources.memory_mb;
  const disk = cfg.diskGb ?? resources.disk_gb;
  // A reservation larger than the host (a tiny simulated host) would make it unusable.
  const reservedMemory = cfg.memoryMb !== null ? 0 : Math.min(cfg.reservedHostMemoryMb, Math.floor(memory / 2));
  const reservedDisk = cfg.diskGb !== null ? 0 : Math.min(cfg.reservedHostDiskGb, Math.floor(disk / 2));
  const spec = (total: number, reserved: number, ratio: number): InventorySpec => ({
    total,
    reserved,
    min_unit: 1,
    max_unit: total,
    step_size: 1,
    allocation_ratio: ratio,
  });
  return {
    VCPU: spec(vcpus, 0, cfg.cpuAllocationRatio),
    MEMORY_MB: spec(memory, reservedMemory, cfg.ramAllocationRatio),
    DISK_GB: spec(disk, reservedDisk, cfg.diskAllocationRatio),
  };
}
