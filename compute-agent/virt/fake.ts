/**
 * An in-memory virt driver for unit tests and for simulating many hosts in one
 * process. It keeps the libvirt driver's contract: idempotent spawn and destroy,
 * NOSTATE for unknown instances, one domain per name.
 */
import { randomUUID } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { FlavorSnapshot, ImageSnapshot, InstanceRef, SpawnSpec } from "../../common/messages.js";
import { PowerState } from "../../common/power-state.js";
import type { DomainStatus, HostResources, VirtDriver } from "./driver.js";

export interface FakeDriverOptions {
  resources?: Partial<HostResources>;
  /** Return a message to make this spawn fail with it (e.g. to drive a reschedule). */
  failSpawn?: (spec: SpawnSpec) => string | undefined;
  /** Milliseconds each spawn takes (to hold an operation in flight, e.g. for a shutdown test). */
  spawnDelayMs?: number;
}

interface FakeDomain {
  name: string;
  state: PowerState;
  flavor: FlavorSnapshot;
  image: ImageSnapshot;
  /** The simulated serial console: one line per boot. */
  console: string;
  /** The flavor before a resize, until it is confirmed or reverted. */
  resizeBackup: FlavorSnapshot | null;
}

/** What a test may look at: the fake's view of one instance. */
export interface FakeInstanceDetails {
  name: string;
  state: PowerState;
  flavor: FlavorSnapshot;
  image: ImageSnapshot;
  hasResizeBackup: boolean;
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
  private readonly spawnDelayMs: number;
  private readonly domains = new Map<string, FakeDomain>();
  /** Every snapshot written, in order. */
  readonly snapshots: { instance_id: string; destination: string }[] = [];

