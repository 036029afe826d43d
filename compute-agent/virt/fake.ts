/**
 * An in-memory virt driver for unit tests and for simulating many hosts in one
 * process. It keeps the libvirt driver's contract: idempotent spawn and destroy,
 * NOSTATE for unknown instances, one domain per name.
 */
import type { InstanceRef, SpawnSpec } from "../../common/messages.js";
import { PowerState } from "../../common/power-state.js";
import type { DomainStatus, HostResources, VirtDriver } from "./driver.js";

export interface FakeDriverOptions {
  resources?: Partial<HostResources>;
  /** Return a message to make this spawn fail with it (e.g. to drive a reschedule). */
  failSpawn?: (spec: SpawnSpec) => string | undefined;
}

const DEFAULT_RESOURCES: HostResources = {
  vcpus: 16,
  memory_mb: 65_536,
  disk_gb: 1_000,
  hypervisor_type: "fake",
  hypervisor_version: 1_000,
  hypervisor_hostname: "fake-host",
  cpu_arch: "x86_64",
};

export class FakeDriver implements VirtDriver {
  readonly description = "fake";
  private readonly resources: HostResources;
  private readonly failSpawn: FakeDriverOptions["failSpawn"];
  private readonly domains = new Map<string, { name: string; state: PowerState }>();

  constructor(options: FakeDriverOptions = {}) {
    this.resources = { ...DEFAULT_RESOURCES, ...options.resources };
    this.failSpawn = options.failSpawn;
  }

  async init(): Promise<void> {}

  async close(): Promise<void> {}

  async hostResources(): Promise<HostResources> {
    return { ...this.resources };
  }

  async spawn(spec: SpawnSpec): Promise<PowerState> {
    const existing = this.domains.get(spec.instance_id);
    if (existing && existing.state !== PowerState.SHUTDOWN && existing.state !== PowerState.CRASHED) {
      return existing.state;
    }
    for (const [id, d] of this.domains) {
      if (d.name === spec.instance_name && id !== spec.instance_id) {
        throw new Error(`spawning ${spec.instance_name} failed: a domain with that name already exists with uuid ${id}`);
      }
    }
    const failure = this.failSpawn?.(spec);
    if (failure !== undefined) {
      this.domains.delete(spec.instance_id);
      throw new Error(failure);
    }
    this.domains.set(spec.instance_id, { name: spec.instance_name, state: PowerState.RUNNING });
    return PowerState.RUNNING;
  }

  async destroy(instance: InstanceRef): Promise<void> {
    this.domains.delete(instance.instance_id);
  }

  async powerState(instance: InstanceRef): Promise<PowerState> {
    return this.domains.get(instance.instance_id)?.state ?? PowerState.NOSTATE;
  }

  async listInstances(): Promise<DomainStatus[]> {
    return [...this.domains].map(([id, d]) => ({ instance_id: id, instance_name: d.name, power_state: d.state }));
  }

  /** Simulates what happens inside a guest, e.g. it powering itself off or crashing. */
  setPowerState(instanceId: string, state: PowerState): void {
    const d = this.domains.get(instanceId);
    if (!d) throw new Error(`fake driver has no instance ${instanceId}`);
    d.state = state;
  }
}
