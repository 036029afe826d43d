/**
 * Reading hosts out of Postgres into HostState: every provider with its service's
 * status and its inventory and usage, in one statement per set of providers so that
 * usage and generation belong together. The view and the conductor's reschedule both
 * read hosts through here.
 */
import type { Knex } from "knex";
import { queryWithGenericPlan } from "../common/db/generic-plan.js";
import { prepared } from "../common/db/prepared.js";
import { RESOURCE_CLASSES, type ResourceClass } from "../common/messages.js";
import type { HostState } from "./host-state.js";
import { processTieKey } from "./tie-order.js";

interface ProviderRow {
  /** Null only in the row that carries a read's mark when nothing changed. */
  provider_id: string | null;
  host: string;
  hypervisor_hostname: string;
  generation: string | number;
  status: string;
  forced_down: boolean;
  service_zone: string | null;
  hypervisor_type: string;
  cpu_arch: string | null;
  failed_builds: number;
  last_seen_ms: string | number;
  resource_class: ResourceClass | null;
  total: number;
  reserved: number;
  min_unit: number;
  max_unit: number;
  step_size: number;
  allocation_ratio: number;
  used: number;
  instance_count: number;
}

/** The zone and metadata a host's aggregates give it. */
export interface HostAggregates {
  /** The zone of the host's first aggregate (by id) that sets one. */
  zone: string | null;
  metadata: Record<string, string[]>;
}

type Which = { all: true } | { ids: string[] } | { changedSinceXid: string };

/** A host as read, with the zone its service registered (an aggregate's zone may override it). */
export interface ReadHost {
  state: HostState;
  serviceZone: string | null;
}

/** The oldest transaction still running at this statement's snapshot: what a later read of changes starts from. */
const SNAPSHOT_XMIN = "pg_snapshot_xmin(pg_current_snapshot())::text";
/** The aggregates' epoch: it moves on any write to aggregates or their hosts (migration 006). */
const AGGREGATES_AT = "(SELECT aggregates_changed_at::text FROM scheduler_epochs WHERE id = 1)";
/** A timestamp as epoch milliseconds, the unit HostState keeps heartbeats in. */
const epochMs = (timestamp: string) => `(extract(epoch FROM ${timestamp}) * 1000)::bigint`;

function hostsQuery(which: Which): { sql: string; params: Knex.RawBinding[] } {
  let where = "TRUE";
  const params: Knex.RawBinding[] = [];
  if ("ids" in which) {
    where = "rp.id = ANY(?::uuid[])";
    params.push(`{${which.ids.join(",")}}`);
  } else if ("changedSinceXid" in which) {
    where = "rp.changed_xid >= ?::xid8";
    params.push(which.changedSinceXid);
  }
  // A few providers: everything about them by index probes. OFFSET 0 keeps each LATERAL
  // subquery from being pulled up into a join, which the planner would otherwise turn into
  // a hash join over every service (10,000 rows) whenever its statistics are stale or it
  // overestimates how many providers changed. All of them: hash joins, one pass each.
  const joins =
    "all" in which
      ? `JOIN compute_services cs ON cs.id = rp.compute_service_id
         LEFT JOIN inventories inv ON inv.provider_id = rp.id`
      : `CROSS JOIN LATERAL (SELECT * FROM compute_services s WHERE s.id = rp.compute_service_id OFFSET 0) cs
         LEFT JOIN LATERAL (SELECT * FROM inventories i WHERE i.provider_id = rp.id OFFSET 0) inv ON TRUE`;
  const usage =
    "all" in which
      ? `LEFT JOIN (SELECT provider_id, resource_class, sum(used) AS used FROM allocations GROUP BY 1, 2) u
                ON u.provider_id = rp.id AND u.resource_class = inv.resource_class
         LEFT JOIN (SELECT provider_id, count(DISTINCT consumer_id) AS n FROM allocations GROUP BY 1) c
                ON c.provider_id = rp.id`
      : `LEFT JOIN LATERAL (SELECT sum(a.used) AS used FROM allocations a
                              WHERE a.provider_id = rp.id AND a.resource_class = inv.resource_class) u ON TRUE
         LEFT JOIN LATERAL (SELECT count(DISTINCT a.consumer_id) AS n FROM allocations a WHERE a.provider_id = rp.id) c ON TRUE`;
  const sql = `SELECT rp.id AS provider_id, rp.generation, cs.host, cs.hypervisor_hostname, cs.status, cs.forced_down,
            cs.availability_zone AS service_zone, cs.hypervisor_type, cs.cpu_arch, cs.failed_builds,
            ${epochMs("cs.last_seen_at")} AS last_seen_ms,
            inv.resource_class, inv.total, inv.reserved, inv.min_unit, inv.max_unit, inv.step_size, inv.allocation_ratio,
            COALESCE(u.used, 0)::int AS used, COALESCE(c.n, 0)::int AS instance_count
       FROM resource_providers rp
       ${joins}
       ${usage}
      WHERE ${where}`;
  return { sql, params };
}

