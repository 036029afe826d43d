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
}

export async function loadPorts(trx: Knex | Knex.Transaction, instanceId: string): Promise<PortSpec[]> {
  const rows: {
    id: string; network_id: string; network_name: string; mtu: number; mac_address: string;
    subnet_id: string | null; ip_address: string | null; cidr: string | null; gateway_ip: string | null;
  }[] = await trx("ports")
    .join("networks", "networks.id", "ports.network_id")
    .leftJoin("ip_allocations", "ip_allocations.port_id", "ports.id")
    .leftJoin("subnets", "subnets.id", "ip_allocations.subnet_id")
    .where("ports.device_id", instanceId)
    .orderBy("ports.device_index")
    .select(
      "ports.id", "ports.network_id", "networks.name as network_name", "networks.mtu", "ports.mac_address",
      "ip_allocations.subnet_id", "ip_allocations.ip_address", "subnets.cidr", "subnets.gateway_ip",
    );
  const ports = new Map<string, PortSpec>();
  for (const r of rows) {
    let p = ports.get(r.id);
    if (!p) {
      p = { id: r.id, network_id: r.network_id, network_name: r.network_name, mac_address: r.mac_address, mtu: r.mtu, fixed_ips: [] };
      ports.set(r.id, p);
    }
    if (r.subnet_id && r.ip_address && r.cidr) {
      p.fixed_ips.push({ subnet_id: r.subnet_id, ip_address: r.ip_address, version: r.ip_address.includes(":") ? 6 : 4, cidr: r.cidr, gateway_ip: r.gateway_ip });
    }
  }
  return [...ports.values()];
}

export async function spawnJob(trx: Knex | Knex.Transaction, source: SpawnSource, requestId: string, attempt: number): Promise<ComputeJob> {
  const spec: SpawnSpec = {
    instance_id: source.id,
    instance_name: instanceNameFromSeq(source.seq),
    project_id: source.project_id,
    user_id: source.user_id,
    name: source.name,
    flavor: source.flavor,
    image: source.image,
    ports: await loadPorts(trx, source.id),
    metadata: source.metadata,
    config_drive: source.config_drive,
    user_data: source.user_data,
  };
  return { kind: "spawn", request_id: requestId, attempt, spec };
}
