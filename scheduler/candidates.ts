/**
 * Hosts read straight from Postgres, for the paths that decide on one host inside a
 * transaction (a reschedule to an alternate, a same-host resize), and the server group
 * a boot joined. The scheduler's own decisions read the in-memory view instead.
 */
import type { Knex } from "knex";
import type { ServerGroupPolicy, ServerGroupSpec } from "./filters/types.js";
import type { HostState } from "./host-state.js";
import { readAggregates, readHosts } from "./host-state-rows.js";

/** A host that can take work now: enabled, not forced down, heard from within the down time. */
export function isUsable(h: HostState, upSinceMs: number): boolean {
  return h.enabled && !h.forcedDown && h.lastSeenMs >= upSinceMs;
}

export async function loadCandidates(db: Knex | Knex.Transaction, serviceDownTimeSec: number, providerId?: string): Promise<HostState[]> {
  const aggregates = await readAggregates(db);
  const read = await readHosts(db, providerId ? { ids: [providerId] } : { all: true }, aggregates);
  const upSince = Date.now() - serviceDownTimeSec * 1000;
  return read.map((r) => r.state).filter((h) => isUsable(h, upSince));
}

/**
 * (compute extras) The server groups of some instances, with the hosts of each group's
 * placed, undeleted members. Locks the group rows (in id order, so two schedulers never
 * deadlock) for the rest of the placement transaction: two members of one group are
 * never placed at the same time, and a hard policy cannot be broken by a race.
 */
export async function loadServerGroupSpecs(
  trx: Knex.Transaction,
  memberships: { instance_id: string; group_id: string; policy: ServerGroupPolicy }[],
): Promise<Map<string, ServerGroupSpec>> {
  const out = new Map<string, ServerGroupSpec>();
  if (memberships.length === 0) return out;
  const instanceIds = memberships.map((m) => m.instance_id);
  const groupIds = [...new Set(memberships.map((m) => m.group_id))].sort();
  // One statement locks them all, in id order (the lock is taken above the sort).
  await trx("server_groups").whereIn("id", groupIds).orderBy("id").forUpdate().select("id");
  const rows: { group_id: string; host: string; n: number }[] = await trx("server_group_members as m")
    .join("instances as i", "i.id", "m.instance_id")
    .whereIn("m.group_id", groupIds)
    .whereNotIn("m.instance_id", instanceIds)
    .whereNot("i.vm_state", "deleted")
    .whereNotNull("i.host")
    .groupBy("m.group_id", "i.host")
    .select("m.group_id", "i.host", trx.raw("count(*)::int AS n"));
  // One spec object per group, shared by the batch's members, so a placement updates the next member's view.
  const specs = new Map<string, ServerGroupSpec>();
  for (const m of memberships) {
    if (!specs.has(m.group_id)) specs.set(m.group_id, { id: m.group_id, policy: m.policy, hosts: {} });
    out.set(m.instance_id, specs.get(m.group_id)!);
  }
  for (const r of rows) specs.get(r.group_id)!.hosts[r.host] = r.n;
  return out;
}

/** The hosts of the named instances that still live, for same_host / different_host hints. */
export async function hostsOfInstances(trx: Knex.Transaction, ids: string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows: { id: string; host: string }[] = await trx("instances").whereIn("id", ids).whereNot("vm_state", "deleted").whereNotNull("host").select("id", "host");
  return new Map(rows.map((r) => [r.id, r.host]));
}
