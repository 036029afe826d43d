/**
 * The libvirt virt driver: any libvirt URI, qemu:///system for real guests and
 * test:///default for libvirt's in-process simulated hypervisor.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { mkdir, open, rm, statfs, writeFile } from "node:fs/promises";
import { access, copyFile, readFile, rename } from "node:fs/promises";
import path from "node:path";
import type { FlavorSnapshot, InstanceRef, SpawnSpec } from "../../../common/messages.js";
import { PowerState } from "../../../common/power-state.js";
import type { DomainStatus, HostResources, VirtDriver } from "../driver.js";
import { createOverlay, removeInstanceDir } from "./disk.js";
import { buildDomainXml } from "./domain-xml.js";
import { convertToQcow2, growImage } from "./disk.js";
import { applyFlavorToDomainXml } from "./flavor-xml.js";
import type { ImageCache } from "../../image-cache.js";
import type { BridgePlumber } from "../../plumbing/bridges.js";
import { configDriveFiles } from "../../config-drive/metadata.js";
import { CONFIG_DRIVE_FILE, writeConfigDrive } from "../../config-drive/iso.js";
import type { DomainDisk, DomainInterface } from "./domain-xml.js";
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
  // Lifecycle actions (all present in @unraid/libvirt 2.2.1's Hypervisor).
  domainShutdown(dom: LibvirtDomain): Promise<void>;
  domainSuspend(dom: LibvirtDomain): Promise<void>;
  domainResume(dom: LibvirtDomain): Promise<void>;
  /** virDomainSave: writes memory to a file and stops the domain (it stays defined). */
  domainSave(dom: LibvirtDomain, filename: string): Promise<void>;
  /** virDomainRestore: starts the domain saved in the file again. */
  domainRestore(filename: string): Promise<void>;
  /** flags: virDomainXMLFlags, e.g. 2 = VIR_DOMAIN_XML_INACTIVE (the persistent definition). */
  domainGetXMLDesc(dom: LibvirtDomain, flags?: number): Promise<string>;
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
  /** Nova's [libvirt] virt_type for qemu:// URIs; qemu (TCG) unless kvm is asked for (driver-factory resolves "auto"). */
  virtType?: "qemu" | "kvm";
  /** Where bases come from; without one, overlays sit on spec.image.location (a path on this host). */
  imageCache?: ImageCache;
  /** Puts ports on bridges (bridge_mappings); without one, every NIC uses QEMU user-mode networking. */
  plumber?: BridgePlumber;
  /** Nova's force_config_drive. */
  forceConfigDrive?: boolean;
  /** The host's availability zone, for meta_data.json when the instance names none. */
  availabilityZone?: string | null;
  /** What `virsh version` says (driver-factory reads it once); else fixed stand-ins. */
  hypervisor?: { type: string; version: number };
  /** Clean-shutdown time a resize gives the guest before forcing it off (Nova's shutdown_timeout, 60 s). */
  shutdownTimeoutSec?: number;
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

// Lifecycle actions: files in the instance folder and timings.
/** What suspend writes; a shut-off domain with this file is SUSPENDED. */
const SAVE_FILE = "suspend.save";
const RESIZE_DISK_BACKUP = "disk.resize-backup";
const RESIZE_XML_BACKUP = "domain.resize-backup.xml";
const CONSOLE_LOG = "console.log";
/** Nova's MAX_CONSOLE_BYTES: the console output is the log's last 100 KiB. */
const MAX_CONSOLE_BYTES = 100 * 1024;
/** Nova re-sends the ACPI request every retry_interval (10 s): a guest still booting misses the first. */
const SHUTDOWN_RETRY_MS = 10_000;
const DEFAULT_SHUTDOWN_TIMEOUT_SEC = 60;
const VIR_DOMAIN_XML_INACTIVE = 2;

interface Step {
  /** Runs one step of an action; a failure says which action and step it was. */
  <T>(what: string, fn: () => Promise<T>): Promise<T>;
  /** An error for the action that fails for a reason of its own (not a step's error). */
  fail(reason: string): Error;
}

function stepper(action: string, instance: InstanceRef): Step {
  const step = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      throw new Error(`${action} ${instance.instance_name} failed while ${what}: ${message(e)}`, { cause: e });
    }
  };
  return Object.assign(step, { fail: (reason: string) => new Error(`${action} ${instance.instance_name} failed: ${reason}`) });
}

