/**
 * The common DELETE in one statement: a server on a host whose compute service is up,
 * not locked against the caller and not being deleted already. Under the instance's row
 * lock it sets task_state deleting (the state machine's delete_requested: any state but
 * deleted), records the delete action and writes the agent's delete job to the outbox
 * with its wake-up. Anything else (not found, another project's, locked, never placed,
 * a host that is down, a delete in flight) changes nothing here and is left to
 * requestDelete's transaction, which answers it.
 */
import type { Db } from "../../common/db/knex.js";
import { computeQueueSql, instanceNameSql } from "../../common/db/name-sql.js";
import { prepared } from "../../common/db/prepared.js";
import { OUTBOX_CHANNEL } from "../../common/outbox.js";
import type { RequestContext } from "../context.js";

const SQL = `
  WITH target AS (
         SELECT i.id, i.seq, i.host FROM instances i JOIN compute_services cs ON cs.host = i.host
          WHERE i.id = ? AND i.vm_state <> 'deleted' AND i.task_state IS DISTINCT FROM 'deleting'
            AND (?::boolean OR i.project_id = ?) AND (?::boolean OR NOT i.locked)
            AND NOT cs.forced_down AND cs.last_seen_at > now() - make_interval(secs => ?)
            FOR UPDATE OF i),
       upd AS (UPDATE instances i SET task_state = 'deleting', updated_at = now()
                 FROM target WHERE i.id = target.id
               RETURNING target.id, target.seq, target.host),
       act AS (INSERT INTO instance_actions (instance_id, action, request_id, project_id, user_id)
               SELECT upd.id, 'delete', ?, ?, ? FROM upd
               ON CONFLICT (instance_id, request_id) DO NOTHING),
       job AS (INSERT INTO outbox (queue, job_name, job_id, payload)
               SELECT ${computeQueueSql("upd.host")}, 'delete', 'delete-' || upd.id,
                      jsonb_build_object('kind', 'delete', 'request_id', ?::text,
                        'instance', jsonb_build_object('instance_id', upd.id, 'instance_name', ${instanceNameSql("upd.seq")}))
                 FROM upd
               RETURNING id)
  SELECT upd.id, (SELECT count(*) FROM (SELECT pg_notify(?, '') FROM job) n) AS woke FROM upd`;

/** True when the delete was requested here; false when requestDelete's transaction must decide. */
export async function deleteOnLiveHost(db: Db, ctx: RequestContext, requestId: string, id: string, serviceDownTimeSec: number): Promise<boolean> {
  const { rows } = (await prepared(db.raw(SQL, [
    id, ctx.isAdmin, ctx.projectId, ctx.isAdmin, serviceDownTimeSec,
    requestId, ctx.projectId, ctx.userId,
    requestId,
    OUTBOX_CHANNEL,
  ]))) as { rows: { id: string }[] };
  return rows.length === 1;
}
