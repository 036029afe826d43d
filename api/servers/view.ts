/** The server representation at microversion 2.1, built from rows without I/O. */
import { createHash } from "node:crypto";
import type { FlavorSnapshot, ImageSnapshot } from "../../common/messages.js";
import { serverStatus } from "../../common/status.js";
import { instanceNameFromSeq } from "../../common/instance-name.js";
import { resourceLinks } from "../links.js";

export interface InstanceRow {
  id: string;
  seq: number;
  name: string;
  description: string | null;
  project_id: string;
  user_id: string;
  vm_state: string;
  task_state: string | null;
  power_state: number;
  host: string | null;
  node: string | null;
  availability_zone: string | null;
  flavor: FlavorSnapshot;
  image_id: string | null;
  image: ImageSnapshot | null;
  requested_networks: unknown;
  metadata: Record<string, string>;
  config_drive: boolean;
  user_data: string | null;
  key_name: string | null;
  reservation_id: string;
  launch_index: number;
  access_ip_v4: string | null;
  access_ip_v6: string | null;
  progress: number;
  attempts: number;
  alternates: string[];
  tried_hosts: string[];
  launched_at: Date | null;
  terminated_at: Date | null;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

/**
 * What the server view reads of an instance (load.ts selects it): its columns, but of the
 * flavor snapshot only the id, and the timestamps already in Nova's format, written by
 * Postgres (a 1,000-server page parsed 4,000 dates and 1,000 flavor snapshots into objects
 * only to print four strings and an id; B3's API CPU).
 */
export type ServerRow = Pick<
  InstanceRow,
  | "id"
  | "seq"
  | "name"
  | "project_id"
  | "user_id"
  | "vm_state"
  | "task_state"
  | "power_state"
  | "host"
  | "node"
  | "availability_zone"
  | "image_id"
  | "metadata"
  | "config_drive"
  | "key_name"
  | "access_ip_v4"
  | "access_ip_v6"
  | "progress"
> & {
  flavor_id: string;
  /** `YYYY-MM-DDThh:mm:ssZ`, as Nova prints created and updated. */
  created_iso: string;
  updated_iso: string;
  launched_iso: string | null;
  terminated_iso: string | null;
};

export interface AddressRow {
  network_name: string;
  mac_address: string;
  ip_address: string;
  device_index: number | null;
}

export interface FaultRow {
  code: number;
  message: string;
  details: string;
  created_at: Date;
}

const iso = (d: Date | null) => (d ? d.toISOString().replace(/\.\d{3}Z$/, "Z") : null);

/** Nova's hostId: sha224 of project id and host, "" while unscheduled. */
export function hostId(projectId: string, host: string | null): string {
  return host ? createHash("sha224").update(projectId + host).digest("hex") : "";
}

/** hostId, hashing each (project, host) pair once: a page of servers shares few hosts. */
export function hostIdCache(): (projectId: string, host: string | null) => string {
  const known = new Map<string, string>();
  return (projectId, host) => {
    if (!host) return "";
    const key = `${projectId}\n${host}`;
    let id = known.get(key);
    if (id === undefined) known.set(key, (id = hostId(projectId, host)));
    return id;
  };
}

const ipVersion = (address: string) => (address.includes(":") ? 6 : 4);

/** Ordered like the NICs (a NIC's IPv4 address first), grouped by network name (clients rely on the order). */
export function addressesView(rows: AddressRow[]) {
  const out: Record<string, { addr: string; version: number; "OS-EXT-IPS:type": string; "OS-EXT-IPS-MAC:mac_addr": string }[]> = {};
  const sorted =
    rows.length < 2
      ? rows
      : [...rows].sort((a, b) => (a.device_index ?? 0) - (b.device_index ?? 0) || ipVersion(a.ip_address) - ipVersion(b.ip_address));
  for (const r of sorted) {
    (out[r.network_name] ??= []).push({
      addr: r.ip_address,
      version: ipVersion(r.ip_address),
      "OS-EXT-IPS:type": "fixed",
      "OS-EXT-IPS-MAC:mac_addr": r.mac_address,
    });
  }
  return out;
}

/** Nova's host_status values (microversion 2.16); "" when the server has no host. */
export type HostStatus = "UP" | "DOWN" | "MAINTENANCE" | "UNKNOWN" | "";

export interface ViewOptions {
  publicUrl: string;
  isAdmin: boolean;
  addresses: AddressRow[];
  fault: FaultRow | null;
  /** Nova's host_status, shown to admins only. */
  hostStatus?: HostStatus;
  /** Computes hostId; a page passes one cache for all its servers. */
  hostId?: (projectId: string, host: string | null) => string;
}

export function serverView(row: ServerRow, opts: ViewOptions) {
  const status = serverStatus(row.vm_state, row.task_state);
  const showFault = opts.fault !== null && (status === "ERROR" || status === "DELETED");
  return {
    id: row.id,
    name: row.name,
    status,
    tenant_id: row.project_id,
    user_id: row.user_id,
    metadata: row.metadata,
    hostId: (opts.hostId ?? hostId)(row.project_id, row.host),
    image: row.image_id ? { id: row.image_id, links: [{ rel: "bookmark", href: `${opts.publicUrl}/images/${row.image_id}` }] } : ("" as const),
    flavor: { id: row.flavor_id, links: [{ rel: "bookmark", href: `${opts.publicUrl}/flavors/${row.flavor_id}` }] },
    created: row.created_iso,
    updated: row.updated_iso,
    addresses: addressesView(opts.addresses),
    accessIPv4: row.access_ip_v4 ?? "",
    accessIPv6: row.access_ip_v6 ?? "",
    links: resourceLinks(opts.publicUrl, "servers", row.id),
    "OS-DCF:diskConfig": "MANUAL",
    progress: row.progress,
    "OS-EXT-AZ:availability_zone": row.availability_zone ?? "",
    config_drive: row.config_drive ? "True" : "",
    key_name: row.key_name,
    "OS-SRV-USG:launched_at": row.launched_iso,
    "OS-SRV-USG:terminated_at": row.terminated_iso,
    "OS-EXT-STS:task_state": row.task_state,
    "OS-EXT-STS:vm_state": row.vm_state,
    "OS-EXT-STS:power_state": row.power_state,
    // The schema's required properties first, then its optional ones, each in the schema's
    // order: the order fast-json-stringify writes them in, kept now that the server routes
    // send this object with JSON.stringify (api/plain-json.ts).
    "os-extended-volumes:volumes_attached": [],
    ...(opts.isAdmin
      ? {
          "OS-EXT-SRV-ATTR:host": row.host,
          "OS-EXT-SRV-ATTR:hypervisor_hostname": row.node,
          "OS-EXT-SRV-ATTR:instance_name": instanceNameFromSeq(row.seq),
          ...(opts.hostStatus !== undefined ? { host_status: opts.hostStatus } : {}),
        }
      : {}),
    ...(opts.addresses.length > 0 ? { security_groups: [{ name: "default" }] } : {}),
    ...(showFault && opts.fault
      ? {
          fault: {
            code: opts.fault.code,
            created: iso(opts.fault.created_at)!,
            message: opts.fault.message,
            ...(opts.isAdmin || opts.fault.code !== 500 ? { details: opts.fault.details } : {}),
          },
        }
      : {}),
  };
}