/** Providers (all, or some) as HostState, with aggregate data applied. */
export async function readHosts(db: Knex | Knex.Transaction, which: { all: true } | { ids: string[] }, aggregates: Map<string, HostAggregates>): Promise<ReadHost[]> {
  if ("ids" in which && which.ids.length === 0) return [];
  const { sql, params } = hostsQuery(which);
  const { rows } = (await prepared(db.raw(sql, params))) as { rows: ProviderRow[] };
  return toReadHosts(rows, aggregates);
}

/** What changed since a mark: providers, services (heartbeats aside), the aggregates' epoch, and the next mark. */
export interface Changes {
  mark: string;
  aggregatesAt: string;
  hosts: ReadHost[];
  services: ServiceRow[];
}

/**
 * The providers and services changed by transactions that had not finished at the
 * snapshot whose mark is `sinceXid` (each changed row carries the id of the transaction
 * that last changed it: migration 008), the aggregates' epoch, and this read's own mark,
 * in one statement (a round trip costs more than the statement on this kind of machine).
 * Every change that snapshot could not see was made by a transaction at least as new as
 * its oldest running one, so nothing is missed, whenever it committed.
 */
export async function readChanges(db: Knex, sinceXid: string, aggregates: Map<string, HostAggregates>): Promise<Changes> {
  const { sql, params } = hostsQuery({ changedSinceXid: sinceXid });
  // With its generic plan (common/db/generic-plan.ts): index probes from the changed rows
  // whatever the mark, where a custom plan cost more to make than to run.
  const rows = await queryWithGenericPlan<ProviderRow & { mark: string; aggregates_at: string | null; services: ServiceRow[] }>(
    db,
    db.raw(
      `SELECT m.mark, m.aggregates_at, m.services, h.*
         FROM (SELECT ${SNAPSHOT_XMIN} AS mark,
                      ${AGGREGATES_AT} AS aggregates_at,
                      (SELECT coalesce(json_agg(json_build_object(
                                'host', host, 'status', status, 'forced_down', forced_down, 'availability_zone', availability_zone,
                                'hypervisor_type', hypervisor_type, 'hypervisor_hostname', hypervisor_hostname, 'cpu_arch', cpu_arch,
                                'failed_builds', failed_builds, 'last_seen_ms', ${epochMs("last_seen_at")})), '[]')
                         FROM compute_services WHERE changed_xid >= ?::xid8) AS services) m
         LEFT JOIN (${sql}) h ON TRUE`,
      [sinceXid, ...params],
    ),
  );
  const first = rows[0]!;
  return { mark: first.mark, aggregatesAt: first.aggregates_at ?? "", hosts: toReadHosts(rows, aggregates), services: first.services };
}

/** The mark to read later changes from, and the aggregates' epoch: taken before a full read of hosts and aggregates. */
export async function readMark(db: Knex): Promise<{ mark: string; aggregatesAt: string }> {
  const { rows } = (await prepared(
    db.raw(`SELECT ${SNAPSHOT_XMIN} AS mark, ${AGGREGATES_AT} AS aggregates_at`),
  )) as { rows: { mark: string; aggregates_at: string | null }[] };
  return { mark: rows[0]!.mark, aggregatesAt: rows[0]!.aggregates_at ?? "" };
}

