/**
 * Nova's sort_key/sort_dir for servers, and keyset pagination that stays stable for any
 * sort: the marker row's own values decide where the next page starts (compared in
 * SQL, so microseconds and NULLs are kept).
 */
import { badRequest, forbidden } from "../../common/errors.js";

/** Nova's sort keys mapped onto our columns (nova/api/openstack/compute/schemas/servers.py). */
const SORT_COLUMNS: Record<string, string> = {
  access_ip_v4: "access_ip_v4",
  access_ip_v6: "access_ip_v6",
  availability_zone: "availability_zone",
  config_drive: "config_drive",
  created_at: "created_at",
  display_description: "description",
  display_name: "name",
  host: "host",
  image_ref: "image_id",
  key_name: "key_name",
  launch_index: "launch_index",
  launched_at: "launched_at",
  locked: "locked",
  node: "node",
  power_state: "power_state",
  progress: "progress",
  project_id: "project_id",
  task_state: "task_state",
  terminated_at: "terminated_at",
  updated_at: "updated_at",
  user_id: "user_id",
  uuid: "id",
  vm_state: "vm_state",
};
const ADMIN_ONLY = new Set(["host", "node"]);
/** Sort columns that are never NULL: a marker bound on them can start an index scan. */
const NOT_NULL = new Set(["created_at", "updated_at", "name", "project_id", "user_id", "vm_state", "power_state", "config_drive", "launch_index", "progress", "locked", "id"]);

export interface SortKey {
  column: string;
  dir: "asc" | "desc";
}

const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export function parseSort(keys: string | string[] | undefined, dirs: string | string[] | undefined, isAdmin: boolean): SortKey[] {
  const k = list(keys);
  const d = list(dirs).map((x) => x.toLowerCase());
  for (const dir of d) if (dir !== "asc" && dir !== "desc") throw badRequest(`Invalid sort direction: ${dir}`);
  const out: SortKey[] = [];
  if (k.length === 0) {
    out.push({ column: "created_at", dir: (d[0] as "asc" | "desc" | undefined) ?? "desc" });
  } else {
    k.forEach((key, i) => {
      const column = SORT_COLUMNS[key];
      if (!column) throw badRequest(`Invalid sort_key: ${key}`);
      if (ADMIN_ONLY.has(key) && !isAdmin) throw forbidden(`Only administrators can sort servers by ${key}`);
      out.push({ column, dir: (d[i] as "asc" | "desc" | undefined) ?? (d[d.length - 1] as "asc" | "desc" | undefined) ?? "desc" });
    });
  }
  // The id makes the order total, so pages neither repeat nor skip a server.
  if (!out.some((s) => s.column === "id")) out.push({ column: "id", dir: out[out.length - 1]!.dir });
  return out;
}

/** ORDER BY with NULLs as the smallest value in both directions. */
export function orderBySql(keys: SortKey[]): string {
  return keys.map((k) => `"${k.column}" ${k.dir} ${k.dir === "asc" ? "NULLS FIRST" : "NULLS LAST"}`).join(", ");
}

/** Rows after the marker in this order: OR over i of (the first i-1 keys equal, key i beyond). */
export function afterMarkerSql(keys: SortKey[]): string {
  const m = (col: string) => `(SELECT "${col}" FROM instances WHERE id = :marker)`;
  const ors = keys.map((k, i) => {
    const equal = keys.slice(0, i).map((e) => `"${e.column}" IS NOT DISTINCT FROM ${m(e.column)}`);
    const beyond =
      k.dir === "asc"
        ? `("${k.column}" > ${m(k.column)} OR ("${k.column}" IS NOT NULL AND ${m(k.column)} IS NULL))`
        : `("${k.column}" < ${m(k.column)} OR ("${k.column}" IS NULL AND ${m(k.column)} IS NOT NULL))`;
    return `(${[...equal, beyond].join(" AND ")})`;
  });
  // Implied by the ORs when the first key is never NULL; an index on it then starts at the marker
  // instead of filtering every row before it.
  const first = keys[0];
  const bound = first && NOT_NULL.has(first.column) ? `"${first.column}" ${first.dir === "asc" ? ">=" : "<="} ${m(first.column)} AND ` : "";
  return `(${bound}(${ors.join(" OR ")}))`;
}
