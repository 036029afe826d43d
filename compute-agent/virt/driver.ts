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

  // Lifecycle actions. Each returns the power state afterwards and is idempotent
  // (stopping a stopped domain succeeds). A domain that does not exist is an error.

  /** Clean shutdown (ACPI), then a hard power-off once the timeout passes (Nova's clean_shutdown). */
  powerOff(instance: InstanceRef, timeoutSec: number): Promise<PowerState>;
  powerOn(instance: InstanceRef): Promise<PowerState>;
  /** SOFT: clean shutdown and start, falling back to hard after the timeout. HARD: destroy and start. */
  reboot(instance: InstanceRef, hard: boolean, timeoutSec: number): Promise<PowerState>;
  pause(instance: InstanceRef): Promise<PowerState>;
  unpause(instance: InstanceRef): Promise<PowerState>;
  /** Saves the guest's memory to disk and stops it (libvirt managed save / save). */
  suspend(instance: InstanceRef): Promise<PowerState>;
  resume(instance: InstanceRef): Promise<PowerState>;
  /** The guest's serial console log so far ("" when there is none). */
  consoleOutput(instance: InstanceRef): Promise<string>;
  /** Recreates the root disk from spec.image and starts the domain (or leaves it off when `stopped`). */
  rebuild(spec: SpawnSpec, stopped: boolean): Promise<PowerState>;
  /**
   * Applies spec.flavor (vcpus, memory, larger disk) to the existing domain, keeping a
   * copy of the old disk and definition so revertResize can restore them.
   */
  resize(spec: SpawnSpec, stopped: boolean): Promise<PowerState>;
  /** Drops what resize kept for a revert. */
  confirmResize(instance: InstanceRef): Promise<void>;
  /** Restores the disk and definition from before the resize (spec carries the old flavor). */
  revertResize(spec: SpawnSpec, stopped: boolean): Promise<PowerState>;
  /** Writes a standalone (flattened) qcow2 copy of the root disk to `destination`. */
  snapshot(instance: InstanceRef, destination: string): Promise<void>;
}
