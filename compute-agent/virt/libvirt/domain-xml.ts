/**
 * Builds libvirt domain XML the way Nova's libvirt driver lays it out, so an operator
 * running `virsh dumpxml` on a Cirrus host sees what they know from Nova. Pure: the
 * same input always gives the same string.
 */

export const NOVA_NAMESPACE = "http://openstack.org/xmlns/libvirt/nova/1.1";

export type DomainType = "qemu" | "kvm" | "test" | "xen";
export type DiskBus = "virtio" | "ide" | "scsi" | "sata" | "xen";
export type DiskFormat = "qcow2" | "raw";
export type DiskCache = "none" | "writethrough" | "writeback" | "directsync" | "unsafe";

export interface DomainDisk {
  path: string;
  format: DiskFormat;
  bus: DiskBus;
  device: "disk" | "cdrom";
  readonly?: boolean;
  /** Target device name; by default the next free one on the bus (vda, vdb, hda, sda, ...). */
  dev?: string;
  /** Nova uses 'none' and falls back to 'writethrough' where O_DIRECT is unsupported. */
  cache?: DiskCache;
}

export type InterfaceAttachment =
  | { type: "user" }
  | { type: "network"; network: string }
  | {
      type: "bridge";
      bridge: string;
      /** An Open vSwitch bridge: <virtualport type='openvswitch'> with the port id as interfaceid. */
      ovsInterfaceId?: string;
      /** VLAN tag (Open vSwitch bridges; Linux bridges get a per-VLAN bridge instead). */
      vlan?: number;
    };

export interface DomainInterface {
  mac: string;
  model: string;
  attach: InterfaceAttachment;
  /** Only for network and bridge attachments (QEMU rejects an MTU on user networking). */
  mtu?: number;
  /** Host-side tap name, e.g. Nova's tap<port id prefix>; network and bridge only. */
  targetDev?: string;
}

export interface NovaMetadata {
  displayName: string;
  creationTime: Date;
  packageVersion?: string;
  flavor: { name: string; memoryMiB: number; diskGiB: number; swapMiB: number; ephemeralGiB: number; vcpus: number };
  owner: { userId: string; userName?: string; projectId: string; projectName?: string };
  imageId: string;
  ports?: { id: string; ips: { address: string; version: 4 | 6 }[] }[];
}

export interface SmbiosInfo {
  manufacturer: string;
  product: string;
  version?: string;
}

export interface DomainXmlInput {
  type: DomainType;
  name: string;
  uuid: string;
  memoryMiB: number;
  vcpus: number;
  arch: "x86_64" | "i686";
  machine?: string;
  disks: DomainDisk[];
  interfaces: DomainInterface[];
  consoleLogPath?: string;
  metadata: NovaMetadata;
  smbios: SmbiosInfo;
  /**
   * The flavor's extra specs: quota:cpu_shares/cpu_period/cpu_quota (cputune),
   * hw:numa_nodes (guest NUMA cells and numatune), quota:vif_{inbound,outbound}_{average,peak,burst}
   * (interface bandwidth), hw_rng:rate_bytes/rate_period (rng rate limit).
   */
  extraSpecs?: Record<string, string>;
  /** Image properties: hw_video_model, os_type (windows: localtime clock), hw_rng_model (none: no rng). */
  imageProperties?: Record<string, string>;
  /** Boot order; by default the first disk. */
  boot?: ("hd" | "cdrom" | "network")[];
  /** Host NUMA nodes that guest cells are spread over (default [0]). */
  hostNumaNodes?: number[];
}

export const VIDEO_MODELS = ["vga", "cirrus", "vmvga", "xen", "qxl", "virtio", "bochs", "none"] as const;

export { instanceNameFromSeq } from "../../../common/instance-name.js";

