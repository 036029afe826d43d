/** Reads what the server view needs, for one server or a page of them, in a fixed number of queries. */
import type { Knex } from "knex";
import type { Db } from "../../common/db/knex.js";
import type { AddressRow, FaultRow, HostStatus, InstanceRow } from "./view.js";

export async function loadAddresses(db: Db, ids: string[]): Promise<Map<string, AddressRow[]>> {
  const out = new Map<string, AddressRow[]>();
  if (ids.length === 0) return out;
  const rows: (AddressRow & { device_id: string })[] = await db("ports")
    .join("networks", "networks.id", "ports.network_id")
    .join("ip_allocations", "ip_allocations.port_id", "ports.id")
    .whereIn("ports.device_id", ids)
    .select("ports.device_id", "ports.mac_address", "ports.device_index", "networks.name as network_name", "ip_allocations.ip_address");
  for (const r of rows) out.set(r.device_id, [...(out.get(r.device_id) ?? []), r]);
  return out;
}

export async function loadFaults(db: Db, rows: InstanceRow[]): Promise<Map<string, FaultRow>> {
  const ids = rows.filter((r) => r.vm_state === "error" || r.vm_state === "deleted").map((r) => r.id);
  const out = new Map<string, FaultRow>();
  if (ids.length === 0) return out;
  const faults: (FaultRow & { instance_id: string })[] = await db("instance_faults")
    .distinctOn("instance_id")
    .whereIn("instance_id", ids)
    .orderBy([{ column: "instance_id" }, { column: "created_at", order: "desc" }, { column: "id", order: "desc" }])
    .select("instance_id", "code", "message", "details", "created_at");
  for (const f of faults) out.set(f.instance_id, f);
  return out;
}

/** Undeleted servers of one project, or of every project for an admin asking for all_tenants. */
export function liveServers(db: Db, scope: { projectId: string | null }): Knex.QueryBuilder {
  const q = db("instances").whereNot("vm_state", "deleted");
  return scope.projectId === null ? q : q.where("project_id", scope.projectId);
}

/**
 * Nova's host_status (microversion 2.16, admins only) for each host: "" when the server has
 * no host or the host has no compute service; DOWN when the service is forced down;
 * MAINTENANCE when it is disabled; UP when it heartbeats within the down time; UNKNOWN
 * when its heartbeats stopped (Nova cannot tell a dead host from a cut-off one).
 */
export async function loadHostStatuses(db: Db, hosts: (string | null)[], serviceDownTimeSec: number): Promise<Map<string, HostStatus>> {
  const wanted = [...new Set(hosts.filter((h): h is string => h !== null))];
  const out = new Map<string, HostStatus>();
  if (wanted.length === 0) return out;
  const rows: { host: string; forced_down: boolean; status: string; up: boolean }[] = await db("compute_services")
    .whereIn("host", wanted)
    .select("host", "forced_down", "status", db.raw("(last_seen_at > now() - make_interval(secs => ?)) AS up", [serviceDownTimeSec]));
  for (const r of rows) out.set(r.host, r.forced_down ? "DOWN" : r.status !== "enabled" ? "MAINTENANCE" : r.up ? "UP" : "UNKNOWN");
  return out;
}
