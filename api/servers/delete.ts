/**
 * DELETE /servers/{id}: always accepted. A server that never reached a host is
 * deleted at once; one on a host gets task_state deleting and a delete job for that
 * host's agent, written through the outbox.
 */
import { conflict, notFound } from "../../common/errors.js";
import type { Db } from "../../common/db/knex.js";
import { applyEvent, lockInstance, recordEvent, startAction } from "../../common/db/instance-records.js";
import { finishDelete } from "../../common/db/instance-teardown.js";
import { instanceNameFromSeq } from "../../common/instance-name.js";
import type { ComputeJob } from "../../common/messages.js";
import { enqueue } from "../../common/outbox.js";
import { computeQueueName } from "../../common/queues.js";
import type { RequestContext } from "../context.js";

export async function requestDelete(db: Db, ctx: RequestContext, requestId: string, id: string): Promise<void> {
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
