/**
 * Builds libvirt domain XML the way Nova's libvirt driver lays it out, so an operator
 * running `virsh dumpxml` on a Cirrus host sees what they know from Nova. Pure: the
 * same input always gives the same string.
 */

export const NOVA_NAMESPACE = "http://openstack.org/xmlns/libvirt/nova/1.1";

export type DomainType = "qemu" | "kvm" | "test";
export type DiskBus = "virtio" | "ide" | "scsi" | "sata";
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
  | { type: "bridge"; bridge: string };

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
}

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

const BUS_PREFIX: Record<DiskBus, string> = { virtio: "vd", ide: "hd", scsi: "sd", sata: "sd" };

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
  return disks.flatMap((d) => [
    `<disk${attrs({ type: "file", device: d.device })}>`,
    `  ${el("driver", { name: "qemu", type: d.format, cache: d.cache ?? "none" })}`,
    `  ${el("source", { file: d.path })}`,
    `  ${el("target", { dev: d.dev ?? nextDev(d.bus), bus: d.bus })}`,
    ...(d.readonly === true ? ["  <readonly/>"] : []),
    `</disk>`,
  ]);
}

function interfaceLines(ifaces: DomainInterface[]): string[] {
  return ifaces.flatMap((i) => {
    const a = i.attach;
    const lines = [`<interface${attrs({ type: a.type })}>`, `  ${el("mac", { address: i.mac })}`, `  ${el("model", { type: i.model })}`];
    if (a.type === "network") lines.push(`  ${el("source", { network: a.network })}`);
    if (a.type === "bridge") lines.push(`  ${el("source", { bridge: a.bridge })}`);
    if (a.type !== "user") {
      if (i.mtu !== undefined) lines.push(`  ${el("mtu", { size: i.mtu })}`);
      if (i.targetDev !== undefined) lines.push(`  ${el("target", { dev: i.targetDev })}`);
    }
    lines.push(`</interface>`);
    return lines;
  });
}

export function buildDomainXml(input: DomainXmlInput): string {
  positiveInt("memoryMiB", input.memoryMiB);
  positiveInt("vcpus", input.vcpus);
  // libvirt's test driver ignores most of the hardware model (it silently drops <apic/>),
  // so features and clock timers are written only for real QEMU guests.
  const real = input.type !== "test";

  const os = [
    `<os>`,
    `  ${el("type", { arch: input.arch, machine: input.machine }, "hvm")}`,
    `  <boot dev='hd'/>`,
    `  <smbios mode='sysinfo'/>`,
    `</os>`,
  ];
  const features = real ? [`<features>`, `  <acpi/>`, `  <apic/>`, `</features>`] : [];
  // Nova's x86 timers: a guest that was descheduled catches up instead of drifting.
  const clock = real
    ? [
        `<clock offset='utc'>`,
        `  <timer name='pit' tickpolicy='delay'/>`,
        `  <timer name='rtc' tickpolicy='catchup'/>`,
        `  <timer name='hpet' present='no'/>`,
        `</clock>`,
      ]
    : [`<clock offset='utc'/>`];
  const consoleLines =
    input.consoleLogPath === undefined
      ? []
      : [
          `<serial type='pty'>`,
          `  ${el("log", { file: input.consoleLogPath, append: "off" })}`,
          `</serial>`,
          `<console type='pty'/>`,
        ];
  const devices = [
    `<devices>`,
    ...indent(diskLines(input.disks), 1),
    ...indent(interfaceLines(input.interfaces), 1),
    ...indent(consoleLines, 1),
    `  <memballoon model='virtio'>`,
    `    <stats period='10'/>`,
    `  </memballoon>`,
    `</devices>`,
  ];

  const body = [
    el("name", {}, input.name),
    el("uuid", {}, input.uuid),
    `<metadata>`,
    ...indent(metadataLines(input.metadata), 1),
    `</metadata>`,
    el("memory", { unit: "KiB" }, input.memoryMiB * 1024),
    el("vcpu", {}, input.vcpus),
    ...sysinfoLines(input.uuid, input.smbios),
    ...os,
    ...features,
    ...clock,
    `<on_poweroff>destroy</on_poweroff>`,
    `<on_reboot>restart</on_reboot>`,
    `<on_crash>destroy</on_crash>`,
    ...devices,
  ];
  return [`<domain${attrs({ type: input.type })}>`, ...indent(body, 1), `</domain>`, ""].join("\n");
}
