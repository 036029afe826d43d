/**
 * The typed messages that travel through the queues. A spawn or delete job is
 * self-contained: the compute agent has no database credentials, so everything it
 * needs is in the job, and everything it learns goes back as a Report.
 */
import type { PowerState } from "./power-state.js";

export interface FlavorSnapshot {
  id: string;
  name: string;
  vcpus: number;
  ram: number; // MiB
  disk: number; // GiB
  ephemeral: number; // GiB
  swap: number; // MiB
  extra_specs: Record<string, string>;
}

export interface ImageSnapshot {
  id: string;
  name: string;
  disk_format: string; // qcow2 | raw | iso
  /** A path on the host's file system that the agent can read. */
  location: string;
  size: number | null;
  checksum: string | null;
  /** Glance's os_hash_value (sha256); the agent verifies its download against it. */
  os_hash_value?: string | null;
  properties: Record<string, string>;
}

export interface PortSpec {
  id: string;
  network_id: string;
  network_name: string;
  mac_address: string;
  mtu: number;
  fixed_ips: {
    subnet_id: string;
    ip_address: string;
    version: 4 | 6;
    cidr: string;
    gateway_ip: string | null;
    dns_nameservers?: string[];
  }[];
  /** Neutron provider attributes: flat or vlan, the physical network the agent maps to a bridge, the VLAN id. */
  network_type?: string;
  physical_network?: string | null;
  segmentation_id?: number | null;
}

export interface InstanceRef {
  instance_id: string;
  /** libvirt domain name, Nova's instance-%08x. */
  instance_name: string;
}

export interface SpawnSpec extends InstanceRef {
  project_id: string;
  user_id: string;
  name: string;
  flavor: FlavorSnapshot;
  image: ImageSnapshot;
  ports: PortSpec[];
  metadata: Record<string, string>;
  config_drive: boolean;
  user_data: string | null;
  /** For the config drive's meta_data.json (Nova's metadata service fields). */
  hostname?: string;
  availability_zone?: string | null;
  launch_index?: number;
  key_name?: string | null;
  public_keys?: { name: string; type: string; data: string }[];
}

/**
 * schedule queue: a wake-up for boots accepted together. The scheduler takes this boot
 * first, then everything else waiting; `boots` is how many the accepting statement wrote
 * (one job for all of them; the transactional path still writes one job per boot).
 */
export interface ScheduleJob {
  instance_id: string;
  request_id: string;
  boots?: number;
}

/** The power actions an agent carries out on an existing domain. */
export type PowerAction = "stop" | "start" | "reboot_soft" | "reboot_hard" | "pause" | "unpause" | "suspend" | "resume";

/** compute.<host> queue. */
export type ComputeJob =
  | { kind: "spawn"; request_id: string; attempt: number; spec: SpawnSpec }
  | { kind: "delete"; request_id: string; instance: InstanceRef }
  | { kind: "power"; request_id: string; action: PowerAction; instance: InstanceRef }
  /** Recreate the root disk from spec.image; `stopped` keeps the domain off afterwards. */
  | { kind: "rebuild"; request_id: string; spec: SpawnSpec; stopped: boolean }
  | { kind: "resize"; request_id: string; spec: SpawnSpec; stopped: boolean }
  | { kind: "revert_resize"; request_id: string; spec: SpawnSpec; stopped: boolean }
  | { kind: "confirm_resize"; request_id: string; instance: InstanceRef }
  /** Upload a flattened copy of the root disk as the bytes of image `image_id`. */
  | { kind: "snapshot"; request_id: string; instance: InstanceRef; image_id: string }
  /** Answered through the job's return value, not a report (a read, like Nova's RPC call). */
  | { kind: "console"; request_id: string; instance: InstanceRef }
  /** Sent once per registration: what the control plane believes this host runs (Nova's _init_instance input). */
  | { kind: "reconcile"; request_id: string; expected: ExpectedInstance[] }
  /** Domains the conductor found without a live instance on this host; the agent applies its orphan action. */
  | { kind: "orphans"; request_id: string; domains: (InstanceRef & { reason: string })[] };

/** One instance the control plane places on a host, as the reconcile job carries it. */
export interface ExpectedInstance extends InstanceRef {
  vm_state: string;
  task_state: string | null;
  power_state: number;
  /** The build attempt the host holds (spawn jobs are spawn-<id>-<attempt>). */
  attempt: number;
}

/** One domain as the agent's power-state sync sees it. */
export interface DomainReport extends InstanceRef {
  power_state: PowerState;
}

/** The actions whose outcome comes back as an action report. */
export type ReportedAction = PowerAction | "rebuild" | "resize" | "revert_resize" | "snapshot";

/** reports queue: what agents tell the conductor. */
export type Report =
  | {
      kind: "register";
      host: string;
      hypervisor_type: string;
      hypervisor_version: number;
      hypervisor_hostname: string;
      host_ip: string;
      libvirt_uri: string;
      availability_zone: string | null;
      /** The host's CPU architecture in Nova's spelling ("x86_64", "aarch64"); absent or null: unknown. */
      cpu_arch?: string | null;
      inventory: Record<ResourceClass, InventorySpec>;
    }
  | { kind: "spawned"; host: string; request_id: string; instance_id: string; attempt: number; power_state: PowerState }
  | { kind: "spawn_failed"; host: string; request_id: string; instance_id: string; attempt: number; reason: string }
  | { kind: "deleted"; host: string; request_id: string; instance_id: string }
  | { kind: "delete_failed"; host: string; request_id: string; instance_id: string; reason: string }
  | { kind: "action_done"; host: string; request_id: string; instance_id: string; action: ReportedAction; power_state: PowerState }
  | { kind: "action_failed"; host: string; request_id: string; instance_id: string; action: ReportedAction; reason: string }
  /** Every domain on the host with its power state, listed at `listed_at` (epoch ms); periodic. */
  | { kind: "power_sync"; host: string; listed_at: number; domains: DomainReport[] };

export type ResourceClass = "VCPU" | "MEMORY_MB" | "DISK_GB";
export const RESOURCE_CLASSES: readonly ResourceClass[] = ["VCPU", "MEMORY_MB", "DISK_GB"];

export interface InventorySpec {
  total: number;
  reserved: number;
  min_unit: number;
  max_unit: number;
  step_size: number;
  allocation_ratio: number;
}