  constructor(options: FakeDriverOptions = {}) {
    this.resources = { ...DEFAULT_RESOURCES, ...options.resources };
    this.failSpawn = options.failSpawn;
    this.spawnDelayMs = options.spawnDelayMs ?? 0;
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
    if (this.spawnDelayMs > 0) await new Promise((r) => setTimeout(r, this.spawnDelayMs));
    const failure = this.failSpawn?.(spec);
    if (failure !== undefined) {
      this.domains.delete(spec.instance_id);
      throw new Error(failure);
    }
    if (existing) {
      this.boot(existing);
      return existing.state;
    }
    const domain: FakeDomain = {
      name: spec.instance_name,
      state: PowerState.SHUTDOWN,
      flavor: spec.flavor,
      image: spec.image,
      console: "",
      resizeBackup: null,
    };
    this.boot(domain);
    this.domains.set(spec.instance_id, domain);
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

  /** The fake's view of an instance, for tests; undefined when it has none. */
  details(instanceId: string): FakeInstanceDetails | undefined {
    const d = this.domains.get(instanceId);
    if (!d) return undefined;
    return { name: d.name, state: d.state, flavor: d.flavor, image: d.image, hasResizeBackup: d.resizeBackup !== null };
  }

  private boot(d: FakeDomain): void {
    d.state = PowerState.RUNNING;
    d.console += `${d.name}: booted\n`;
  }

  /** As the libvirt driver: a lifecycle action on an instance that does not exist is an error. */
  private domain(action: string, instance: InstanceRef): FakeDomain {
    const d = this.domains.get(instance.instance_id);
    if (!d) throw new Error(`${action} ${instance.instance_name} failed: there is no domain with uuid ${instance.instance_id}`);
    return d;
  }

  async powerOff(instance: InstanceRef, _timeoutSec: number): Promise<PowerState> {
    const d = this.domain("powering off", instance);
    d.state = PowerState.SHUTDOWN; // a suspended guest's saved memory goes too
    return d.state;
  }

  async powerOn(instance: InstanceRef): Promise<PowerState> {
    const d = this.domain("powering on", instance);
    if (d.state === PowerState.SUSPENDED) d.state = PowerState.RUNNING;
    else if (d.state === PowerState.SHUTDOWN || d.state === PowerState.CRASHED) this.boot(d);
    return d.state;
  }

  async reboot(instance: InstanceRef, hard: boolean, _timeoutSec: number): Promise<PowerState> {
    const d = this.domain(hard ? "hard rebooting" : "rebooting", instance);
    this.boot(d);
    return d.state;
  }

  async pause(instance: InstanceRef): Promise<PowerState> {
    const d = this.domain("pausing", instance);
    if (d.state === PowerState.RUNNING) d.state = PowerState.PAUSED;
    else if (d.state !== PowerState.PAUSED) throw new Error(`pausing ${d.name} failed: the domain is not running`);
    return d.state;
  }

  async unpause(instance: InstanceRef): Promise<PowerState> {
    const d = this.domain("unpausing", instance);
    if (d.state === PowerState.PAUSED) d.state = PowerState.RUNNING;
    else if (d.state !== PowerState.RUNNING) throw new Error(`unpausing ${d.name} failed: the domain is not paused`);
    return d.state;
  }

  async suspend(instance: InstanceRef): Promise<PowerState> {
    const d = this.domain("suspending", instance);
    if (d.state === PowerState.RUNNING || d.state === PowerState.PAUSED) {
      d.state = PowerState.SUSPENDED;
    } else if (d.state !== PowerState.SUSPENDED) {
      throw new Error(`suspending ${d.name} failed: the domain is not running`);
    }
    return d.state;
  }

  async resume(instance: InstanceRef): Promise<PowerState> {
    const d = this.domain("resuming", instance);
    if (d.state === PowerState.SUSPENDED) d.state = PowerState.RUNNING;
    else if (d.state !== PowerState.RUNNING && d.state !== PowerState.PAUSED) {
      throw new Error(`resuming ${d.name} failed: the domain is off and has no saved state`);
    }
    return d.state;
  }

  async consoleOutput(instance: InstanceRef): Promise<string> {
    return this.domain("reading the console of", instance).console;
  }

  async rebuild(spec: SpawnSpec, stopped: boolean): Promise<PowerState> {
    // As the libvirt driver, a missing domain (a failed spawn) is defined afresh.
    let d = this.domains.get(spec.instance_id);
    if (!d) {
      d = { name: spec.instance_name, state: PowerState.SHUTDOWN, flavor: spec.flavor, image: spec.image, console: "", resizeBackup: null };
      this.domains.set(spec.instance_id, d);
    }
    d.image = spec.image;
    d.flavor = spec.flavor;
    d.state = PowerState.SHUTDOWN;
    if (!stopped) this.boot(d);
    return d.state;
  }

  async resize(spec: SpawnSpec, stopped: boolean): Promise<PowerState> {
    const d = this.domain("resizing", spec);
    if (d.state === PowerState.SUSPENDED) throw new Error(`resizing ${d.name} failed: the instance is suspended (resume it first)`);
    d.resizeBackup ??= d.flavor; // an interrupted earlier attempt's backup is the real "before"
    d.flavor = spec.flavor;
    d.state = PowerState.SHUTDOWN;
    if (!stopped) this.boot(d);
    return d.state;
  }

  async confirmResize(instance: InstanceRef): Promise<void> {
    const d = this.domains.get(instance.instance_id);
    if (d) d.resizeBackup = null;
  }

  async revertResize(spec: SpawnSpec, stopped: boolean): Promise<PowerState> {
    const d = this.domain("reverting the resize of", spec);
    if (d.resizeBackup) {
      d.flavor = d.resizeBackup;
      d.resizeBackup = null;
      d.state = PowerState.SHUTDOWN;
    }
    if (stopped) d.state = PowerState.SHUTDOWN;
    else if (d.state === PowerState.SHUTDOWN || d.state === PowerState.CRASHED || d.state === PowerState.SUSPENDED) this.boot(d);
    return d.state;
  }

  /** Writes a small placeholder file (not a real qcow2) where the snapshot goes, atomically. */
  async snapshot(instance: InstanceRef, destination: string): Promise<void> {
    const d = this.domain("snapshotting", instance);
    const target = path.resolve(destination);
    await mkdir(path.dirname(target), { recursive: true });
    const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${randomUUID()}.part`);
    try {
      await writeFile(tmp, `fake snapshot of ${d.name} (image ${d.image.id})\n`);
      await rename(tmp, target);
    } finally {
      await rm(tmp, { force: true });
    }
    this.snapshots.push({ instance_id: instance.instance_id, destination: target });
  }

  /** Simulates what happens inside a guest, e.g. it powering itself off or crashing. */
  setPowerState(instanceId: string, state: PowerState): void {
    const d = this.domains.get(instanceId);
    if (!d) throw new Error(`fake driver has no instance ${instanceId}`);
    d.state = state;
  }
}
