/**
 * The libvirt virt driver: any libvirt URI, qemu:///system for real guests and
 * test:///default for libvirt's in-process simulated hypervisor.
 */
import { constants as fsConstants } from "node:fs";
import { mkdir, open, rm, statfs, writeFile } from "node:fs/promises";
import path from "node:path";
import type { InstanceRef, SpawnSpec } from "../../../common/messages.js";
import { PowerState } from "../../../common/power-state.js";
import type { DomainStatus, HostResources, VirtDriver } from "../driver.js";
import { createOverlay, removeInstanceDir } from "./disk.js";
import { buildDomainXml } from "./domain-xml.js";
import type { DiskBus, DiskCache, DomainType } from "./domain-xml.js";

/** The part of @unraid/libvirt's Hypervisor this driver uses. */
interface LibvirtDomain {
  readonly __libvirtDomain?: never;
}
interface Hypervisor {
  connectOpen(): Promise<void>;
  connectClose(): Promise<void>;
  connectListAllDomains(): Promise<LibvirtDomain[]>;
  connectGetHostname(): Promise<string>;
  nodeGetInfo(): Promise<{ model: string; memory: number; cpus: number }>;
  domainLookupByUUIDString(uuid: string): Promise<LibvirtDomain>;
  domainDefineXML(xml: string): Promise<LibvirtDomain>;
  domainCreate(dom: LibvirtDomain): Promise<void>;
  domainDestroy(dom: LibvirtDomain): Promise<void>;
  domainUndefine(dom: LibvirtDomain): Promise<void>;
  domainGetInfo(dom: LibvirtDomain): Promise<{ state: number }>;
  domainGetName(dom: LibvirtDomain): Promise<string>;
  domainGetUUIDString(dom: LibvirtDomain): Promise<string>;
}

/** libvirt's virDomainState. */
const VirState = {
  NOSTATE: 0,
  RUNNING: 1,
  BLOCKED: 2,
  PAUSED: 3,
  SHUTDOWN: 4,
  SHUTOFF: 5,
  CRASHED: 6,
  PMSUSPENDED: 7,
} as const;

/** Nova's LIBVIRT_POWER_STATE table (nova/virt/libvirt/guest.py). */
export function powerStateFromLibvirt(state: number): PowerState {
  switch (state) {
    case VirState.RUNNING:
    case VirState.BLOCKED:
      return PowerState.RUNNING;
    case VirState.PAUSED:
      return PowerState.PAUSED;
    case VirState.SHUTDOWN:
    case VirState.SHUTOFF:
      return PowerState.SHUTDOWN;
    case VirState.CRASHED:
      return PowerState.CRASHED;
    case VirState.PMSUSPENDED:
      return PowerState.SUSPENDED;
    default:
      return PowerState.NOSTATE;
  }
}

export interface LibvirtDriverOptions {
  uri: string;
  /** Holds one folder per instance (disk, console.log), as Nova's instances_path. */
  instancesPath: string;
  spawnTimeoutMs?: number;
  /** Nova's [libvirt] virt_type for qemu:// URIs; qemu (TCG) unless kvm is asked for. */
  virtType?: "qemu" | "kvm";
}

