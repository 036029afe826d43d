/**
 * A claim writes the instance's allocation rows on a provider only if the provider's
 * generation is still the one the scheduler read (compare and set). Any change to the
 * provider's allocations bumps the generation, so a claim decided on stale usage
 * fails and the caller reads again: several schedulers can never over-commit a host.
 *
 * With `skipLocked`, a provider another transaction is claiming on right now counts as
 * a lost race instead of a wait: a scheduler placing a batch moves on to its next
 * choice rather than queueing behind (or deadlocking with) another batch.
 */
import type { Knex } from "knex";
import type { HostState, ResourceRequest } from "./host-state.js";

export async function claim(
  trx: Knex.Transaction,
  host: HostState,
  consumerId: string,
  resources: ResourceRequest,
  opts: { skipLocked?: boolean } = {},
): Promise<boolean> {
  const q = trx("resource_providers").where({ id: host.providerId, generation: host.generation });
  if (opts.skipLocked) q.whereIn("id", trx("resource_providers").where({ id: host.providerId }).forUpdate().skipLocked().select("id"));
  const bumped = await q.update({ generation: host.generation + 1 });
  if (bumped === 0) return false;
  const rows = Object.entries(resources)
    .filter(([, used]) => used !== undefined && used > 0)
    .map(([resource_class, used]) => ({ provider_id: host.providerId, consumer_id: consumerId, resource_class, used }));
  if (rows.length > 0) await trx("allocations").insert(rows);
  return true;
}
