/**
 * The contract every virt driver meets. The agent calls only this; a driver knows
 * nothing about queues, reports or the database.
 *
 * Every operation is idempotent: spawning an instance whose domain already runs
 * succeeds without a second domain, destroying one that is gone succeeds.
 */
import type { InstanceRef, SpawnSpec } from "../../common/messages.js";
import type { PowerState } from "../../common/power-state.js";

export interface HostResources {
  /** Physical CPUs the hypervisor reports. */
  vcpus: number;
  memory_mb: number;
  /** Free plus used space of the file system holding instance disks. */
  disk_gb: number;
  hypervisor_type: string; // "QEMU", "test", "fake"
  hypervisor_version: number; // libvirt style: major*1_000_000 + minor*1_000 + micro
  hypervisor_hostname: string;
  cpu_arch: string;
}

export interface DomainStatus {
  instance_id: string; // the domain's uuid
  instance_name: string;
  power_state: PowerState;
}

export interface VirtDriver {
  /** "libvirt" or "fake"; the URI for libvirt. */
  readonly description: string;
  init(): Promise<void>;
  close(): Promise<void>;
  hostResources(): Promise<HostResources>;
  /** Prepare disks, define and start the domain, wait until it runs. */
  spawn(spec: SpawnSpec): Promise<PowerState>;
  /** Stop the domain, undefine it and remove its disks. */
  destroy(instance: InstanceRef): Promise<void>;
  /** NOSTATE when there is no such domain. */
  powerState(instance: InstanceRef): Promise<PowerState>;
  /** Domains this driver manages (instance-named ones only). */
  listInstances(): Promise<DomainStatus[]>;
}
