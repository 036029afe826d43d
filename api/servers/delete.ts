/**
 * DELETE /servers/{id}: always accepted. A server that never reached a host is
 * deleted at once; one on a host gets task_state deleting and a delete job for that
 * host's agent, written through the outbox (for a live host, in one statement).
 */
import type { Knex } from "knex";
import { conflict, notFound } from "../../common/errors.js";
import type { Db } from "../../common/db/knex.js";
import { applyEvent, lockInstance, recordEvent, startAction } from "../../common/db/instance-records.js";
import { finishDelete } from "../../common/db/instance-teardown.js";
import { instanceNameFromSeq } from "../../common/instance-name.js";
import type { ComputeJob } from "../../common/messages.js";
import { enqueue } from "../../common/outbox.js";
import { computeQueueName } from "../../common/queues.js";
import type { RequestContext } from "../context.js";
import { deleteOnLiveHost } from "./delete-on-host.js";

/** True when the host's compute service is down, forced down or gone (Nova's servicegroup is_up). */
async function hostIsDown(trx: Db, host: string, serviceDownTimeSec: number): Promise<boolean> {
  const { rows } = (await trx.raw(
    `SELECT NOT (NOT cs.forced_down AND cs.last_seen_at > now() - make_interval(secs => ?)) AS down
       FROM compute_services cs WHERE cs.host = ?`,
    [serviceDownTimeSec, host],
  )) as { rows: { down: boolean }[] };
  return rows.length === 0 || rows[0]!.down;
}

export async function requestDelete(db: Db, ctx: RequestContext, requestId: string, id: string, opts: { serviceDownTimeSec?: number } = {}): Promise<void> {
  // Most deletes are of a server on a live host: one statement (delete-on-host.ts).
  if (opts.serviceDownTimeSec !== undefined && !(db as Knex.Transaction).isTransaction) {
    if (await deleteOnLiveHost(db, ctx, requestId, id, opts.serviceDownTimeSec)) return;
  }
  await db.transaction(async (trx) => {
    const instance = await lockInstance(trx, id);
    if (!instance || instance.vm_state === "deleted" || (!ctx.isAdmin && instance.project_id !== ctx.projectId)) {
      throw notFound(`Instance ${id} could not be found.`);
    }
    if ((instance as typeof instance & { locked?: boolean }).locked && !ctx.isAdmin) throw conflict(`Instance ${id} is locked`);
    await startAction(trx, { instanceId: id, action: "delete", requestId, projectId: ctx.projectId, userId: ctx.userId });
    if (instance.host === null) {
      await finishDelete(trx, instance);
      await recordEvent(trx, { instanceId: id, requestId, event: "api_delete_local", result: "Success", finishAction: true });
      return;
    }
    // Nova's local delete: the host's compute service is down, so nothing would carry the
    // job out; free everything here. The agent reaps the domain as an orphan when it returns.
    if (opts.serviceDownTimeSec !== undefined && (await hostIsDown(trx, instance.host, opts.serviceDownTimeSec))) {
      await finishDelete(trx, instance);
      await recordEvent(trx, {
        instanceId: id,
        requestId,
        event: "api_delete_local",
        result: "Success",
        host: instance.host,
        details: `The compute service on ${instance.host} is down: deleted locally.`,
        finishAction: true,
      });
      return;
    }
    if (instance.task_state === "deleting") return; // already on its way
    await applyEvent(trx, instance, { type: "delete_requested" });
    const job: ComputeJob = {
      kind: "delete",
      request_id: requestId,
      instance: { instance_id: id, instance_name: instanceNameFromSeq(instance.seq) },
    };
    await enqueue(trx, { queue: computeQueueName(instance.host), name: "delete", jobId: `delete-${id}`, payload: job });
  });
}
