/**
 * Ports and their fixed IPs, created inside the caller's transaction. The network's
 * subnet rows are locked while addresses are chosen, and the (subnet, address) primary
 * key makes a duplicate impossible even if that lock were skipped.
 *
 * A port gets one address from each subnet of its network (IPv4 and IPv6), unless a
 * fixed IP is asked for: then, as in Neutron, it gets exactly that address.
 */
import type { Knex } from "knex";
import { conflict, badRequest } from "../common/errors.js";
import { newId, newMacAddress } from "../common/ids.js";
import { canonicalIp, cidrContains, firstFreeInPools, isHostAddressOf, parseCidr, parseIp, type Pool } from "../common/ipam.js";

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
  ipv6_address_mode?: string | null;
  ipv6_ra_mode?: string | null;
  host_routes?: { destination: string; nexthop: string }[];
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
  if (subnet.ip_version === 6) {
    // inet arithmetic over a /64 overflows generate_series' bigint: walk the pools in bigint
    // past the (few) addresses already taken. The subnet row is locked, so this is race-free.
    const taken: { ip_address: string }[] = await trx("ip_allocations").where({ subnet_id: subnet.id }).select("ip_address");
    return firstFreeInPools(6, subnet.allocation_pools, taken.map((t) => t.ip_address));
  }
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
  const subnets: SubnetRow[] = await trx("subnets").where({ network_id: spec.networkId }).orderBy([{ column: "created_at" }, { column: "id" }]).forUpdate();
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
  if (subnets.length === 0) {
    if (spec.fixedIp !== undefined) throw badRequest(`Network ${spec.networkId} has no subnet for fixed IP ${spec.fixedIp}.`);
    return { id, mac_address: mac, fixed_ips: [] };
  }
  const wanted: { subnet: SubnetRow; address: string | null }[] = [];
  if (spec.fixedIp !== undefined) {
    const requested = parseIp(spec.fixedIp);
    if (requested === null) throw badRequest(`Invalid fixed IP address ${spec.fixedIp}.`);
    const address = canonicalIp(spec.fixedIp)!;
    const subnet = subnets.find((s) => cidrContains(parseCidr(s.cidr), address));
    if (!subnet) {
      const cidrs = subnets.map((s) => s.cidr).join(", ");
      throw badRequest(`Fixed IP address ${spec.fixedIp} is not valid on any subnet of network ${spec.networkId} (${cidrs}).`);
    }
    if (!isHostAddressOf(parseCidr(subnet.cidr), address)) {
      throw badRequest(`Fixed IP address ${spec.fixedIp} is not valid on subnet ${subnet.id} (${subnet.cidr}).`);
    }
    if (subnet.gateway_ip !== null && canonicalIp(subnet.gateway_ip) === address) {
      throw conflict(`IP address ${spec.fixedIp} already allocated in subnet ${subnet.id}: it is the gateway.`);
    }
    wanted.push({ subnet, address });
  } else {
    for (const subnet of subnets) wanted.push({ subnet, address: null });
  }
  const fixedIps: CreatedPort["fixed_ips"] = [];
  for (const w of wanted) {
    const address = w.address ?? (await firstFreeAddress(trx, w.subnet));
    if (address === null) throw conflict(`No more IP addresses available on network ${spec.networkId} (subnet ${w.subnet.id}, ${w.subnet.cidr}).`);
    const taken = await trx("ip_allocations")
      .insert({ subnet_id: w.subnet.id, ip_address: address, port_id: id })
      .onConflict(["subnet_id", "ip_address"])
      .ignore()
      .returning("port_id");
    if (taken.length === 0) throw conflict(`IP address ${address} already allocated in subnet ${w.subnet.id}.`);
    fixedIps.push({ subnet_id: w.subnet.id, ip_address: address });
  }
  return { id, mac_address: mac, fixed_ips: fixedIps };
}