function toReadHosts(rows: ProviderRow[], aggregates: Map<string, HostAggregates>): ReadHost[] {
  const hosts = new Map<string, ReadHost>();
  for (const r of rows) {
    if (r.provider_id === null) continue; // the mark's row when nothing changed
    let h = hosts.get(r.provider_id)?.state;
    if (!h) {
      h = {
        providerId: r.provider_id,
        host: r.host,
        hypervisorHostname: r.hypervisor_hostname,
        generation: Number(r.generation),
        availabilityZone: r.service_zone,
        resources: {},
        instanceCount: r.instance_count,
        enabled: r.status === "enabled",
        forcedDown: r.forced_down,
        lastSeenMs: Number(r.last_seen_ms),
        hypervisorType: r.hypervisor_type,
        cpuArch: r.cpu_arch,
        aggregateMetadata: {},
        failedBuilds: r.failed_builds,
        tieKey: processTieKey(r.host),
      };
      applyAggregates(h, r.service_zone, aggregates.get(r.host));
      hosts.set(r.provider_id, { state: h, serviceZone: r.service_zone });
    }
    if (r.resource_class === null) continue;
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
  const out = [...hosts.values()];
  for (const h of out) h.state.resources = inCanonicalOrder(h.state.resources);
  return out;
}

/**
 * The same classes, added in RESOURCE_CLASSES order. Rows arrive in any order, and an
 * object's hidden class depends on the order its properties were added: hosts built in
 * different orders would make every filter's and weigher's property read polymorphic.
 */
function inCanonicalOrder(r: HostState["resources"]): HostState["resources"] {
  const out: HostState["resources"] = {};
  for (const rc of RESOURCE_CLASSES) if (r[rc] !== undefined) out[rc] = r[rc];
  return out;
}

/** An aggregate's zone wins over the one the service registered (as Nova's host aggregates do). */
export function applyAggregates(h: HostState, serviceZone: string | null, agg: HostAggregates | undefined): void {
  h.availabilityZone = agg?.zone ?? serviceZone;
  h.aggregateMetadata = agg?.metadata ?? {};
}

/** Every host's aggregate zone and metadata values. */
export async function readAggregates(db: Knex | Knex.Transaction): Promise<Map<string, HostAggregates>> {
  const rows: { host: string; availability_zone: string | null; metadata: Record<string, unknown> | null }[] = await db("aggregate_hosts as ah")
    .join("aggregates as a", "a.id", "ah.aggregate_id")
    .orderBy("a.id")
    .select("ah.host", "a.availability_zone", "a.metadata");
  const out = new Map<string, HostAggregates>();
  for (const r of rows) {
    let agg = out.get(r.host);
    if (!agg) out.set(r.host, (agg = { zone: null, metadata: {} }));
    if (agg.zone === null && r.availability_zone) agg.zone = r.availability_zone;
    for (const [k, v] of Object.entries(r.metadata ?? {})) {
      if (v === null || v === undefined) continue;
      const values = (agg.metadata[k] ??= []);
      const s = String(v);
      if (!values.includes(s)) values.push(s);
    }
  }
  return out;
}

export interface ServiceRow {
  host: string;
  status: string;
  forced_down: boolean;
  availability_zone: string | null;
  hypervisor_type: string;
  hypervisor_hostname: string;
  cpu_arch: string | null;
  failed_builds: number;
  last_seen_ms: string | number;
}

/** The database's clock (epoch ms), and the last heartbeat of each service not heard from within `freshWithinMs`. */
export async function readStaleLiveness(db: Knex | Knex.Transaction, freshWithinMs: number): Promise<{ nowMs: number; stale: { host: string; last_seen_ms: number }[] }> {
  const { rows } = (await prepared(
    db.raw(
      `SELECT ${epochMs("now()")} AS now_ms,
              coalesce((SELECT json_agg(json_build_object('host', host, 'last_seen_ms', ${epochMs("last_seen_at")}))
                          FROM compute_services WHERE last_seen_at < now() - make_interval(secs => ?::double precision / 1000)), '[]') AS stale`,
      [freshWithinMs],
    ),
  )) as { rows: { now_ms: number; stale: { host: string; last_seen_ms: number }[] }[] };
  return { nowMs: rows[0]!.now_ms, stale: rows[0]!.stale };
}