// Characters XML 1.0 cannot carry at all, even escaped; libvirt would reject the document.
const XML_INVALID = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function escapeXml(value: string | number): string {
  return String(value)
    .replace(XML_INVALID, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

/** Renders a list of attributes; undefined values are left out. */
function attrs(pairs: Record<string, string | number | undefined>): string {
  return Object.entries(pairs)
    .filter((entry): entry is [string, string | number] => entry[1] !== undefined)
    .map(([k, v]) => ` ${k}='${escapeXml(v)}'`)
    .join("");
}

function el(tag: string, attributes: Record<string, string | number | undefined>, text?: string | number): string {
  return text === undefined
    ? `<${tag}${attrs(attributes)}/>`
    : `<${tag}${attrs(attributes)}>${escapeXml(text)}</${tag}>`;
}

function indent(lines: string[], depth: number): string[] {
  const pad = "  ".repeat(depth);
  return lines.map((l) => pad + l);
}

function positiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
}

function formatCreationTime(d: Date): string {
  // Nova writes time.strftime("%Y-%m-%d %H:%M:%S", gmtime(...)).
  return d.toISOString().slice(0, 19).replace("T", " ");
}

function metadataLines(m: NovaMetadata): string[] {
  const f = m.flavor;
  const lines = [
    `<nova:instance xmlns:nova='${NOVA_NAMESPACE}'>`,
    ...(m.packageVersion === undefined ? [] : [`  ${el("nova:package", { version: m.packageVersion })}`]),
    `  ${el("nova:name", {}, m.displayName)}`,
    `  ${el("nova:creationTime", {}, formatCreationTime(m.creationTime))}`,
    `  <nova:flavor${attrs({ name: f.name })}>`,
    `    ${el("nova:memory", {}, f.memoryMiB)}`,
    `    ${el("nova:disk", {}, f.diskGiB)}`,
    `    ${el("nova:swap", {}, f.swapMiB)}`,
    `    ${el("nova:ephemeral", {}, f.ephemeralGiB)}`,
    `    ${el("nova:vcpus", {}, f.vcpus)}`,
    `  </nova:flavor>`,
    `  <nova:owner>`,
    `    ${el("nova:user", { uuid: m.owner.userId }, m.owner.userName ?? m.owner.userId)}`,
    `    ${el("nova:project", { uuid: m.owner.projectId }, m.owner.projectName ?? m.owner.projectId)}`,
    `  </nova:owner>`,
    `  ${el("nova:root", { type: "image", uuid: m.imageId })}`,
  ];
  if (m.ports !== undefined && m.ports.length > 0) {
    lines.push(`  <nova:ports>`);
    for (const p of m.ports) {
      lines.push(`    <nova:port${attrs({ uuid: p.id })}>`);
      for (const ip of p.ips) {
        lines.push(`      ${el("nova:ip", { type: "fixed", address: ip.address, ipVersion: ip.version })}`);
      }
      lines.push(`    </nova:port>`);
    }
    lines.push(`  </nova:ports>`);
  }
  lines.push(`</nova:instance>`);
  return lines;
}

function sysinfoLines(uuid: string, s: SmbiosInfo): string[] {
  return [
    `<sysinfo type='smbios'>`,
    `  <system>`,
    `    ${el("entry", { name: "manufacturer" }, s.manufacturer)}`,
    `    ${el("entry", { name: "product" }, s.product)}`,
    ...(s.version === undefined ? [] : [`    ${el("entry", { name: "version" }, s.version)}`]),
    `    ${el("entry", { name: "serial" }, uuid)}`,
    `    ${el("entry", { name: "uuid" }, uuid)}`,
    `    ${el("entry", { name: "family" }, "Virtual Machine")}`,
    `  </system>`,
    `</sysinfo>`,
  ];
}

const BUS_PREFIX: Record<DiskBus, string> = { virtio: "vd", ide: "hd", scsi: "sd", sata: "sd", xen: "xvd" };

function diskLines(disks: DomainDisk[]): string[] {
  const used = new Set(disks.flatMap((d) => (d.dev === undefined ? [] : [d.dev])));
  const nextDev = (bus: DiskBus): string => {
    const prefix = BUS_PREFIX[bus];
    for (let i = 0; i < 26; i++) {
      const dev = prefix + String.fromCharCode(97 + i);
      if (!used.has(dev)) {
        used.add(dev);
        return dev;
      }
    }
    throw new RangeError(`no free device name left on bus ${bus}`);
  };
  return disks.flatMap((d) => {
    const cache = d.cache ?? "none";
    // Nova: native AIO needs O_DIRECT (cache none/directsync); otherwise threads.
    const io = cache === "none" || cache === "directsync" ? "native" : "threads";
    return [
      `<disk${attrs({ type: "file", device: d.device })}>`,
      `  ${el("driver", { name: "qemu", type: d.format, cache, io })}`,
      `  ${el("source", { file: d.path })}`,
      `  ${el("target", { dev: d.dev ?? nextDev(d.bus), bus: d.bus })}`,
      ...(d.readonly === true ? ["  <readonly/>"] : []),
      `</disk>`,
    ];
  });
}

/** Parses a non-negative integer extra spec; a malformed one is the flavor's error, said clearly. */
function intSpec(specs: Record<string, string>, key: string, min: number, max: number): number | undefined {
  const raw = specs[key];
  if (raw === undefined) return undefined;
  const n = Number(raw.trim());
  if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new RangeError(`flavor extra spec ${key}=${JSON.stringify(raw)} must be an integer from ${min} to ${max}`);
  }
  return n;
}

