/** Builds the self-contained spawn job for an instance (the agent reads no database). */
import type { Knex } from "knex";
import { instanceNameFromSeq } from "../common/instance-name.js";
import type { ComputeJob, FlavorSnapshot, ImageSnapshot, PortSpec, SpawnSpec } from "../common/messages.js";

export interface SpawnSource {
  id: string;
  seq: number;
  name: string;
  project_id: string;
  user_id: string;
  flavor: FlavorSnapshot;
  image: ImageSnapshot;
  metadata: Record<string, string>;
  config_drive: boolean;
  user_data: string | null;
  availability_zone?: string | null;
  launch_index?: number;
  key_name?: string | null;
  /** Present once the instances table carries one (microversion 2.90); else derived from the name. */
  hostname?: string | null;
}

/** Nova's sanitize_hostname: lowercase, spaces and underscores to dashes, other symbols dropped, 63 characters. */
export function sanitizeHostname(name: string, fallback = "server"): string {
  const h = name
    .toLowerCase()
    .replace(/[ _]/g, "-")
    .replace(/[^\w.-]+/g, "")
    .replace(/_/g, "")
    .slice(0, 63)
    .replace(/^[.-]+|[.-]+$/g, "");
  return h === "" ? fallback : h;
}

/**
 * Where a spawn job's few reads go: a knex instance or transaction, or a function that
 * gives one when a read is needed (a placement makes its knex transaction only then:
 * common/db/begun-with.ts transactionOnConnection).
 */
export type SpawnReader = Knex | Knex.Transaction | (() => Promise<Knex.Transaction>);

async function readerOf(reader: SpawnReader): Promise<Knex | Knex.Transaction> {
  return "raw" in reader ? reader : (reader as () => Promise<Knex.Transaction>)();
}

/** The SSH key a server was booted with, from the key_pairs table (as Nova reads it at boot). */
async function publicKeys(reader: SpawnReader, source: SpawnSource): Promise<{ name: string; type: string; data: string }[]> {
  if (!source.key_name) return [];
  const row: { name: string; type: string; public_key: string } | undefined = await (await readerOf(reader))("key_pairs")
    .where({ user_id: source.user_id, name: source.key_name })
    .first("name", "type", "public_key");
  return row ? [{ name: row.name, type: row.type, data: row.public_key }] : [];
}

/** The image snapshot with its sha256 (older snapshots lack it: read it from the image record). */
async function withImageHash(reader: SpawnReader, image: ImageSnapshot): Promise<ImageSnapshot> {
  if (image.os_hash_value !== undefined) return image;
  const row: { os_hash_algo: string | null; os_hash_value: string | null } | undefined = await (await readerOf(reader))("images")
    .where({ id: image.id })
    .first("os_hash_algo", "os_hash_value");
  return { ...image, os_hash_value: row?.os_hash_algo === "sha256" ? row.os_hash_value : null };
}

export async function loadPorts(trx: Knex | Knex.Transaction, instanceId: string): Promise<PortSpec[]> {
  return (await loadPortsOf(trx, [instanceId])).get(instanceId) ?? [];
}

/** One row per port and fixed IP, as read from ports, networks, ip_allocations and subnets. */
export interface PortRow {
  id: string; network_id: string; network_name: string; mtu: number; mac_address: string;
  subnet_id: string | null; ip_address: string | null; cidr: string | null; gateway_ip: string | null;
  dns_nameservers: string[] | null; network_type: string; physical_network: string | null; segmentation_id: number | null;
  device_id: string;
}

/** The ports of several instances, with their fixed IPs and networks, in one query. */
export async function loadPortsOf(trx: Knex | Knex.Transaction, instanceIds: string[]): Promise<Map<string, PortSpec[]>> {
  if (instanceIds.length === 0) return new Map();
  const rows: PortRow[] = await trx("ports")
    .join("networks", "networks.id", "ports.network_id")
    .leftJoin("ip_allocations", "ip_allocations.port_id", "ports.id")
    .leftJoin("subnets", "subnets.id", "ip_allocations.subnet_id")
    .whereIn("ports.device_id", instanceIds)
    .orderBy("ports.device_id")
    .orderBy("ports.device_index")
    .orderBy("subnets.ip_version")
    .orderBy("subnets.created_at")
    .select(
      "ports.id", "ports.network_id", "networks.name as network_name", "networks.mtu", "ports.mac_address",
      "ip_allocations.subnet_id", "ip_allocations.ip_address", "subnets.cidr", "subnets.gateway_ip", "subnets.dns_nameservers",
      "networks.network_type", "networks.physical_network", "networks.segmentation_id", "ports.device_id",
    );
  return portsFromRows(rows);
}

/** Port rows (ordered by instance, device index, IP version) as each instance's PortSpecs. */
export function portsFromRows(rows: readonly PortRow[]): Map<string, PortSpec[]> {
  const out = new Map<string, PortSpec[]>();
  const ports = new Map<string, PortSpec>();
  for (const r of rows) {
    let p = ports.get(r.id);
    if (!p) {
      p = {
        id: r.id, network_id: r.network_id, network_name: r.network_name, mac_address: r.mac_address, mtu: r.mtu, fixed_ips: [],
        network_type: r.network_type, physical_network: r.physical_network, segmentation_id: r.segmentation_id,
      };
      ports.set(r.id, p);
      const list = out.get(r.device_id);
      if (list) list.push(p);
      else out.set(r.device_id, [p]);
    }
    if (r.subnet_id && r.ip_address && r.cidr) {
      p.fixed_ips.push({
        subnet_id: r.subnet_id, ip_address: r.ip_address, version: r.ip_address.includes(":") ? 6 : 4, cidr: r.cidr, gateway_ip: r.gateway_ip,
        dns_nameservers: r.dns_nameservers ?? [],
      });
    }
  }
  return out;
}

export async function spawnJob(
  reader: SpawnReader,
  source: SpawnSource,
  requestId: string,
  attempt: number,
  /** Read already (a batch reads every instance's ports at once). */
  ports?: PortSpec[],
): Promise<ComputeJob> {
  const spec: SpawnSpec = {
    instance_id: source.id,
    instance_name: instanceNameFromSeq(source.seq),
    project_id: source.project_id,
    user_id: source.user_id,
    name: source.name,
    flavor: source.flavor,
    image: await withImageHash(reader, source.image),
    ports: ports ?? (await loadPorts(await readerOf(reader), source.id)),
    metadata: source.metadata,
    config_drive: source.config_drive,
    user_data: source.user_data,
    hostname: source.hostname ?? sanitizeHostname(source.name),
    availability_zone: source.availability_zone ?? null,
    launch_index: source.launch_index ?? 0,
    key_name: source.key_name ?? null,
    public_keys: await publicKeys(reader, source),
  };
  return { kind: "spawn", request_id: requestId, attempt, spec };
}
