/**
 * The boot's writes as a transaction, one instance after another: the path for what the
 * one-statement write (boot-write.ts) does not cover. Each of these needs statements
 * between the inserts that decide whether to go on, so it keeps its own round trips:
 *
 * - enforced quotas: the project's quota_locks row is locked and usage counted again under
 *   the lock for every instance (api/quotas/quota.ts);
 * - a server group: its row is locked and its members counted (joinServerGroup);
 * - a fixed IP: checked against the subnets and inserted as asked (api/ports.ts createPort);
 * - IPv6 subnets: their addresses are chosen in JavaScript under the subnet's row lock.
 */
import type { Knex } from "knex";
import { startAction } from "../../common/db/instance-records.js";
import type { FlavorSnapshot } from "../../common/messages.js";
import { enqueue } from "../../common/outbox.js";
import { SCHEDULE_QUEUE } from "../../common/queues.js";
import type { RequestContext } from "../context.js";
import { createPort } from "../ports.js";
import { admitBoot, recordBootExtras, type BootExtras } from "../quotas/boot-admission.js";
import type { RequestedNic } from "./boot-input.js";
import type { BootRows } from "./boot-write.js";

export interface TransactionalBoot {
  rows: BootRows;
  nics: RequestedNic[];
  flavor: FlavorSnapshot;
  metadata: Record<string, string> | undefined;
  extras: BootExtras;
  enforceQuotas: boolean;
}

export async function writeBootInTransaction(db: Knex | Knex.Transaction, ctx: RequestContext, boot: TransactionalBoot): Promise<void> {
  const { rows, nics } = boot;
  await db.transaction(async (trx) => {
    for (const [launchIndex, id] of rows.ids.entries()) {
      await admitBoot(trx, ctx, boot.flavor, boot.metadata, boot.enforceQuotas); // compute extras: quota
      await trx("instances").insert({
        id,
        name: rows.names[launchIndex],
        project_id: rows.projectId,
        user_id: rows.userId,
        ...rows.instance,
        launch_index: launchIndex,
      });
      await recordBootExtras(trx, id, boot.extras); // compute extras: server group membership
      for (const [index, nic] of nics.entries()) {
        await createPort(trx, {
          networkId: nic.network.id,
          projectId: rows.projectId,
          deviceId: id,
          deviceOwner: "compute:nova",
          deviceIndex: index,
          ...(nic.fixedIp !== undefined ? { fixedIp: nic.fixedIp } : {}),
        });
      }
      await startAction(trx, { instanceId: id, action: "create", requestId: rows.requestId, projectId: rows.projectId, userId: rows.userId });
      await enqueue(trx, { queue: SCHEDULE_QUEUE, name: "schedule", jobId: `schedule-${id}`, payload: { instance_id: id, request_id: rows.requestId } });
    }
  });
}
