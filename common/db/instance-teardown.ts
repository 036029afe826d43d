import type { Knex } from "knex";
import { releaseAllocations } from "./allocations.js";
import { applyEvent, type LockedInstance } from "./instance-records.js";

/** The end of every delete: allocations and ports freed, the row marked deleted. */
export async function finishDelete(trx: Knex.Transaction, instance: LockedInstance): Promise<void> {
  await releaseAllocations(trx, instance.id);
  await trx("ports").where({ device_id: instance.id, device_owner: "compute:nova" }).delete();
  await applyEvent(trx, instance, { type: "delete_completed" }, { deleted_at: trx.fn.now(), terminated_at: trx.fn.now() });
}
