/** What filters and weighers see of a host: plain data, no I/O. */
import type { InventorySpec, ResourceClass } from "../common/messages.js";

export interface ResourceUsage extends InventorySpec {
  used: number;
}

export interface HostState {
  providerId: string;
  host: string;
  hypervisorHostname: string;
  generation: number;
  availabilityZone: string | null;
  resources: Partial<Record<ResourceClass, ResourceUsage>>;
  instanceCount: number;
}

export type ResourceRequest = Partial<Record<ResourceClass, number>>;

/** Placement's capacity: (total - reserved) * allocation_ratio. */
export function capacity(r: ResourceUsage): number {
  return Math.floor((r.total - r.reserved) * r.allocation_ratio);
}

export function free(r: ResourceUsage): number {
  return capacity(r) - r.used;
}

/** What one instance of a flavor consumes, as Nova asks placement for it. */
export function resourcesForFlavor(f: { vcpus: number; ram: number; disk: number; ephemeral: number; swap: number }): ResourceRequest {
  const disk = f.disk + f.ephemeral + Math.ceil(f.swap / 1024);
  const out: ResourceRequest = { VCPU: f.vcpus, MEMORY_MB: f.ram };
  if (disk > 0) out.DISK_GB = disk;
  return out;
}