interface Bandwidth {
  inbound?: { average: number; peak?: number; burst?: number };
  outbound?: { average: number; peak?: number; burst?: number };
}

/** Nova's quota:vif_{inbound,outbound}_{average,peak,burst} (KB/s and KB, as libvirt takes them). */
export function bandwidthFromSpecs(specs: Record<string, string>): Bandwidth {
  const out: Bandwidth = {};
  for (const dir of ["inbound", "outbound"] as const) {
    const average = intSpec(specs, `quota:vif_${dir}_average`, 1, 2 ** 32 - 1);
    const peak = intSpec(specs, `quota:vif_${dir}_peak`, 1, 2 ** 32 - 1);
    const burst = intSpec(specs, `quota:vif_${dir}_burst`, 1, 2 ** 32 - 1);
    if (average === undefined) {
      if (peak !== undefined || burst !== undefined) throw new RangeError(`flavor extra spec quota:vif_${dir}_average is required with its peak or burst`);
      continue;
    }
    out[dir] = { average, ...(peak !== undefined ? { peak } : {}), ...(burst !== undefined ? { burst } : {}) };
  }
  return out;
}

function interfaceLines(ifaces: DomainInterface[], bandwidth: Bandwidth): string[] {
  return ifaces.flatMap((i) => {
    const a = i.attach;
    const lines = [`<interface${attrs({ type: a.type })}>`, `  ${el("mac", { address: i.mac })}`, `  ${el("model", { type: i.model })}`];
    if (a.type === "network") lines.push(`  ${el("source", { network: a.network })}`);
    if (a.type === "bridge") {
      lines.push(`  ${el("source", { bridge: a.bridge })}`);
      if (a.ovsInterfaceId !== undefined) {
        lines.push(`  <virtualport type='openvswitch'>`, `    ${el("parameters", { interfaceid: a.ovsInterfaceId })}`, `  </virtualport>`);
      }
      if (a.vlan !== undefined) lines.push(`  <vlan>`, `    ${el("tag", { id: a.vlan })}`, `  </vlan>`);
    }
    if (a.type !== "user") {
      if (i.mtu !== undefined) lines.push(`  ${el("mtu", { size: i.mtu })}`);
      if (i.targetDev !== undefined) lines.push(`  ${el("target", { dev: i.targetDev })}`);
      // libvirt shapes traffic only on tap-backed interfaces.
      if (bandwidth.inbound || bandwidth.outbound) {
        lines.push(`  <bandwidth>`);
        if (bandwidth.inbound) lines.push(`    ${el("inbound", bandwidth.inbound)}`);
        if (bandwidth.outbound) lines.push(`    ${el("outbound", bandwidth.outbound)}`);
        lines.push(`  </bandwidth>`);
      }
    }
    lines.push(`</interface>`);
    return lines;
  });
}

function cpuRange(first: number, count: number): string {
  return count === 1 ? String(first) : `${first}-${first + count - 1}`;
}

