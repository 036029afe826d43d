/**
 * Ports and their fixed IPs, created inside the caller's transaction. The (subnet,
 * address) primary key makes a duplicate impossible; IPv4 addresses are claimed without
 * a subnet-wide lock, so boots on one network do not wait for each other's commits.
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

/** Addresses past the highest one in use that one claim tries: concurrent boots each take another. */
const CLAIM_WINDOW = 256;
/** A claim loses a race only to a boot that committed during it; this many tries are plenty. */
const CLAIM_ATTEMPTS = 10;

/**
 * Candidates for an IPv4 claim: usually the addresses after the highest one in use in the
 * pool (one probe of the (subnet, inet) index); once the pool's top is reached, the pool
 * walked from its start, for addresses freed since.
 */
const AFTER_HIGHEST = `
  SELECT host(c.addr) AS ip
    FROM (SELECT max(ip_address::inet) AS m FROM ip_allocations
           WHERE subnet_id = :subnet AND ip_address::inet BETWEEN :start::inet AND :end::inet) top,
         generate_series(0, ${CLAIM_WINDOW - 1}) AS g(k),
         LATERAL (SELECT coalesce(top.m + 1, :start::inet) + g.k AS addr) c
   WHERE c.addr <= :end::inet AND pg_try_advisory_xact_lock(hashtextextended(:subnet::text || '/' || host(c.addr), 0))
   LIMIT 1`;
const FIRST_GAP = `
  SELECT host(:start::inet + s.n) AS ip
    FROM generate_series(0, :end::inet - :start::inet) AS s(n)
   WHERE NOT EXISTS (SELECT 1 FROM ip_allocations a WHERE a.subnet_id = :subnet AND a.ip_address = host(:start::inet + s.n))
     AND pg_try_advisory_xact_lock(hashtextextended(:subnet::text || '/' || host(:start::inet + s.n), 0))
   LIMIT 1`;

/**
 * Claims a free IPv4 address of the subnet for the port without waiting for other boots
 * on the subnet: a candidate is taken with a transaction-scoped advisory lock (one that
 * another transaction holds is skipped) and inserted in the same statement; the (subnet,
 * address) primary key is the judge. Null when the pools have nothing free.
 */
async function claimIpv4(trx: Knex.Transaction, subnet: SubnetRow, portId: string): Promise<string | null> {
  for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
    let raced = false;
    for (const pool of subnet.allocation_pools) {
      for (const candidates of [AFTER_HIGHEST, FIRST_GAP]) {
        const { rows } = await trx.raw(
          `WITH cand AS (${candidates}),
                ins AS (INSERT INTO ip_allocations (subnet_id, ip_address, port_id) SELECT :subnet, ip, :port FROM cand
                        ON CONFLICT (subnet_id, ip_address) DO NOTHING RETURNING ip_address)
           SELECT (SELECT ip FROM cand) AS candidate, (SELECT ip_address FROM ins) AS claimed`,
          { subnet: subnet.id, start: pool.start, end: pool.end, port: portId },
        );
        const { candidate, claimed } = rows[0] as { candidate: string | null; claimed: string | null };
        if (claimed !== null) return claimed;
        // A candidate free in this statement's snapshot that another boot committed meanwhile: try again.
        if (candidate !== null) {
          raced = true;
          break;
        }
      }
      if (raced) break;
    }
    if (!raced) return null;
  }
  throw conflict(`Could not allocate an IP address on subnet ${subnet.id} (${subnet.cidr}): too many concurrent requests; retry.`);
}

/**
 * The set-based form of claimIpv4, for a statement that claims `count` addresses of the
 * subnet at once (api/servers/boot-write.ts: every port of a multi-create): a SELECT of up
 * to `count` free IPv4 addresses (column `ip`), in the order that many claimIpv4 calls one
 * after another would take them: for each pool in turn, the addresses after the highest one
 * in use, then the pool's gaps from its start (only when the first part runs short; the
 * LIMIT stops the scan). Each candidate is taken with the same advisory lock, so concurrent
 * claims skip each other's; the caller inserts them without ON CONFLICT, so a candidate
 * that another boot committed meanwhile fails the statement on the primary key, and the
 * caller retries it. Fewer than `count` rows means the pools have no more.
 */
export function ipv4CandidatesSql(subnet: Pick<SubnetRow, "id" | "allocation_pools">, count: number): { sql: string; bindings: Knex.RawBinding[] } {
  // Wide enough that `count` claims find room past addresses other boots hold locked.
  const window = count + CLAIM_WINDOW - 1;
  const bindings: Knex.RawBinding[] = [];
  for (const pool of subnet.allocation_pools) {
    const top = [subnet.id, pool.start, pool.end, pool.start];
    bindings.push(...top, window, pool.end, subnet.id);
    bindings.push(...top, pool.end, pool.start, pool.start, window, subnet.id, subnet.id);
  }
  if (subnet.allocation_pools.length > 0) bindings.push(count);
  return { sql: candidatesText(subnet.allocation_pools.length), bindings };
}

