import type { Knex } from "knex";
import { prepared } from "./prepared.js";
import { releaseAllocationsOf } from "./allocations.js";
import { applyEvent, type LockedInstance } from "./instance-records.js";

/** The end of every delete: allocations and ports freed, the row marked deleted. */
export async function finishDelete(trx: Knex.Transaction, instance: LockedInstance): Promise<void> {
  await freeInstanceResources(trx, [instance.id]);
  await applyEvent(trx, instance, { type: "delete_completed" }, { deleted_at: trx.fn.now(), terminated_at: trx.fn.now() });
}

/**
 * finishDelete's freeing half for many instances at once, two statements whatever their
 * number: allocations released (each provider's generation bumped once, providers locked
 * in id order) and their Nova-owned ports deleted (fixed IPs go with them by cascade).
 * The caller marks the rows deleted through the state machine (`delete_completed`, with
 * deleted_at and terminated_at), as finishDelete does.
 */
export async function freeInstanceResources(trx: Knex.Transaction, instanceIds: readonly string[]): Promise<void> {
  if (instanceIds.length === 0) return;
  await releaseAllocationsOf(trx, instanceIds);
  // By index probes per instance (OFFSET 0), whatever the statistics say (see report-batch-writes.ts).
  await prepared(
    trx.raw(
      `DELETE FROM ports WHERE device_owner = 'compute:nova'
          AND ports.id IN (SELECT p.id FROM unnest(?::uuid[]) AS d(id)
                             CROSS JOIN LATERAL (SELECT id FROM ports WHERE device_id = d.id OFFSET 0) p)`,
      [[...instanceIds]],
    ),
  );
}
