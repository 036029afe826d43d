import type { Knex } from "knex";
import { prepared } from "./prepared.js";

/**
 * Frees an instance's allocations (on one provider, or all) and bumps each affected
 * provider's generation, so a scheduler that read the old usage loses its
 * compare-and-set and reads again.
 */
export async function releaseAllocations(trx: Knex.Transaction, consumerId: string, providerId?: string): Promise<void> {
  await releaseAllocationsOf(trx, [consumerId], providerId);
}

/**
 * Frees the allocations of many consumers (on one provider, or all) in one statement and
 * bumps each affected provider's generation once, however many of its consumers went.
 * The provider rows are locked in id order (FOR UPDATE under ORDER BY locks as the sorted
 * rows come out, and the UPDATE only touches rows already locked), so two transactions
 * releasing on overlapping providers queue instead of deadlocking.
 */
export async function releaseAllocationsOf(trx: Knex.Transaction, consumerIds: readonly string[], providerId?: string): Promise<void> {
  if (consumerIds.length === 0) return;
  const onProvider = providerId === undefined ? "" : "AND provider_id = ?::uuid";
  await prepared(
    trx.raw(
      `WITH freed AS (DELETE FROM allocations WHERE consumer_id = ANY(?::uuid[]) ${onProvider} RETURNING provider_id),
            locked AS (SELECT id FROM resource_providers WHERE id IN (SELECT provider_id FROM freed) ORDER BY id FOR UPDATE)
       UPDATE resource_providers rp SET generation = rp.generation + 1 FROM locked WHERE rp.id = locked.id`,
      providerId === undefined ? [[...consumerIds]] : [[...consumerIds], providerId],
    ),
  );
}
