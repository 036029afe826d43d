import type { Knex } from "knex";

/**
 * Frees an instance's allocations (on one provider, or all) and bumps each affected
 * provider's generation, so a scheduler that read the old usage loses its
 * compare-and-set and reads again.
 */
export async function releaseAllocations(trx: Knex.Transaction, consumerId: string, providerId?: string): Promise<void> {
  const q = trx("allocations").where({ consumer_id: consumerId });
  if (providerId) q.where({ provider_id: providerId });
  const freed: { provider_id: string }[] = await q.delete().returning("provider_id");
  const providers = [...new Set(freed.map((r) => r.provider_id))].sort();
  for (const id of providers) {
    await trx("resource_providers").where({ id }).increment("generation", 1);
  }
}