// The text depends only on how many pools the subnet has (api/servers/boot-write.ts builds
// its statement once per shape, but takes the bindings for every boot).
const candidateTexts = new Map<number, string>();

/** ipv4CandidatesSql's text for a subnet of `pools` pools; its bindings are in the same order. */
function candidatesText(pools: number): string {
  let text = candidateTexts.get(pools);
  if (text !== undefined) return text;
  // ORDER BY … LIMIT 1, not max(): the planner turns max() into the same backward index
  // probe only when its statistics say the table is large, and right after thousands of
  // boots (before autovacuum analyzes) it aggregated every address of the subnet instead.
  const top = `(SELECT coalesce((SELECT ip_address::inet + 1 FROM ip_allocations
                                   WHERE subnet_id = ?::uuid AND ip_address::inet BETWEEN ?::inet AND ?::inet
                                   ORDER BY ip_address::inet DESC LIMIT 1), ?::inet) AS lo)`;
  const parts: string[] = [];
  for (let i = 0; i < pools; i++) {
    parts.push(`(SELECT host(c.addr) AS ip
                   FROM ${top} top, generate_series(0, ?::int - 1) AS g(k), LATERAL (SELECT top.lo + g.k AS addr) c
                  WHERE c.addr <= ?::inet AND pg_try_advisory_xact_lock(hashtextextended(?::text || '/' || host(c.addr), 0)))`);
    // The gaps, outside the window the first part walks (no address is offered twice).
    parts.push(`(SELECT host(c.addr) AS ip
                   FROM ${top} top, generate_series(0, ?::inet - ?::inet) AS s(n), LATERAL (SELECT ?::inet + s.n AS addr) c
                  WHERE (c.addr < top.lo OR c.addr > top.lo + (?::int - 1))
                    AND NOT EXISTS (SELECT 1 FROM ip_allocations a WHERE a.subnet_id = ?::uuid AND a.ip_address = host(c.addr))
                    AND pg_try_advisory_xact_lock(hashtextextended(?::text || '/' || host(c.addr), 0)))`);
  }
  text = pools === 0 ? `SELECT NULL::text AS ip WHERE false` : `SELECT ip FROM (${parts.join(" UNION ALL ")}) u LIMIT ?`;
  candidateTexts.set(pools, text);
  return text;
}

/**
 * IPv6: inet arithmetic over a /64 overflows generate_series' bigint, so the pools are
 * walked in bigint past the (few) addresses already taken, with the subnet row locked.
 */
async function claimIpv6(trx: Knex.Transaction, subnet: SubnetRow, portId: string): Promise<string | null> {
  await trx("subnets").where({ id: subnet.id }).forUpdate().first("id");
  const taken: { ip_address: string }[] = await trx("ip_allocations").where({ subnet_id: subnet.id }).select("ip_address");
  const address = firstFreeInPools(6, subnet.allocation_pools, taken.map((t) => t.ip_address));
  if (address === null) return null;
  await insertAddress(trx, subnet, address, portId);
  return address;
}

async function insertAddress(trx: Knex.Transaction, subnet: SubnetRow, address: string, portId: string): Promise<void> {
  const taken = await trx("ip_allocations")
    .insert({ subnet_id: subnet.id, ip_address: address, port_id: portId })
    .onConflict(["subnet_id", "ip_address"])
    .ignore()
    .returning("port_id");
  if (taken.length === 0) throw conflict(`IP address ${address} already allocated in subnet ${subnet.id}.`);
}

export async function createPort(trx: Knex.Transaction, spec: NewPort): Promise<CreatedPort> {
  // Key-share: the subnets cannot be deleted under us, and boots on them do not queue.
  const subnets: SubnetRow[] = await trx("subnets").where({ network_id: spec.networkId }).orderBy([{ column: "created_at" }, { column: "id" }]).forKeyShare();
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
    let address = w.address;
    if (address !== null) await insertAddress(trx, w.subnet, address, id);
    else address = w.subnet.ip_version === 6 ? await claimIpv6(trx, w.subnet, id) : await claimIpv4(trx, w.subnet, id);
    if (address === null) throw conflict(`No more IP addresses available on network ${spec.networkId} (subnet ${w.subnet.id}, ${w.subnet.cidr}).`);
    fixedIps.push({ subnet_id: w.subnet.id, ip_address: address });
  }
  return { id, mac_address: mac, fixed_ips: fixedIps };
}