const POLL_INTERVAL_MS = 500;
const DEFAULT_SPAWN_TIMEOUT_MS = 120_000;
const GiB = 1024 ** 3;
// The binding has no virConnectGetVersion, so these are fixed stand-ins: QEMU 7.2 as on
// Debian 12 (`virsh version` there says 7.2.22) and the test driver's 0.0.2.
const HYPERVISOR_VERSION = { QEMU: 7_002_000, test: 2 } as const;
const DISK_BUSES: readonly DiskBus[] = ["virtio", "ide", "scsi", "sata"];
// Nova's accepted hw_vif_model values for qemu/kvm guests.
const VIF_MODELS = ["virtio", "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet"];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// The binding reports every error with code -1, so the message is all there is.
const isNotFound = (e: unknown): boolean => e instanceof Error && /domain not found|no domain with matching/i.test(e.message);
const isNotRunning = (e: unknown): boolean => e instanceof Error && /domain is not running/i.test(e.message);
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function loadHypervisor(uri: string): Promise<Hypervisor> {
  // A variable specifier keeps TypeScript from requiring the optional package at build time.
  const specifier = "@unraid/libvirt";
  try {
    const mod = (await import(specifier)) as { Hypervisor: new (o: { uri: string }) => Hypervisor };
    return new mod.Hypervisor({ uri });
  } catch (e) {
    throw new Error(
      `the libvirt driver needs the optional dependency @unraid/libvirt, which is missing or not built ` +
        `(it compiles against libvirt-dev: apt-get install libvirt-dev, then npm rebuild @unraid/libvirt): ${message(e)}`,
      { cause: e },
    );
  }
}

/** Nova probes O_DIRECT on instances_path and falls back to writethrough (tmpfs has none). */
async function diskCacheMode(dir: string): Promise<DiskCache> {
  const probe = path.join(dir, `.directio.test.${process.pid}`);
  try {
    const fh = await open(probe, fsConstants.O_CREAT | fsConstants.O_WRONLY | fsConstants.O_DIRECT);
    await fh.close();
    return "none";
  } catch {
    return "writethrough";
  } finally {
    await rm(probe, { force: true });
  }
}

/** nodeGetInfo's model is the host architecture as libvirt names it (test:///default says i686). */
function hostArch(model: string): string {
  if (model === "amd64") return "x86_64";
  if (/^i[3-6]86$/.test(model)) return "i686";
  return model;
}

function guestArch(model: string): "x86_64" | "i686" {
  const arch = hostArch(model);
  if (arch === "x86_64" || arch === "i686") return arch;
  throw new Error(`host architecture ${arch} is not supported (x86_64 or i686)`);
}

export class LibvirtDriver implements VirtDriver {
  readonly description: string;
  private readonly kind: "qemu" | "test";
  private readonly domainType: DomainType;
  private readonly instancesPath: string;
  private readonly spawnTimeoutMs: number;
  private hv: Hypervisor | null = null;
  private cacheMode: DiskCache = "none";

  constructor(private readonly options: LibvirtDriverOptions) {
    this.description = options.uri;
    if (/^test(\+[a-z]+)?:/.test(options.uri)) this.kind = "test";
    else if (/^qemu(\+[a-z]+)?:/.test(options.uri)) this.kind = "qemu";
    else throw new Error(`unsupported libvirt URI ${options.uri}: use a qemu:// or test:// URI`);
    this.domainType = this.kind === "test" ? "test" : (options.virtType ?? "qemu");
    this.instancesPath = path.resolve(options.instancesPath);
    this.spawnTimeoutMs = options.spawnTimeoutMs ?? DEFAULT_SPAWN_TIMEOUT_MS;
  }

  async init(): Promise<void> {
    if (this.hv) return;
    const hv = await loadHypervisor(this.options.uri);
    await hv.connectOpen();
    this.hv = hv;
    await mkdir(this.instancesPath, { recursive: true });
    this.cacheMode = await diskCacheMode(this.instancesPath);
  }

  async close(): Promise<void> {
    const hv = this.hv;
    this.hv = null;
    if (hv) await hv.connectClose();
  }

  private conn(): Hypervisor {
    if (!this.hv) throw new Error(`libvirt driver for ${this.options.uri} is not initialised (call init())`);
    return this.hv;
  }

  private instanceDir(instanceId: string): string {
    // The id becomes a path; accept nothing that could climb out of instancesPath.
    if (!UUID_RE.test(instanceId)) throw new Error(`instance id ${JSON.stringify(instanceId)} is not a UUID`);
    return path.join(this.instancesPath, instanceId);
  }