const isRunningState = (s: number): boolean => s === VirState.RUNNING || s === VirState.BLOCKED || s === VirState.SHUTDOWN;
const isEnoent = (e: unknown): boolean => (e as NodeJS.ErrnoException | null)?.code === "ENOENT";

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch (e) {
    if (isEnoent(e)) return false;
    throw e;
  }
}

/** Writes under a temporary name and renames, so a half-written file never carries the real name. */
async function atomically(target: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${randomUUID()}.part`);
  try {
    await write(tmp);
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
}

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

/** On test:// only: the domain XML kept in the instance folder, so a restarted agent gets its simulated domains back. */
const SIMULATED_XML = "simulated-domain.xml";

export class LibvirtDriver implements VirtDriver {
  readonly description: string;
  private readonly kind: "qemu" | "test" | "xen";
  private readonly domainType: DomainType;
  private readonly instancesPath: string;
  private readonly spawnTimeoutMs: number;
  private hv: Hypervisor | null = null;
  private cacheMode: DiskCache = "none";

  constructor(private readonly options: LibvirtDriverOptions) {
    this.description = options.uri;
    if (/^test(\+[a-z]+)?:/.test(options.uri)) this.kind = "test";
    else if (/^qemu(\+[a-z]+)?:/.test(options.uri)) this.kind = "qemu";
    else if (/^(xen|libxl)(\+[a-z]+)?:/.test(options.uri)) this.kind = "xen";
    else throw new Error(`unsupported libvirt URI ${options.uri}: use a qemu://, xen:// or test:// URI`);
    this.domainType = this.kind === "test" ? "test" : this.kind === "xen" ? "xen" : (options.virtType ?? "qemu");
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
    if (this.kind === "test") await this.restoreSimulatedDomains();
  }

  /**
   * test:// keeps its domains in the agent's memory, so they vanish when the agent does,
   * which no real hypervisor does: a libvirtd keeps running guests when the agent dies.
   * To simulate that, spawn on test:// leaves the domain XML in the instance folder, and
   * this defines and starts again every domain whose folder still holds one (a destroy
   * removes the folder). Reconciliation and the power-state sync then see what they would
   * see on qemu:///system after an agent restart.
   */
  private async restoreSimulatedDomains(): Promise<void> {
    const { readdir } = await import("node:fs/promises");
    for (const entry of await readdir(this.instancesPath).catch(() => [] as string[])) {
      if (!UUID_RE.test(entry)) continue;
      const xml = await readFile(path.join(this.instancesPath, entry, SIMULATED_XML), "utf8").catch(() => null);
      if (xml === null || (await this.lookup(entry))) continue;
      try {
        const dom = await this.conn().domainDefineXML(xml);
        await this.conn().domainCreate(dom);
      } catch {
        // A folder whose XML no longer defines (half-written): left for reconciliation.
      }
    }
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
    const hypervisorType = this.kind === "test" ? "test" : this.kind === "xen" ? "Xen" : "QEMU";
    return {
      vcpus: node.cpus,
      memory_mb: Math.floor(node.memory / 1024),
      disk_gb: Math.floor((fsInfo.blocks * fsInfo.bsize) / GiB),
      hypervisor_type: this.options.hypervisor?.type ?? hypervisorType,
      hypervisor_version: this.options.hypervisor?.version ?? (hypervisorType === "Xen" ? 0 : HYPERVISOR_VERSION[hypervisorType]),
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
      // Suspended (off with a saved state) stays suspended, as a paused domain stays paused.
      if (state === VirState.SHUTOFF && (await exists(this.savePath(spec.instance_id)))) return PowerState.SUSPENDED;
      try {
        await hv.domainCreate(existing);
      } catch (e) {
        return fail("starting the existing domain", e);
      }
      return this.waitUntilRunning(existing).catch((e: unknown) => fail("waiting for the domain to run", e));
    }

    // A saved state left by an earlier domain of this instance would make the new one look suspended.
    await this.discardSavedState(spec.instance_id).catch((e: unknown) => fail("removing a stale saved state", e));
    let xml: string;
    try {
      xml = await this.prepare(spec, dir);
    } catch (e) {
      return fail("preparing the instance", e);
    }
    let dom: LibvirtDomain;
    try {
      dom = await hv.domainDefineXML(xml);
      if (this.kind === "test") await writeFile(path.join(dir, SIMULATED_XML), xml);
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

    // The base first: a download that fails leaves nothing of the instance behind.
    const base = this.options.imageCache ? await this.options.imageCache.fetch(image) : image.location;
    await mkdir(dir, { recursive: true });
    const diskPath = path.join(dir, "disk");
    const consoleLog = path.join(dir, "console.log");
    await createOverlay({
      base,
      baseFormat: image.disk_format,
      path: diskPath,
      ...(flavor.disk > 0 ? { sizeGiB: flavor.disk } : {}),
    });
    await writeFile(consoleLog, "");
    const disks: DomainDisk[] = [{ path: diskPath, format: "qcow2", bus: this.kind === "xen" && bus === "virtio" ? "xen" : bus, device: "disk", cache: this.cacheMode }];
    if (spec.config_drive || this.options.forceConfigDrive === true) {
      const iso = path.join(dir, CONFIG_DRIVE_FILE);
      await writeConfigDrive(
        configDriveFiles(spec, {
          defaultAvailabilityZone: this.options.availabilityZone ?? null,
          randomSeed: randomBytes(512).toString("base64"),
          vifType: (p) => (p.physical_network && this.options.plumber?.bridgeMappings[p.physical_network] ? "bridge" : "vif"),
        }),
        iso,
      );
      // Nova's config drive: a cdrom on the ide bus for machine types that have one (pc).
      disks.push({ path: iso, format: "raw", bus: this.kind === "xen" ? "xen" : "ide", device: "cdrom", readonly: true, cache: this.cacheMode });
    }
    const interfaces: DomainInterface[] = [];
    for (const p of spec.ports) {
      const plugged = this.options.plumber ? await this.options.plumber.plug(p) : { attach: { type: "user" as const } };
      interfaces.push({
        mac: p.mac_address,
        model: vifModel,
        attach: plugged.attach,
        ...(plugged.attach.type !== "user" ? { mtu: p.mtu } : {}),
        ...(plugged.targetDev !== undefined ? { targetDev: plugged.targetDev } : {}),
      });
    }

    return buildDomainXml({
      type: this.domainType,
      name: spec.instance_name,
      uuid: spec.instance_id,
      memoryMiB: flavor.ram,
      vcpus: flavor.vcpus,
      arch,
      ...(props.hw_machine_type !== undefined ? { machine: props.hw_machine_type } : {}),
      disks,
      // Ports on mapped physical networks sit on their bridge; the rest use user-mode networking.
      interfaces,
      consoleLogPath: consoleLog,
      extraSpecs: flavor.extra_specs,
      imageProperties: props,
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
      return await this.withSavedState(instance.instance_id, powerStateFromLibvirt((await this.conn().domainGetInfo(dom)).state));
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
        const powerState = UUID_RE.test(uuid) ? await this.withSavedState(uuid, powerStateFromLibvirt(info.state)) : powerStateFromLibvirt(info.state);
        result.push({ instance_id: uuid, instance_name: name, power_state: powerState });
      } catch (e) {
        // Undefined between the listing and this look: it is gone, which is what we would report.
        if (!isNotFound(e)) throw e;
      }
    }
    return result;
  }

  // ---- Lifecycle actions ----------------------------------------------------------------

  private savePath(instanceId: string): string {
    return path.join(this.instanceDir(instanceId), SAVE_FILE);
  }

  /** Nova shows a suspended server as SUSPENDED: here, a shut-off domain with a saved state. */
  private async withSavedState(instanceId: string, state: PowerState): Promise<PowerState> {
    if (state !== PowerState.SHUTDOWN) return state;
    return (await exists(this.savePath(instanceId))) ? PowerState.SUSPENDED : state;
  }

  private async discardSavedState(instanceId: string): Promise<void> {
    await rm(this.savePath(instanceId), { force: true });
  }

  /** The domain an action works on; one that does not exist is an error. */
  private async domainFor(instance: InstanceRef, step: Step): Promise<LibvirtDomain> {
    const dom = await step("looking up the domain", () => this.lookup(instance.instance_id));
    if (!dom) throw step.fail(`there is no domain ${instance.instance_name} with uuid ${instance.instance_id}`);
    return dom;
  }

  private async virState(dom: LibvirtDomain): Promise<number> {
    return (await this.conn().domainGetInfo(dom)).state;
  }

  private async currentPowerState(instance: InstanceRef, dom: LibvirtDomain): Promise<PowerState> {
    return this.withSavedState(instance.instance_id, powerStateFromLibvirt(await this.virState(dom)));
  }

  /**
   * Nova's _clean_shutdown: an ACPI request (re-sent every 10 s), the state polled every
   * 0.5 s. True once the domain is off; false when the timeout passed first.
   */
  private async cleanShutdown(dom: LibvirtDomain, timeoutSec: number, step: Step): Promise<boolean> {
    const hv = this.conn();
    const deadline = Date.now() + Math.max(0, timeoutSec) * 1000;
    let nextRequest = 0;
    for (;;) {
      const state = await step("reading the domain state", () => this.virState(dom));
      if (state === VirState.SHUTOFF) return true;
      const now = Date.now();
      if (now >= deadline) return false;
      if (now >= nextRequest) {
        await step("requesting a clean shutdown", async () => {
          try {
            await hv.domainShutdown(dom);
          } catch (e) {
            // It may have gone off between the look and the request.
            if ((await this.virState(dom)) !== VirState.SHUTOFF) throw e;
          }
        });
        nextRequest = now + SHUTDOWN_RETRY_MS;
      }
      await sleep(Math.min(POLL_INTERVAL_MS, Math.max(1, deadline - Date.now())));
    }
  }

  /** Hard power-off (virDomainDestroy); a domain that is already off is fine. */
  private async forceOff(dom: LibvirtDomain): Promise<void> {
    try {
      await this.conn().domainDestroy(dom);
    } catch (e) {
      if (!isNotRunning(e) && (await this.virState(dom)) !== VirState.SHUTOFF) throw e;
    }
  }

  /** Clean shutdown within timeoutSec, then forced. A paused guest cannot see ACPI, so it is forced at once. */
  private async stop(dom: LibvirtDomain, timeoutSec: number, step: Step): Promise<void> {
    const state = await step("reading the domain state", () => this.virState(dom));
    if (state === VirState.SHUTOFF) return;
    if (isRunningState(state) && (await this.cleanShutdown(dom, timeoutSec, step))) return;
    await step("forcing the domain off", () => this.forceOff(dom));
  }

  /** Boots the domain afresh; a saved state no longer matches the disk, so it goes. */
  private async boot(instance: InstanceRef, dom: LibvirtDomain, step: Step): Promise<PowerState> {
    await step("discarding the saved state", () => this.discardSavedState(instance.instance_id));
    await step("starting the domain", () => this.conn().domainCreate(dom));
    return step("waiting for the domain to run", () => this.waitUntilRunning(dom));
  }

  /** Restores what suspend saved and runs it (QEMU would bring back a guest saved while paused still paused). */
  private async restoreSaved(instance: InstanceRef, dom: LibvirtDomain, step: Step): Promise<PowerState> {
    const file = this.savePath(instance.instance_id);
    await step("restoring the saved state", () => this.conn().domainRestore(file));
    await step("removing the saved state", () => rm(file, { force: true }));
    const state = await step("reading the domain state", () => this.virState(dom));
    if (state === VirState.PAUSED) await step("resuming the restored vCPUs", () => this.conn().domainResume(dom));
    return step("waiting for the domain to run", () => this.waitUntilRunning(dom));
  }

  async powerOff(instance: InstanceRef, timeoutSec: number): Promise<PowerState> {
    const step = stepper("powering off", instance);
    const dom = await this.domainFor(instance, step);
    await this.stop(dom, timeoutSec, step);
    // A suspended guest's memory is lost with the power, as on a real machine.
    await step("discarding the saved state", () => this.discardSavedState(instance.instance_id));
    return step("reading the power state", () => this.currentPowerState(instance, dom));
  }

  async powerOn(instance: InstanceRef): Promise<PowerState> {
    const step = stepper("powering on", instance);
    const dom = await this.domainFor(instance, step);
    const state = await step("reading the domain state", () => this.virState(dom));
    if (state === VirState.CRASHED) await step("clearing the crashed domain", () => this.forceOff(dom));
    else if (state !== VirState.SHUTOFF) return powerStateFromLibvirt(state);
    if (await step("looking for a saved state", () => exists(this.savePath(instance.instance_id)))) {
      return this.restoreSaved(instance, dom, step);
    }
    return this.boot(instance, dom, step);
  }

  async reboot(instance: InstanceRef, hard: boolean, timeoutSec: number): Promise<PowerState> {
    const step = stepper(hard ? "hard rebooting" : "rebooting", instance);
    const dom = await this.domainFor(instance, step);
    // As Nova's _soft_reboot: only a running guest can shut down cleanly; anything else,
    // or a guest that ignores the request, gets a hard reboot.
    const state = await step("reading the domain state", () => this.virState(dom));
    if (!hard && isRunningState(state) && (await this.cleanShutdown(dom, timeoutSec, step))) {
      return this.boot(instance, dom, step);
    }
    await step("forcing the domain off", () => this.forceOff(dom));
    return this.boot(instance, dom, step);
  }

  async pause(instance: InstanceRef): Promise<PowerState> {
    const step = stepper("pausing", instance);
    const dom = await this.domainFor(instance, step);
    const state = await step("reading the domain state", () => this.virState(dom));
    if (state === VirState.PAUSED) return PowerState.PAUSED;
    if (!isRunningState(state)) throw step.fail(`the domain is not running (libvirt state ${state})`);
    await step("suspending the vCPUs", async () => {
      try {
        await this.conn().domainSuspend(dom);
      } catch (e) {
        if ((await this.virState(dom)) !== VirState.PAUSED) throw e;
      }
    });
    return step("reading the power state", () => this.currentPowerState(instance, dom));
  }

  async unpause(instance: InstanceRef): Promise<PowerState> {
    const step = stepper("unpausing", instance);
    const dom = await this.domainFor(instance, step);
    const state = await step("reading the domain state", () => this.virState(dom));
    if (isRunningState(state)) return PowerState.RUNNING;
    if (state !== VirState.PAUSED) throw step.fail(`the domain is not paused (libvirt state ${state})`);
    await step("resuming the vCPUs", async () => {
      try {
        await this.conn().domainResume(dom);
      } catch (e) {
        if (!isRunningState(await this.virState(dom))) throw e;
      }
    });
    return step("reading the power state", () => this.currentPowerState(instance, dom));
  }

  async suspend(instance: InstanceRef): Promise<PowerState> {
    const step = stepper("suspending", instance);
    const dom = await this.domainFor(instance, step);
    const file = this.savePath(instance.instance_id);
    const state = await step("reading the domain state", () => this.virState(dom));
    if (state === VirState.SHUTOFF) {
      if (await step("looking for a saved state", () => exists(file))) return PowerState.SUSPENDED;
      throw step.fail(`the domain is not running`);
    }
    if (!isRunningState(state) && state !== VirState.PAUSED) {
      throw step.fail(`the domain is not running (libvirt state ${state})`);
    }
    // The binding has no managed save; virDomainSave to a file in the instance folder is the
    // same thing with the file in our hands. The name appears only once the save is whole.
    await step("saving the guest's memory", () => atomically(file, (tmp) => this.conn().domainSave(dom, tmp)));
    return step("reading the power state", () => this.currentPowerState(instance, dom));
  }

  async resume(instance: InstanceRef): Promise<PowerState> {
    const step = stepper("resuming", instance);
    const dom = await this.domainFor(instance, step);
    const state = await step("reading the domain state", () => this.virState(dom));
    const saved = await step("looking for a saved state", () => exists(this.savePath(instance.instance_id)));
    if (state === VirState.SHUTOFF || state === VirState.CRASHED) {
      if (!saved) throw step.fail(`the domain is off and has no saved state`);
      if (state === VirState.CRASHED) await step("clearing the crashed domain", () => this.forceOff(dom));
      return this.restoreSaved(instance, dom, step);
    }
    // Already running (resumed before): a save file left over would be stale.
    if (saved) await step("discarding a stale saved state", () => this.discardSavedState(instance.instance_id));
    return powerStateFromLibvirt(state);
  }

  async consoleOutput(instance: InstanceRef): Promise<string> {
    const step = stepper("reading the console of", instance);
    await this.domainFor(instance, step);
    const log = path.join(this.instanceDir(instance.instance_id), CONSOLE_LOG);
    return step("reading the console log", async () => {
      let fh;
      try {
        fh = await open(log, "r");
      } catch (e) {
        if (isEnoent(e)) return "";
        throw e;
      }
      try {
        const { size } = await fh.stat();
        const length = Math.min(size, MAX_CONSOLE_BYTES);
        const buf = Buffer.alloc(length);
        const { bytesRead } = await fh.read(buf, 0, length, size - length);
        return buf.subarray(0, bytesRead).toString("utf8");
      } finally {
        await fh.close();
      }
    });
  }

  async rebuild(spec: SpawnSpec, stopped: boolean): Promise<PowerState> {
    const step = stepper("rebuilding", spec);
    const hv = this.conn();
    const dir = this.instanceDir(spec.instance_id);
    const disk = path.join(dir, "disk");
    const oldDisk = path.join(dir, "disk.rebuild-old");
    // As Nova's default rebuild (destroy, then spawn on the same identity). A missing domain,
    // e.g. after a failed spawn, is defined afresh from the spec.
    const dom = await step("looking up the domain", () => this.lookup(spec.instance_id));
    if (dom) await step("stopping the domain", () => this.forceOff(dom));
    await step("discarding the saved state", () => this.discardSavedState(spec.instance_id));
    // The old disk stays until the new one exists, so a failed image leaves the server as it was.
    await step("setting the old disk aside", async () => {
      try {
        await rename(disk, oldDisk);
      } catch (e) {
        if (!isEnoent(e)) throw e; // a retry: it is already aside (or never was)
      }
    });
    let xml: string;
    try {
      xml = await this.prepare(spec, dir);
    } catch (e) {
      const undo = (await exists(oldDisk)) ? await rename(oldDisk, disk).then(() => "", (ue: unknown) => ` (putting the old disk back failed too: ${message(ue)})`) : "";
      throw new Error(`rebuilding ${spec.instance_name} failed while preparing the new root disk: ${message(e)}${undo}`, { cause: e });
    }
    const defined = await step("redefining the domain", () => hv.domainDefineXML(xml));
    await step("removing the old disk", () => rm(oldDisk, { force: true }));
    if (stopped) return step("reading the power state", () => this.currentPowerState(spec, defined));
    return this.boot(spec, defined, step);
  }

  async resize(spec: SpawnSpec, stopped: boolean): Promise<PowerState> {
    const step = stepper("resizing", spec);
    const hv = this.conn();
    const dom = await this.domainFor(spec, step);
    const dir = this.instanceDir(spec.instance_id);
    const disk = path.join(dir, "disk");
    const diskBackup = path.join(dir, RESIZE_DISK_BACKUP);
    const xmlBackup = path.join(dir, RESIZE_XML_BACKUP);
    if (await step("reading the power state", () => this.currentPowerState(spec, dom)) === PowerState.SUSPENDED) {
      throw step.fail(`the instance is suspended (resume it first)`);
    }
    await this.stop(dom, this.options.shutdownTimeoutSec ?? DEFAULT_SHUTDOWN_TIMEOUT_SEC, step);
    // Backups made by an earlier, interrupted attempt are the real "before" and are kept.
    // The disk goes first: a definition backup therefore always has its disk.
    if (!(await step("looking for a disk backup", () => exists(diskBackup)))) {
      await step("backing up the disk", () => atomically(diskBackup, (tmp) => copyFile(disk, tmp, fsConstants.COPYFILE_FICLONE)));
    }
    if (!(await step("looking for a definition backup", () => exists(xmlBackup)))) {
      const before = await step("reading the domain definition", () => hv.domainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE));
      await step("backing up the domain definition", () => atomically(xmlBackup, (tmp) => writeFile(tmp, before)));
    }
    await step("growing the disk", () => growImage(disk, spec.flavor.disk));
    await this.applyFlavor(dom, spec.flavor, step);
    if (stopped) return step("reading the power state", () => this.currentPowerState(spec, dom));
    return this.boot(spec, dom, step);
  }

  /** Redefines the domain from its own definition with the flavor's vCPUs and memory. */
  private async applyFlavor(dom: LibvirtDomain, flavor: FlavorSnapshot, step: Step): Promise<void> {
    const hv = this.conn();
    const current = await step("reading the domain definition", () => hv.domainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE));
    const next = await step("applying the flavor to the definition", async () => applyFlavorToDomainXml(current, flavor));
    await step("redefining the domain", () => hv.domainDefineXML(next));
  }

  async confirmResize(instance: InstanceRef): Promise<void> {
    const step = stepper("confirming the resize of", instance);
    const dir = this.instanceDir(instance.instance_id);
    await step("removing the backups", async () => {
      await rm(path.join(dir, RESIZE_DISK_BACKUP), { force: true });
      await rm(path.join(dir, RESIZE_XML_BACKUP), { force: true });
    });
  }

  async revertResize(spec: SpawnSpec, stopped: boolean): Promise<PowerState> {
    const step = stepper("reverting the resize of", spec);
    const hv = this.conn();
    const dom = await this.domainFor(spec, step);
    const dir = this.instanceDir(spec.instance_id);
    const disk = path.join(dir, "disk");
    const diskBackup = path.join(dir, RESIZE_DISK_BACKUP);
    const xmlBackup = path.join(dir, RESIZE_XML_BACKUP);
    const hasDisk = await step("looking for a disk backup", () => exists(diskBackup));
    const hasXml = await step("looking for a definition backup", () => exists(xmlBackup));
    if (hasDisk || hasXml) {
      // The resized guest's state is thrown away, so there is no point in a clean shutdown.
      await step("stopping the domain", () => this.forceOff(dom));
      await step("discarding the saved state", () => this.discardSavedState(spec.instance_id));
      // Each step consumes its backup, so a retry after a failure picks up where this stopped.
      if (hasDisk) await step("restoring the disk", () => rename(diskBackup, disk));
      if (hasXml) {
        const before = await step("reading the definition backup", () => readFile(xmlBackup, "utf8"));
        await step("redefining the domain from the backup", () => hv.domainDefineXML(before));
        await step("removing the definition backup", () => rm(xmlBackup, { force: true }));
      } else {
        await this.applyFlavor(dom, spec.flavor, step);
      }
    }
    // Nothing left to restore means an earlier revert finished it; only the power state is due.
    const state = await step("reading the domain state", () => this.virState(dom));
    if (stopped) {
      if (state !== VirState.SHUTOFF) await step("stopping the domain", () => this.forceOff(dom));
      return step("reading the power state", () => this.currentPowerState(spec, dom));
    }
    if (isRunningState(state) || state === VirState.PAUSED) return powerStateFromLibvirt(state);
    if (state === VirState.CRASHED) await step("clearing the crashed domain", () => this.forceOff(dom));
    return this.boot(spec, dom, step);
  }

  async snapshot(instance: InstanceRef, destination: string): Promise<void> {
    const step = stepper("snapshotting", instance);
    const hv = this.conn();
    const dom = await this.domainFor(instance, step);
    const disk = path.join(this.instanceDir(instance.instance_id), "disk");
    const target = path.resolve(destination);
    await step("creating the destination folder", () => mkdir(path.dirname(target), { recursive: true }));
    const state = await step("reading the domain state", () => this.virState(dom));
    // A running QEMU holds a write lock on the disk: -U reads it anyway. Pausing first makes
    // QEMU drain and flush its I/O (qcow2 metadata included), so the copy is crash-consistent.
    const active = state !== VirState.SHUTOFF;
    const pauseIt = isRunningState(state);
    if (pauseIt) await step("pausing the guest for a consistent copy", () => hv.domainSuspend(dom));
    let failure: unknown = null;
    try {
      await step("copying the disk", () => atomically(target, (tmp) => convertToQcow2(disk, "qcow2", tmp, active)));
    } catch (e) {
      failure = e;
    }
    if (pauseIt) {
      try {
        await hv.domainResume(dom);
      } catch (e) {
        if (isRunningState(await this.virState(dom).catch(() => VirState.NOSTATE))) {
          // resumed after all
        } else if (failure === null) {
          throw new Error(`snapshotting ${instance.instance_name} failed while resuming the guest after the copy: ${message(e)}`, { cause: e });
        } else {
          failure = new Error(`${message(failure)} (resuming the guest failed too: ${message(e)})`, { cause: failure });
        }
      }
    }
    if (failure !== null) throw failure;
  }
}