/** Guest NUMA cells from hw:numa_nodes: vCPUs and memory split evenly, as Nova requires. */
function numaCells(input: DomainXmlInput, specs: Record<string, string>): { id: number; cpus: string; memoryKiB: number; host: number }[] {
  const nodes = intSpec(specs, "hw:numa_nodes", 1, 64);
  if (nodes === undefined) return [];
  if (input.vcpus % nodes !== 0 || input.memoryMiB % nodes !== 0) {
    throw new RangeError(`hw:numa_nodes=${nodes} cannot split ${input.vcpus} vCPUs and ${input.memoryMiB} MiB evenly`);
  }
  const host = input.hostNumaNodes && input.hostNumaNodes.length > 0 ? input.hostNumaNodes : [0];
  const per = input.vcpus / nodes;
  return Array.from({ length: nodes }, (_, id) => ({
    id,
    cpus: cpuRange(id * per, per),
    memoryKiB: (input.memoryMiB / nodes) * 1024,
    host: host[id % host.length]!,
  }));
}

export function buildDomainXml(input: DomainXmlInput): string {
  positiveInt("memoryMiB", input.memoryMiB);
  positiveInt("vcpus", input.vcpus);
  const specs = input.extraSpecs ?? {};
  const props = input.imageProperties ?? {};
  // libvirt's test driver ignores most of the hardware model (it silently drops <apic/>),
  // so the hardware details are written only for real guests.
  const real = input.type !== "test";
  const xen = input.type === "xen";
  const windows = (props.os_type ?? "").toLowerCase() === "windows";

  const shares = intSpec(specs, "quota:cpu_shares", 2, 262144);
  const period = intSpec(specs, "quota:cpu_period", 1000, 1000000);
  const quota = intSpec(specs, "quota:cpu_quota", -1, 17592186044415);
  const bandwidth = bandwidthFromSpecs(specs);
  const cells = real && !xen ? numaCells(input, specs) : [];
  const video = props.hw_video_model ?? (xen ? "vga" : "virtio");
  if (!(VIDEO_MODELS as readonly string[]).includes(video)) {
    throw new RangeError(`hw_video_model ${video} is not supported (${VIDEO_MODELS.join(", ")})`);
  }
  const rngModel = props.hw_rng_model ?? "virtio";
  if (rngModel !== "virtio" && rngModel !== "none") throw new RangeError(`hw_rng_model ${rngModel} is not supported (virtio, none)`);
  const rngBytes = intSpec(specs, "hw_rng:rate_bytes", 1, 2 ** 32 - 1);
  const rngPeriod = intSpec(specs, "hw_rng:rate_period", 1, 2 ** 32 - 1);

  const cputune =
    real && (shares !== undefined || period !== undefined || quota !== undefined)
      ? [
          `<cputune>`,
          ...(shares !== undefined ? [`  ${el("shares", {}, shares)}`] : []),
          ...(period !== undefined ? [`  ${el("period", {}, period)}`] : []),
          ...(quota !== undefined ? [`  ${el("quota", {}, quota)}`] : []),
          `</cputune>`,
        ]
      : [];
  const numatune =
    cells.length > 0
      ? [
          `<numatune>`,
          `  ${el("memory", { mode: "strict", nodeset: [...new Set(cells.map((c) => c.host))].sort((a, b) => a - b).join(",") })}`,
          ...cells.map((c) => `  ${el("memnode", { cellid: c.id, mode: "strict", nodeset: c.host })}`),
          `</numatune>`,
        ]
      : [];

  const bootDevs = input.boot ?? ["hd"];
  const os = [
    `<os>`,
    `  ${el("type", { arch: input.arch, machine: input.machine ?? (xen ? "xenfv" : undefined) }, "hvm")}`,
    ...(xen ? [`  ${el("loader", { type: "rom" }, "/usr/lib/xen/boot/hvmloader")}`] : []),
    ...bootDevs.map((dev) => `  ${el("boot", { dev })}`),
    ...(xen ? [] : [`  <smbios mode='sysinfo'/>`]),
    `</os>`,
  ];
  const features = real ? [`<features>`, `  <acpi/>`, `  <apic/>`, ...(xen ? [`  <pae/>`] : []), `</features>`] : [];
  // Nova's CPU: host-model on KVM, the emulator's default under TCG and Xen; a sockets-only topology.
  const cpu = real && !xen
    ? [
        `<cpu${attrs(input.type === "kvm" ? { mode: "host-model", match: "exact" } : {})}>`,
        `  ${el("topology", { sockets: input.vcpus, dies: 1, cores: 1, threads: 1 })}`,
        ...(cells.length > 0
          ? [`  <numa>`, ...cells.map((c) => `    ${el("cell", { id: c.id, cpus: c.cpus, memory: c.memoryKiB, unit: "KiB" })}`), `  </numa>`]
          : []),
        `</cpu>`,
      ]
    : [];
  // Nova's x86 timers: a guest that was descheduled catches up instead of drifting.
  const offset = windows ? "localtime" : "utc";
  const clock = !real
    ? [`<clock offset='utc'/>`]
    : xen
      ? [`<clock${attrs({ offset, adjustment: "reset" })}/>`]
      : [
          `<clock${attrs({ offset })}>`,
          `  <timer name='pit' tickpolicy='delay'/>`,
          `  <timer name='rtc' tickpolicy='catchup'/>`,
          `  <timer name='hpet' present='no'/>`,
          ...(windows && input.type === "kvm" ? [`  <timer name='hypervclock' present='yes'/>`] : []),
          `</clock>`,
        ];
  const pm = real && !xen ? [`<pm>`, `  <suspend-to-mem enabled='no'/>`, `  <suspend-to-disk enabled='no'/>`, `</pm>`] : [];
  const consoleLines =
    input.consoleLogPath === undefined
      ? []
      : [
          `<serial type='pty'>`,
          // libxl has no serial log; xenconsoled keeps the Xen guest's console log.
          ...(xen ? [] : [`  ${el("log", { file: input.consoleLogPath, append: "off" })}`]),
          `</serial>`,
          `<console type='pty'/>`,
        ];
  const hardware = real
    ? [
        // Nova adds a USB tablet so an absolute pointer follows the console's cursor.
        `<input type='tablet' bus='usb'/>`,
        `<input type='keyboard' bus='usb'/>`,
        `<video>`,
        `  ${el("model", { type: video })}`,
        `</video>`,
      ]
    : [];
  const rng =
    real && !xen && rngModel === "virtio"
      ? [
          `<rng model='virtio'>`,
          ...(rngBytes !== undefined ? [`  ${el("rate", { bytes: rngBytes, period: rngPeriod })}`] : []),
          `  <backend model='random'>/dev/urandom</backend>`,
          `</rng>`,
        ]
      : [];
  const balloon = xen ? [`<memballoon model='xen'/>`] : [`<memballoon model='virtio'>`, `  <stats period='10'/>`, `</memballoon>`];
  const devices = [
    `<devices>`,
    ...indent(diskLines(input.disks), 1),
    ...indent(interfaceLines(input.interfaces, bandwidth), 1),
    ...indent(consoleLines, 1),
    ...indent(hardware, 1),
    ...indent(rng, 1),
    ...indent(balloon, 1),
    `</devices>`,
  ];

  const body = [
    el("name", {}, input.name),
    el("uuid", {}, input.uuid),
    `<metadata>`,
    ...indent(metadataLines(input.metadata), 1),
    `</metadata>`,
    el("memory", { unit: "KiB" }, input.memoryMiB * 1024),
    el("currentMemory", { unit: "KiB" }, input.memoryMiB * 1024),
    el("vcpu", { placement: "static" }, input.vcpus),
    ...cputune,
    ...numatune,
    ...(xen ? [] : sysinfoLines(input.uuid, input.smbios)),
    ...os,
    ...features,
    ...cpu,
    ...clock,
    `<on_poweroff>destroy</on_poweroff>`,
    `<on_reboot>restart</on_reboot>`,
    `<on_crash>destroy</on_crash>`,
    ...pm,
    ...devices,
  ];
  return [`<domain${attrs({ type: input.type })}>`, ...indent(body, 1), `</domain>`, ""].join("\n");
}
