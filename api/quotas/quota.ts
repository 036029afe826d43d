/**
 * Nova's quotas: the default limits, per-project overrides (the quotas table), usage
 * counted from what exists (as Nova counts since Pike, no usage table), and the check
 * a boot makes inside its own transaction with the project's quota_locks row locked,
 * so two boots of one project cannot both take the last slot.
 */
import type { Knex } from "knex";
import { NovaError } from "../../common/errors.js";

type Tx = Knex | Knex.Transaction;

/** Nova's [quota] defaults; -1 is unlimited. Keys and order as the 2.1 quota_set shows them. */
export const QUOTA_DEFAULTS = {
  cores: 20,
  fixed_ips: -1,
  floating_ips: 10,
  injected_file_content_bytes: 10240,
  injected_file_path_bytes: 255,
  injected_files: 5,
  instances: 10,
  key_pairs: 100,
  metadata_items: 128,
  ram: 51200,
  security_group_rules: 20,
  security_groups: 10,
  server_group_members: 10,
  server_groups: 10,
} as const;

export type QuotaResource = keyof typeof QUOTA_DEFAULTS;
export type QuotaValues = Record<QuotaResource, number>;
export const QUOTA_RESOURCES = Object.keys(QUOTA_DEFAULTS) as QuotaResource[];

export async function projectLimits(db: Tx, projectId: string): Promise<QuotaValues> {
  const rows: { resource: string; hard_limit: number }[] = await db("quotas").where({ project_id: projectId }).select("resource", "hard_limit");
  const out: QuotaValues = { ...QUOTA_DEFAULTS };
  for (const r of rows) if (r.resource in out) out[r.resource as QuotaResource] = r.hard_limit;
  return out;
}

export interface ComputeUsage {
  instances: number;
  cores: number;
  ram: number;
}

/**
 * Instances, vCPUs and RAM of a project's undeleted servers, from their flavor snapshots.
 * A deleted server gives its share back at once; so does a server in ERROR that holds
 * no allocation on a host (a failed boot: as Nova counts from placement, the share of
 * a server that never got or has lost its host is free). A server in ERROR that still
 * sits on a host keeps counting until it is deleted.
 */
export async function computeUsage(db: Tx, projectId: string): Promise<ComputeUsage> {
  const row = (await db("instances")
    .where({ project_id: projectId })
    .whereNot("vm_state", "deleted")
    .whereNot((w) =>
      w.where("vm_state", "error").whereNotExists(db("allocations").whereRaw("allocations.consumer_id = instances.id").select(db.raw("1"))),
    )
    .select(
      db.raw("count(*)::int AS instances"),
      db.raw("coalesce(sum((flavor->>'vcpus')::int), 0)::int AS cores"),
      db.raw("coalesce(sum((flavor->>'ram')::int), 0)::int AS ram"),
    )
    .first()) as ComputeUsage;
  return row;
}

/** Everything a project uses, for /detail and /limits. */
export async function projectUsage(db: Tx, projectId: string): Promise<QuotaValues> {
  const compute = await computeUsage(db, projectId);
  const [kp] = await db("key_pairs").where({ project_id: projectId }).count<{ n: string }[]>("* as n");
  const [sg] = await db("server_groups").where({ project_id: projectId }).count<{ n: string }[]>("* as n");
  const out = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, 0])) as QuotaValues;
  out.instances = compute.instances;
  out.cores = compute.cores;
  out.ram = compute.ram;
  out.key_pairs = Number(kp!.n);
  out.server_groups = Number(sg!.n);
  return out;
}

const over = (limit: number, used: number, requested: number) => limit >= 0 && used + requested > limit;

/**
 * Locks the project's quota row for the rest of the transaction and refuses the boot
 * with Nova's 403 when instances, cores or RAM would go over the limit. A project
 * unlimited in all three takes no lock and counts nothing, so its boots do not queue
 * behind each other (a limit set meanwhile applies from the next boot on). Returns the
 * project's limits.
 */
export async function enforceBootQuota(trx: Knex.Transaction, projectId: string, flavor: { vcpus: number; ram: number }): Promise<QuotaValues> {
  const unlocked = await projectLimits(trx, projectId);
  if (unlocked.instances < 0 && unlocked.cores < 0 && unlocked.ram < 0) return unlocked;
  await trx("quota_locks").insert({ project_id: projectId }).onConflict("project_id").ignore();
  await trx("quota_locks").where({ project_id: projectId }).forUpdate().first();
  // Read again under the lock: a limit changed while we waited counts.
  const limits = await projectLimits(trx, projectId);
  const used = await computeUsage(trx, projectId);
  const requested: ComputeUsage = { instances: 1, cores: flavor.vcpus, ram: flavor.ram };
  for (const r of ["instances", "cores", "ram"] as const) {
    if (over(limits[r], used[r], requested[r])) {
      throw new NovaError(403, `Quota exceeded for ${r}: Requested ${requested[r]}, but already used ${used[r]} of ${limits[r]} ${r}`);
    }
  }
  return limits;
}
