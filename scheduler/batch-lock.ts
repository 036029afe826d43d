/**
 * Locking the boots a batch places, with everything the batch needs to know about them
 * in the same statement: the request id of their create action, their server group and
 * policy, and their ports (the spawn job carries them). One round trip instead of four.
 */
import type { Knex } from "knex";
import type { ServerGroupPolicy } from "./filters/index.js";
import type { PlaceableInstance } from "./place.js";
import type { PortRow, SpawnSource } from "./spawn-spec.js";

/**
 * Which instances a batch takes: named ones (waiting for their locks), or the oldest
 * waiting ones, with the whole multi-create of a job's own boot (`first`, its id) first.
 */
export type BatchSelection = { ids: string[] } | { pending: number; first?: string; minAgeSec?: number };

export interface LockedBoot extends PlaceableInstance {
  create_request_id: string | null;
  group_id: string | null;
  group_policy: ServerGroupPolicy | null;
  port_rows: PortRow[] | null;
}

// Sub-selects in the select list are not locked by FOR UPDATE; only the instance rows are.
// The addresses are read per port by an index probe (OFFSET 0 keeps the planner from
// turning it into a hash join over every address, which it did with stale statistics
// while thousands of boots were being written: a scan of ip_allocations per boot).
const EXTRAS = `
  (SELECT ia.request_id FROM instance_actions ia
    WHERE ia.instance_id = instances.id AND ia.action = 'create' ORDER BY ia.id LIMIT 1) AS create_request_id,
  (SELECT m.group_id FROM server_group_members m WHERE m.instance_id = instances.id LIMIT 1) AS group_id,
  (SELECT g.policy FROM server_group_members m JOIN server_groups g ON g.id = m.group_id
    WHERE m.instance_id = instances.id LIMIT 1) AS group_policy,
  (SELECT json_agg(json_build_object(
            'id', p.id, 'network_id', p.network_id, 'network_name', n.name, 'mtu', n.mtu, 'mac_address', p.mac_address,
            'subnet_id', a.subnet_id, 'ip_address', a.ip_address, 'cidr', s.cidr, 'gateway_ip', s.gateway_ip,
            'dns_nameservers', s.dns_nameservers, 'network_type', n.network_type, 'physical_network', n.physical_network,
            'segmentation_id', n.segmentation_id, 'device_id', p.device_id)
          ORDER BY p.device_index, s.ip_version, s.created_at)
     FROM ports p JOIN networks n ON n.id = p.network_id
     LEFT JOIN LATERAL (SELECT a.subnet_id, a.ip_address FROM ip_allocations a WHERE a.port_id = p.id OFFSET 0) a ON TRUE
     LEFT JOIN subnets s ON s.id = a.subnet_id
    WHERE p.device_id = instances.id) AS port_rows`;

/**
 * The instance columns a batch reads (what placing, failing and the spawn job use), named
 * rather than `instances.*` so that the statement can be prepared: unprepared, parsing and
 * planning it were most of its 1.2 ms. The type makes the list complete. (Postgres still
 * plans it for every run, its custom plans always costing less than the generic one: 0
 * generic plans in 320 runs in B4; what preparing saves is the parse.)
 */
const COLUMNS: Record<Exclude<keyof PlaceableInstance | keyof SpawnSource, "hostname">, true> = {
  id: true, seq: true, name: true, project_id: true, user_id: true, vm_state: true, task_state: true, power_state: true,
  host: true, availability_zone: true, flavor: true, image: true, metadata: true, config_drive: true, user_data: true,
  attempts: true, alternates: true, tried_hosts: true, scheduler_hints: true, launch_index: true, key_name: true,
};
const SELECT = `${Object.keys(COLUMNS).map((c) => `instances.${c}`).join(", ")}, ${EXTRAS}`;

/** A boot waiting for a host, as the waiting-boots index (migration 009) is defined: written as literals so that a generic plan can use it too. */
const WAITING = "vm_state = 'building' AND task_state = 'scheduling' AND host IS NULL";
const PLAIN_COLUMNS = Object.keys(COLUMNS).join(", ");

/**
 * The statement that locks a batch's boots, not yet run: it is the first statement of the
 * placement's transaction and carries its BEGIN, as a prepared statement run by EXECUTE
 * (common/db/begun-with.ts).
 *
 * Waiting boots are taken oldest first by walking the waiting-boots index, locking as it
 * goes and stopping at the batch's size (FOR UPDATE SKIP LOCKED under the LIMIT): a sort
 * of every waiting boot, which `ORDER BY (reservation_id = …) DESC, …` needed, cost 27 to
 * 45 ms a batch with 7,500 waiting. A job's own multi-create comes first from the
 * reservation's index, and the oldest others fill the batch up.
 */
export function lockQuery(trx: Knex, which: BatchSelection): Knex.QueryBuilder | Knex.Raw {
  const cols = trx.raw(SELECT);
  if ("ids" in which) {
    return trx("instances").whereRaw("id = ANY(?::uuid[])", [which.ids]).orderBy("seq").forUpdate().select(cols);
  }
  if (!which.first) {
    const q = trx("instances").whereRaw(WAITING);
    if (which.minAgeSec) q.where("updated_at", "<", trx.raw("now() - make_interval(secs => ?)", [which.minAgeSec]));
    return q.orderBy("seq").limit(which.pending).forUpdate().skipLocked().select(cols);
  }
  // The job's boot and the rest of its multi-create, however many (a multi-create is placed
  // in one pass), then the oldest others up to the batch's size: found by the job's boot's
  // id, so no read comes before the transaction. A job whose boot no longer waits (another
  // batch took it, and with it the multi-create) takes nothing: with three schedulers,
  // letting it take whatever else waits made more batches race for the same hosts (B4's
  // decisions/s 299 -> 266). The columns come from the locking scans, which see each row
  // as it is once locked.
  return trx.raw(
    `WITH job AS (SELECT reservation_id FROM instances WHERE id = ? AND ${WAITING}),
     mine AS (
       SELECT ${PLAIN_COLUMNS} FROM instances
        WHERE reservation_id = (SELECT reservation_id FROM job) AND ${WAITING}
        ORDER BY seq FOR UPDATE SKIP LOCKED),
     others AS (
       SELECT ${PLAIN_COLUMNS} FROM instances
        WHERE ${WAITING} AND reservation_id <> (SELECT reservation_id FROM job)
        ORDER BY seq LIMIT greatest(?::int - (SELECT count(*) FROM mine), 0) FOR UPDATE SKIP LOCKED)
     SELECT ${SELECT}
       FROM (SELECT *, 0 AS part FROM mine UNION ALL SELECT *, 1 AS part FROM others) instances
      ORDER BY instances.part, (instances.id = ?) DESC, instances.seq`,
    [which.first, which.pending, which.first],
  );
}

/**
 * How the lock runs: prepared, with its generic plan. Every shape of lockQuery is index
 * probes or an index walk whatever its values, but Postgres kept planning the ids and
 * oldest-first shapes afresh on every run (their custom plans estimated cheaper): 0.6 to
 * 1.2 ms of a lock that then runs in 0.6 to 1.7 (7,500 boots waiting; each generic plan
 * checked with EXPLAIN).
 */
export const LOCK_OPTIONS = { prepare: true, genericPlan: true } as const;
