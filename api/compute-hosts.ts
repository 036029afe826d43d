/** Compute services with their provider's inventory and usage, as the admin views show them. */
import type { Db } from "../common/db/knex.js";

export const DEFAULT_AZ = "nova";

export interface ComputeHostRow {
  id: string;
  host: string;
  status: string;
  disabled_reason: string | null;
  forced_down: boolean;
  availability_zone: string | null;
  hypervisor_type: string;
  hypervisor_version: number;
  hypervisor_hostname: string;
  host_ip: string;
  last_seen_at: Date;
  updated_at: Date;
  is_up: boolean;
}

export async function loadComputeHosts(db: Db, downAfterSec: number, id?: string): Promise<ComputeHostRow[]> {
  const q = db("compute_services")
    .select("*", db.raw("(last_seen_at > now() - make_interval(secs => ?)) AND NOT forced_down AS is_up", [downAfterSec]))
    .orderBy("host");
  if (id !== undefined) q.where({ id });
  return q;
}

export interface Usage {
  total: Record<string, number>;
  used: Record<string, number>;
  runningVms: number;
}

export async function loadUsage(db: Db, serviceIds: string[]): Promise<Map<string, Usage>> {
  const out = new Map<string, Usage>();
  if (serviceIds.length === 0) return out;
  const inv: { compute_service_id: string; resource_class: string; total: number; used: number }[] = await db("resource_providers as rp")
    .join("inventories as i", "i.provider_id", "rp.id")
    .leftJoin(
      db("allocations").select("provider_id", "resource_class").sum({ used: "used" }).groupBy("provider_id", "resource_class").as("a"),
      function () {
        this.on("a.provider_id", "=", "rp.id").andOn("a.resource_class", "=", "i.resource_class");
      },
    )
    .whereIn("rp.compute_service_id", serviceIds)
    .select("rp.compute_service_id", "i.resource_class", "i.total", db.raw("coalesce(a.used, 0)::int as used"));
  const vms: { host: string; compute_service_id: string; n: number }[] = await db("instances as inst")
    .join("compute_services as cs", "cs.host", "inst.host")
    .whereIn("cs.id", serviceIds)
    .whereNot("inst.vm_state", "deleted")
    .groupBy("cs.id", "inst.host")
    .select("cs.id as compute_service_id", "inst.host", db.raw("count(*)::int as n"));
  for (const id of serviceIds) out.set(id, { total: {}, used: {}, runningVms: 0 });
  for (const r of inv) {
    const u = out.get(r.compute_service_id)!;
    u.total[r.resource_class] = r.total;
    u.used[r.resource_class] = r.used;
  }
  for (const v of vms) out.get(v.compute_service_id)!.runningVms = v.n;
  return out;
}
