/**
 * Reads the hosts a request could go to: compute services enabled, not forced down and
 * heard from recently, with each provider's inventory, usage and generation read in
 * one statement, so usage and generation belong together.
 */
import type { Knex } from "knex";
import type { ResourceClass } from "../common/messages.js";
import type { ServerGroupPolicy, ServerGroupSpec } from "./filters/types.js";
import type { HostState } from "./host-state.js";

interface Row {
  provider_id: string;
  host: string;
  hypervisor_hostname: string;
  generation: number;
  availability_zone: string | null;
  resource_class: ResourceClass;
  total: number;
  reserved: number;
  min_unit: number;
  max_unit: number;
  step_size: number;
  allocation_ratio: number;
  used: number;
  instance_count: number;
}

export async function loadCandidates(db: Knex | Knex.Transaction, serviceDownTimeSec: number, providerId?: string): Promise<HostState[]> {
  const params: (string | number)[] = [serviceDownTimeSec];
  let extra = "";
  if (providerId) {
    extra = "AND rp.id = ?";
    params.push(providerId);
  }
  const { rows } = (await db.raw(
    `SELECT rp.id AS provider_id, cs.host, cs.hypervisor_hostname, rp.generation,
            -- (compute extras) an aggregate's availability zone wins over the one the service registered
            COALESCE((SELECT a.availability_zone FROM aggregates a JOIN aggregate_hosts ah ON ah.aggregate_id = a.id
                       WHERE ah.host = cs.host AND a.availability_zone IS NOT NULL ORDER BY a.id LIMIT 1),
                     cs.availability_zone) AS availability_zone,
            inv.resource_class, inv.total, inv.reserved, inv.min_unit, inv.max_unit, inv.step_size, inv.allocation_ratio,
            COALESCE(u.used, 0)::int AS used,
            COALESCE(c.n, 0)::int AS instance_count
       FROM resource_providers rp
       JOIN compute_services cs ON cs.id = rp.compute_service_id
       JOIN inventories inv ON inv.provider_id = rp.id
       LEFT JOIN (SELECT provider_id, resource_class, sum(used) AS used FROM allocations GROUP BY 1, 2) u
              ON u.provider_id = rp.id AND u.resource_class = inv.resource_class
       LEFT JOIN (SELECT provider_id, count(DISTINCT consumer_id) AS n FROM allocations GROUP BY 1) c
              ON c.provider_id = rp.id
      WHERE cs.status = 'enabled' AND NOT cs.forced_down
        AND cs.last_seen_at > now() - make_interval(secs => ?) ${extra}`,
    params,
  )) as { rows: Row[] };
  const hosts = new Map<string, HostState>();
  for (const r of rows) {
    let h = hosts.get(r.provider_id);
    if (!h) {
      h = {
        providerId: r.provider_id,
        host: r.host,
        hypervisorHostname: r.hypervisor_hostname,
        generation: r.generation,
        availabilityZone: r.availability_zone,
        resources: {},
        instanceCount: r.instance_count,
      };
      hosts.set(r.provider_id, h);
    }
    h.resources[r.resource_class] = {
      total: r.total,
      reserved: r.reserved,
      min_unit: r.min_unit,
      max_unit: r.max_unit,
      step_size: r.step_size,
      allocation_ratio: r.allocation_ratio,
      used: r.used,
    };
  }
  return [...hosts.values()];
}

/**
 * (compute extras) The server group an instance joined at boot, with the hosts of its
 * other placed, undeleted members. Locks the group row for the rest of the placement
 * transaction, so two members of one group are never placed at the same time and a
 * hard policy cannot be broken by a race between schedulers.
 */
export async function loadServerGroupSpec(trx: Knex.Transaction, instanceId: string): Promise<ServerGroupSpec | null> {
  const group: { id: string; policy: ServerGroupPolicy } | undefined = await trx("server_groups as g")
    .join("server_group_members as m", "m.group_id", "g.id")
    .where("m.instance_id", instanceId)
    .first("g.id", "g.policy");
  if (!group) return null;
  await trx("server_groups").where({ id: group.id }).forUpdate().first("id");
  const rows: { host: string; n: number }[] = await trx("server_group_members as m")
    .join("instances as i", "i.id", "m.instance_id")
    .where("m.group_id", group.id)
    .whereNot("m.instance_id", instanceId)
    .whereNot("i.vm_state", "deleted")
    .whereNotNull("i.host")
    .groupBy("i.host")
    .select("i.host", trx.raw("count(*)::int AS n"));
  return { id: group.id, policy: group.policy, hosts: Object.fromEntries(rows.map((r) => [r.host, r.n])) };
}
