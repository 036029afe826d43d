/**
 * The contents of a config drive, laid out as Nova's metadata (nova/api/metadata/base.py):
 * `openstack/<version>/meta_data.json`, `network_data.json` (2015-10-15 and later),
 * `vendor_data.json` and `user_data` (when given). Pure: the same spec and options give
 * the same files.
 */
import type { PortSpec, SpawnSpec } from "../../common/messages.js";
import { netmaskOf, parseCidr } from "../../common/ipam.js";

/** Nova's FOLSOM, LIBERTY, and "latest"; kept small (Nova writes every version since 2012-08-10). */
export const METADATA_VERSIONS = ["2012-08-10", "2015-10-15", "latest"] as const;
export type MetadataVersion = (typeof METADATA_VERSIONS)[number];

export interface MetadataOptions {
  /** The agent's availability zone, used when the instance names none. */
  defaultAvailabilityZone?: string | null;
  /** 512 random bytes, base64 (Nova's random_seed); omitted when not given. */
  randomSeed?: string;
}

export interface MetaData {
  uuid: string;
  name: string;
  hostname: string;
  launch_index: number;
  availability_zone: string;
  meta: Record<string, string>;
  public_keys: Record<string, string>;
  keys?: { name: string; type: string; data: string }[];
  project_id?: string;
  random_seed?: string;
  devices?: unknown[];
}

const atLeast = (version: MetadataVersion, min: string) => version === "latest" || version >= min;

export function metaData(spec: SpawnSpec, version: MetadataVersion = "latest", opts: MetadataOptions = {}): MetaData {
  const keys = spec.public_keys ?? [];
  const md: MetaData = {
    uuid: spec.instance_id,
    name: spec.name,
    hostname: spec.hostname ?? spec.name,
    launch_index: spec.launch_index ?? 0,
    availability_zone: spec.availability_zone ?? opts.defaultAvailabilityZone ?? "nova",
    meta: { ...spec.metadata },
    public_keys: Object.fromEntries(keys.map((k) => [k.name, k.data])),
  };
  if (atLeast(version, "2013-04-04") && opts.randomSeed !== undefined) md.random_seed = opts.randomSeed;
  if (atLeast(version, "2015-10-15")) {
    md.keys = keys.map((k) => ({ name: k.name, type: k.type, data: k.data }));
    md.project_id = spec.project_id;
  }
  if (atLeast(version, "2016-06-30")) md.devices = [];
  return md;
}

/** Nova's interface name for a VIF: tap + the port id's first 11 characters. */
export function tapName(portId: string): string {
  return `tap${portId.slice(0, 11)}`;
}

export interface NetworkData {
  links: { id: string; vif_id: string; type: string; ethernet_mac_address: string; mtu: number }[];
  networks: {
    id: string;
    type: "ipv4" | "ipv6";
    link: string;
    ip_address: string;
    netmask: string;
    routes: { network: string; netmask: string; gateway: string }[];
    network_id: string;
    services: { type: "dns"; address: string }[];
  }[];
  services: { type: "dns"; address: string }[];
}

/** network_data.json as Nova's netutils.get_network_metadata writes it, for static addressing. */
export function networkData(ports: PortSpec[], vifType: (port: PortSpec) => string = () => "bridge"): NetworkData {
  const out: NetworkData = { links: [], networks: [], services: [] };
  const seenDns = new Set<string>();
  for (const port of ports) {
    const link = tapName(port.id);
    out.links.push({ id: link, vif_id: port.id, type: vifType(port), ethernet_mac_address: port.mac_address, mtu: port.mtu });
    for (const ip of port.fixed_ips) {
      const cidr = parseCidr(ip.cidr);
      const dns = (ip.dns_nameservers ?? []).map((address) => ({ type: "dns" as const, address }));
      const routes =
        ip.gateway_ip === null
          ? []
          : [ip.version === 4 ? { network: "0.0.0.0", netmask: "0.0.0.0", gateway: ip.gateway_ip } : { network: "::", netmask: "::", gateway: ip.gateway_ip }];
      out.networks.push({
        id: `network${out.networks.length}`,
        type: ip.version === 4 ? "ipv4" : "ipv6",
        link,
        ip_address: ip.ip_address,
        netmask: netmaskOf(cidr),
        routes,
        network_id: port.network_id,
        services: dns,
      });
      for (const d of dns) {
        if (!seenDns.has(d.address)) {
          seenDns.add(d.address);
          out.services.push(d);
        }
      }
    }
  }
  return out;
}

/** Decodes the request's base64 user data (whitespace ignored); null when there is none. */
export function decodeUserData(userData: string | null): Buffer | null {
  if (userData === null || userData === "") return null;
  return Buffer.from(userData.replace(/\s/g, ""), "base64");
}

/** Every file of the drive, by path relative to its root. */
export function configDriveFiles(
  spec: SpawnSpec,
  opts: MetadataOptions & { vifType?: (port: PortSpec) => string } = {},
): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const userData = decodeUserData(spec.user_data);
  const net = networkData(spec.ports, opts.vifType);
  for (const version of METADATA_VERSIONS) {
    const dir = `openstack/${version}`;
    files.set(`${dir}/meta_data.json`, json(metaData(spec, version, opts)));
    files.set(`${dir}/vendor_data.json`, json({}));
    if (atLeast(version, "2015-10-15")) files.set(`${dir}/network_data.json`, json(net));
    if (userData !== null) files.set(`${dir}/user_data`, userData);
  }
  return files;
}
