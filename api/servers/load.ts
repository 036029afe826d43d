/** Reads what the server view needs, for one server or a page of them, in a fixed number of queries. */
import type { Knex } from "knex";
import type { Db } from "../../common/db/knex.js";
import type { AddressRow, FaultRow, HostStatus, ServerRow } from "./view.js";

/** A server's view columns with its fixed IPs, as serverRows selects them. */
export type ServerPageRow = ServerRow & { addresses: AddressRow[] };

const SERVER_VIEW_COLUMNS: (keyof ServerRow)[] = [
  "id", "seq", "name", "project_id", "user_id", "vm_state", "task_state", "power_state", "host", "node", "availability_zone",
  "image_id", "metadata", "config_drive", "key_name", "access_ip_v4", "access_ip_v6", "progress",
];

/** A timestamp as Nova prints it (seconds, UTC, `Z`), under a name of its own: ORDER BY would take an output column named like the table's. */
const novaTime = (column: string, as: keyof ServerRow) =>
  `to_char(instances.${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS ${as}`;

const COMPUTED_COLUMNS = [
  `instances.flavor->>'id' AS flavor_id`,
  novaTime("created_at", "created_iso"),
  novaTime("updated_at", "updated_iso"),
  novaTime("launched_at", "launched_iso"),
  novaTime("terminated_at", "terminated_iso"),
].join(", ");

/**
 * Each server's fixed IPs as a JSON array (unordered: addressesView orders them): a
 * correlated subquery, so a page costs index probes per server rather than a join the
 * planner may turn into scans of every port and address.
 */
const ADDRESSES_SQL = `(
  SELECT coalesce(json_agg(json_build_object('network_name', n.name, 'mac_address', p.mac_address, 'device_index', p.device_index, 'ip_address', a.ip_address)), '[]'::json)
    FROM ports p JOIN networks n ON n.id = p.network_id JOIN ip_allocations a ON a.port_id = p.id
   WHERE p.device_id = instances.id) AS addresses`;

/** What the server view reads: the columns it shows (not the boot's snapshots and bookkeeping) and the addresses. */
export function serverViewColumns(db: Db): (string | Knex.Raw)[] {
  return [...SERVER_VIEW_COLUMNS.map((c) => `instances.${c}`), db.raw(COMPUTED_COLUMNS), db.raw(ADDRESSES_SQL)];
}

export async function loadFaults(db: Db, rows: Pick<ServerRow, "id" | "vm_state">[]): Promise<Map<string, FaultRow>> {
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
