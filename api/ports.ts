/**
 * Ports and their fixed IPs, created inside the caller's transaction. The subnet row
 * is locked while an address is chosen, and the (subnet, address) primary key makes
 * a duplicate impossible even if that lock were skipped.
 */
import type { Knex } from "knex";
import { conflict, badRequest } from "../common/errors.js";
import { newId, newMacAddress } from "../common/ids.js";
import { isHostAddress, parseCidr4, type Pool } from "../common/ipam.js";

export interface SubnetRow {
  id: string;
  network_id: string;
  name: string;
  project_id: string;
  ip_version: number;
  cidr: string;
  gateway_ip: string | null;
  allocation_pools: Pool[];
  dns_nameservers: string[];
  enable_dhcp: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface NewPort {
  networkId: string;
  projectId: string;
  deviceId: string | null;
  deviceOwner: string;
  deviceIndex: number | null;
  fixedIp?: string;
}

export interface CreatedPort {
  id: string;
  mac_address: string;
  fixed_ips: { subnet_id: string; ip_address: string }[];
}

async function firstFreeAddress(trx: Knex.Transaction, subnet: SubnetRow): Promise<string | null> {
  for (const pool of subnet.allocation_pools) {
    const row = await trx
      .select(trx.raw("host(?::inet + s.n) AS ip", [pool.start]))
      .fromRaw(trx.raw("generate_series(0, (?::inet - ?::inet)) AS s(n)", [pool.end, pool.start]))
      .whereNotExists(function () {
        this.select(trx.raw("1"))
          .from("ip_allocations as a")
          .where("a.subnet_id", subnet.id)
          .whereRaw("a.ip_address = host(?::inet + s.n)", [pool.start]);
      })
      .orderBy("s.n")
      .first();
    if (row) return (row as { ip: string }).ip;
  }
  return null;
}

export async function createPort(trx: Knex.Transaction, spec: NewPort): Promise<CreatedPort> {
  const subnet: SubnetRow | undefined = await trx("subnets").where({ network_id: spec.networkId }).forUpdate().first();
  const id = newId();
  let mac = newMacAddress();
  // A MAC collision is a 1 in 16 million event per port; retry on the unique index.
  for (let attempt = 0; ; attempt++) {
    const inserted = await trx("ports")
      .insert({
        id,
        network_id: spec.networkId,
        project_id: spec.projectId,
        mac_address: mac,
        device_id: spec.deviceId,
        device_owner: spec.deviceOwner,
        device_index: spec.deviceIndex,
        status: "DOWN",
      })
      .onConflict("mac_address")
      .ignore()
      .returning("id");
    if (inserted.length > 0) break;
    if (attempt > 5) throw new Error("could not generate a unique MAC address");
    mac = newMacAddress();
  }
  if (!subnet) {
    if (spec.fixedIp !== undefined) throw badRequest(`Network ${spec.networkId} has no subnet for fixed IP ${spec.fixedIp}.`);
    return { id, mac_address: mac, fixed_ips: [] };
  }
  const cidr = parseCidr4(subnet.cidr);
  let address: string | null;
  if (spec.fixedIp !== undefined) {
    if (!isHostAddress(cidr, spec.fixedIp)) {
      throw badRequest(`Fixed IP address ${spec.fixedIp} is not valid on subnet ${subnet.id} (${subnet.cidr}).`);
    }
    if (spec.fixedIp === subnet.gateway_ip) {
      throw conflict(`IP address ${spec.fixedIp} already allocated in subnet ${subnet.id}: it is the gateway.`);
    }
    address = spec.fixedIp;
  } else {
    address = await firstFreeAddress(trx, subnet);
    if (address === null) throw conflict(`No more IP addresses available on network ${spec.networkId}.`);
  }
  const taken = await trx("ip_allocations")
    .insert({ subnet_id: subnet.id, ip_address: address, port_id: id })
    .onConflict(["subnet_id", "ip_address"])
    .ignore()
    .returning("port_id");
  if (taken.length === 0) throw conflict(`IP address ${address} already allocated in subnet ${subnet.id}.`);
  return { id, mac_address: mac, fixed_ips: [{ subnet_id: subnet.id, ip_address: address }] };
}

