/**
 * During a resize the old flavor's allocation moves to a migration consumer and the
 * instance holds the new flavor's; confirming drops the migration's, reverting moves
 * it back (as Nova does with placement).
 */
import type { Knex } from "knex";
import { releaseAllocations } from "./allocations.js";

/** Revert: the instance gets its old allocation back from the migration consumer. */
export async function restoreResizeAllocations(trx: Knex.Transaction, instanceId: string, migrationId: string | null): Promise<void> {
  if (!migrationId) return;
  await releaseAllocations(trx, instanceId);
  const moved: { provider_id: string }[] = await trx("allocations")
    .where({ consumer_id: migrationId })
    .update({ consumer_id: instanceId })
    .returning("provider_id");
  for (const id of [...new Set(moved.map((m) => m.provider_id))].sort()) {
    await trx("resource_providers").where({ id }).increment("generation", 1);
  }
}

/** Confirm: the old flavor's allocation is freed. */
export async function dropMigrationAllocations(trx: Knex.Transaction, migrationId: string | null): Promise<void> {
  if (migrationId) await releaseAllocations(trx, migrationId);
}