  private async lookup(instanceId: string): Promise<LibvirtDomain | null> {
    try {
      return await this.conn().domainLookupByUUIDString(instanceId);
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async hostResources(): Promise<HostResources> {
    const hv = this.conn();
    const [node, hostname] = await Promise.all([hv.nodeGetInfo(), hv.connectGetHostname()]);
    await mkdir(this.instancesPath, { recursive: true });
    const fsInfo = await statfs(this.instancesPath);
    const hypervisorType = this.kind === "test" ? "test" : "QEMU";
    return {
      vcpus: node.cpus,
      memory_mb: Math.floor(node.memory / 1024),
      disk_gb: Math.floor((fsInfo.blocks * fsInfo.bsize) / GiB),
      hypervisor_type: hypervisorType,
      hypervisor_version: HYPERVISOR_VERSION[hypervisorType],
      hypervisor_hostname: hostname,
      cpu_arch: hostArch(node.model),
    };
  }

  async spawn(spec: SpawnSpec): Promise<PowerState> {
    const hv = this.conn();
    const dir = this.instanceDir(spec.instance_id);
    const fail = async (step: string, e: unknown): Promise<never> => {
      const cleanup = await this.destroy(spec).then(
        () => "",
        (ce: unknown) => ` (cleanup failed too: ${message(ce)})`,
      );
      throw new Error(`spawning ${spec.instance_name} failed while ${step}: ${message(e)}${cleanup}`, { cause: e });
    };

    const existing = await this.lookup(spec.instance_id);
    if (existing) {
      const state = (await hv.domainGetInfo(existing)).state;
      if (state !== VirState.SHUTOFF && state !== VirState.SHUTDOWN && state !== VirState.CRASHED) {
        return powerStateFromLibvirt(state);
      }
      try {
        await hv.domainCreate(existing);
      } catch (e) {
        return fail("starting the existing domain", e);
      }
      return this.waitUntilRunning(existing).catch((e: unknown) => fail("waiting for the domain to run", e));
    }

    let xml: string;
    try {
      xml = await this.prepare(spec, dir);
    } catch (e) {
      return fail("preparing the instance", e);
    }
    let dom: LibvirtDomain;
    try {
      dom = await hv.domainDefineXML(xml);
    } catch (e) {
      return fail("defining the domain", e);
    }
    try {
      await hv.domainCreate(dom);
    } catch (e) {
      return fail("starting the domain", e);
    }
    return this.waitUntilRunning(dom).catch((e: unknown) => fail("waiting for the domain to run", e));
  }

  /** Creates the instance folder, its disk and console log; returns the domain XML. */
  private async prepare(spec: SpawnSpec, dir: string): Promise<string> {
    const { image, flavor } = spec;
    if (image.disk_format !== "qcow2" && image.disk_format !== "raw") {
      throw new Error(`image disk_format ${image.disk_format} is not supported (qcow2 or raw)`);
    }
    const props = image.properties;
    const bus = (props.hw_disk_bus ?? "virtio") as DiskBus;
    if (!DISK_BUSES.includes(bus)) throw new Error(`hw_disk_bus ${bus} is not supported (${DISK_BUSES.join(", ")})`);
    const vifModel = props.hw_vif_model ?? "virtio";
    if (!VIF_MODELS.includes(vifModel)) {
      throw new Error(`hw_vif_model ${vifModel} is not supported (${VIF_MODELS.join(", ")})`);
    }
    const arch = guestArch((await this.conn().nodeGetInfo()).model);

    await mkdir(dir, { recursive: true });
    const diskPath = path.join(dir, "disk");
    const consoleLog = path.join(dir, "console.log");
    await createOverlay({
      base: image.location,
      baseFormat: image.disk_format,
      path: diskPath,
      ...(flavor.disk > 0 ? { sizeGiB: flavor.disk } : {}),
    });
    await writeFile(consoleLog, "");

    return buildDomainXml({
      type: this.domainType,
      name: spec.instance_name,
      uuid: spec.instance_id,
      memoryMiB: flavor.ram,
      vcpus: flavor.vcpus,
      arch,
      ...(props.hw_machine_type !== undefined ? { machine: props.hw_machine_type } : {}),
      disks: [{ path: diskPath, format: "qcow2", bus, device: "disk", cache: this.cacheMode }],
      // User-mode networking until real bridges land; libvirt's test driver accepts it too.
      interfaces: spec.ports.map((p) => ({ mac: p.mac_address, model: vifModel, attach: { type: "user" } as const })),
      consoleLogPath: consoleLog,
      metadata: {
        displayName: spec.name,
        creationTime: new Date(),
        flavor: {
          name: flavor.name,
          memoryMiB: flavor.ram,
          diskGiB: flavor.disk,
          swapMiB: flavor.swap,
          ephemeralGiB: flavor.ephemeral,
          vcpus: flavor.vcpus,
        },
        owner: { userId: spec.user_id, projectId: spec.project_id },
        imageId: image.id,
        ports: spec.ports.map((p) => ({
          id: p.id,
          ips: p.fixed_ips.map((ip) => ({ address: ip.ip_address, version: ip.version })),
        })),
      },
      // cloud-init recognises an OpenStack guest by this DMI product name.
      smbios: { manufacturer: "Cirrus", product: "OpenStack Nova" },
    });
  }

  /** Polls as Nova's _wait_for_boot does; a domain that stops on its own will not start again. */
  private async waitUntilRunning(dom: LibvirtDomain): Promise<PowerState> {
    const deadline = Date.now() + this.spawnTimeoutMs;
    for (;;) {
      const state = (await this.conn().domainGetInfo(dom)).state;
      if (state === VirState.RUNNING || state === VirState.BLOCKED) return PowerState.RUNNING;
      if (state === VirState.SHUTOFF || state === VirState.CRASHED) {
        throw new Error(`the domain stopped right after starting (libvirt state ${state})`);
      }
      if (Date.now() >= deadline) {
        throw new Error(`the domain did not reach RUNNING within ${this.spawnTimeoutMs} ms (libvirt state ${state})`);
      }
      await sleep(POLL_INTERVAL_MS);
    }
  }

  async destroy(instance: InstanceRef): Promise<void> {
    const hv = this.conn();
    const dir = this.instanceDir(instance.instance_id);
    const dom = await this.lookup(instance.instance_id);
    if (dom) {
      try {
        await hv.domainDestroy(dom);
      } catch (e) {
        if (!isNotRunning(e) && !isNotFound(e)) throw new Error(`destroying ${instance.instance_name}: ${message(e)}`, { cause: e });
      }
      try {
        await hv.domainUndefine(dom);
      } catch (e) {
        if (!isNotFound(e)) throw new Error(`undefining ${instance.instance_name}: ${message(e)}`, { cause: e });
      }
    }
    await removeInstanceDir(dir);
  }

  async powerState(instance: InstanceRef): Promise<PowerState> {
    const dom = await this.lookup(instance.instance_id);
    if (!dom) return PowerState.NOSTATE;
    try {
      return powerStateFromLibvirt((await this.conn().domainGetInfo(dom)).state);
    } catch (e) {
      if (isNotFound(e)) return PowerState.NOSTATE;
      throw e;
    }
  }

  async listInstances(): Promise<DomainStatus[]> {
    const hv = this.conn();
    const result: DomainStatus[] = [];
    for (const dom of await hv.connectListAllDomains()) {
      try {
        const name = await hv.domainGetName(dom);
        if (!name.startsWith("instance-")) continue;
        const [uuid, info] = await Promise.all([hv.domainGetUUIDString(dom), hv.domainGetInfo(dom)]);
        result.push({ instance_id: uuid, instance_name: name, power_state: powerStateFromLibvirt(info.state) });
      } catch (e) {
        // Undefined between the listing and this look: it is gone, which is what we would report.
        if (!isNotFound(e)) throw e;
      }
    }
    return result;
  }
}
