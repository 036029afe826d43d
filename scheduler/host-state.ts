/** What filters and weighers see of a host: plain data, no I/O. */
import type { InventorySpec, ResourceClass } from "../common/messages.js";

export interface ResourceUsage extends InventorySpec {
  used: number;
}

export interface HostState {
  providerId: string;
  host: string;
  hypervisorHostname: string;
  /** The provider generation the usage below was read at: the claim's compare-and-set. */
  generation: number;
  availabilityZone: string | null;
  resources: Partial<Record<ResourceClass, ResourceUsage>>;
  instanceCount: number;
  /** Service status (ComputeFilter): enabled, not forced down, heard from recently. */
  enabled: boolean;
  forcedDown: boolean;
  /** Epoch ms of the last heartbeat copied into Postgres. */
  lastSeenMs: number;
  /** As registered: "QEMU", "KVM", "fake", "test". */
  hypervisorType: string;
  /** The host's CPU architecture in Nova's spelling ("x86_64", "aarch64"), when known. */
  cpuArch: string | null;
  /** The metadata of every aggregate the host is in: key -> the values set for it. */
  aggregateMetadata: Record<string, string[]>;
  /** Builds that failed here since the last one that succeeded (BuildFailureWeigher). */
  failedBuilds: number;
  /** Where the host goes among hosts that weigh the same, lowest first (scheduler/tie-order.ts). */
  tieKey: number;
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

/** Takes a claimed request off a host's free capacity in the view (after its compare-and-set won). */
export function consume(host: HostState, resources: ResourceRequest): void {
  for (const [rc, amount] of Object.entries(resources) as [ResourceClass, number | undefined][]) {
    const r = host.resources[rc];
    if (r && amount) r.used += amount;
  }
  host.instanceCount += 1;
  host.generation += 1;
}
