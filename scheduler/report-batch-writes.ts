/**
 * The reads and writes of a batch of `spawned`/`deleted` reports, a constant number of
 * statements whatever the batch size: lock the instances, then at most one statement
 * each for the hosts' failed-build counters, the instance rows, the ports going ACTIVE,
 * the freed allocations (with the provider generations), the freed ports, the action
 * events and the orphans jobs. The decisions are in report-batch.ts.
 *
 * Lock order, the same in every transaction that takes these rows: instances (id order),
 * then compute_services (host order), then resource_providers (id order). spawn_failed,
 * registration and the API's delete take them in that order too, one of each.
 */
import type { Knex } from "knex";
import { prepared } from "../common/db/prepared.js";
import { recordEvents } from "../common/db/instance-records.js";
import { freeInstanceResources } from "../common/db/instance-teardown.js";
import type { ComputeJob } from "../common/messages.js";
import { enqueueMany } from "../common/outbox.js";
import { newRequestId } from "../common/ids.js";
import { computeQueueName } from "../common/queues.js";
import type { InstanceWrite, OrphanNotice, ReportPlan, ReportedInstance } from "./report-batch.js";

/**
 * The statement that locks the instances the reports name, in id order (so two batches
 * cannot deadlock on them), not yet run: it is the batch's first statement and carries its
 * BEGIN (conductor.ts, common/db/begun-with.ts).
 */
export function reportedInstancesLock(trx: Knex, ids: readonly string[]): Knex.Raw {
  return trx.raw(
    `SELECT id, seq, vm_state, task_state, power_state, host, attempts FROM instances
      WHERE id = ANY(?::uuid[]) ORDER BY id FOR UPDATE`,
    [[...new Set(ids)]],
  );
}

export function byId(rows: readonly ReportedInstance[]): Map<string, ReportedInstance> {
  return new Map(rows.map((r) => [r.id, r]));
}

export async function writeReportPlan(trx: Knex.Transaction, plan: ReportPlan): Promise<void> {
  await clearFailedBuilds(trx, plan.clearFailedBuilds);
  await updateInstances(trx, plan.instances);
  if (plan.activatePorts.length > 0) {
    // Each instance's ports by an index probe (OFFSET 0): with stale statistics the planner
    // scanned every port for `device_id = ANY(…)`.
    await prepared(
      trx.raw(
        `UPDATE ports SET status = 'ACTIVE', updated_at = now()
          WHERE ports.id IN (SELECT p.id FROM unnest(?::uuid[]) AS d(id)
                               CROSS JOIN LATERAL (SELECT id FROM ports WHERE device_id = d.id OFFSET 0) p)`,
        [plan.activatePorts],
      ),
    );
  }
  // After the ports went ACTIVE: an instance spawned and deleted in one batch ends with its ports gone.
  await freeInstanceResources(trx, plan.teardown);
  await recordEvents(trx, plan.events);
  await sendOrphans(trx, plan.orphans);
}

/** A success clears the host's run of failed builds; no write (and no row lock) where there was none. */
async function clearFailedBuilds(trx: Knex.Transaction, hosts: readonly string[]): Promise<void> {
  if (hosts.length === 0) return;
  await prepared(
    trx.raw(
      `WITH locked AS (SELECT id FROM compute_services WHERE host = ANY(?::text[]) AND failed_builds <> 0 ORDER BY host FOR UPDATE)
       UPDATE compute_services cs SET failed_builds = 0 FROM locked WHERE cs.id = locked.id`,
      [[...hosts]],
    ),
  );
}

/** Each instance's state after the batch (computed by the state machine), with the timestamps its reports stamp. */
async function updateInstances(trx: Knex.Transaction, writes: readonly InstanceWrite[]): Promise<void> {
  if (writes.length === 0) return;
  const column = <K extends keyof InstanceWrite>(key: K) => writes.map((w) => w[key]);
  await prepared(
    trx.raw(
      `UPDATE instances i SET vm_state = v.vm_state, task_state = v.task_state, power_state = v.power_state,
              launched_at = CASE WHEN v.launched THEN now() ELSE i.launched_at END,
              deleted_at = CASE WHEN v.deleted THEN now() ELSE i.deleted_at END,
              terminated_at = CASE WHEN v.deleted THEN now() ELSE i.terminated_at END,
              updated_at = now()
         FROM unnest(?::uuid[], ?::text[], ?::text[], ?::int[], ?::boolean[], ?::boolean[])
              AS v(id, vm_state, task_state, power_state, launched, deleted)
        WHERE i.id = v.id`,
      // task_state holds nulls, which knex's binding type does not admit in an array.
      [column("id"), column("vm_state"), column("task_state"), column("power_state"), column("launched"), column("deleted")] as unknown as Knex.RawBinding[],
    ),
  );
}

/** One orphans job per late build, as applying the report alone sends it (same job id). */
async function sendOrphans(trx: Knex.Transaction, orphans: readonly OrphanNotice[]): Promise<void> {
  await enqueueMany(
    trx,
    orphans.map((o) => {
      const job: ComputeJob = { kind: "orphans", request_id: newRequestId(), domains: [o.domain] };
      return { queue: computeQueueName(o.host), name: "orphans", jobId: `orphans-${o.host}-${o.tag}`, payload: job };
    }),
  );
}
