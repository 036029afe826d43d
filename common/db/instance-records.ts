/**
 * Writes that go with an instance's life: state changes (always through the state
 * machine), faults, and instance actions with their events.
 */
import type { Knex } from "knex";
import { prepared } from "./prepared.js";
import { transition, type InstanceEvent, type InstanceState, type TaskState, type VmState } from "../state-machine.js";
import type { PowerState } from "../power-state.js";

type Tx = Knex | Knex.Transaction;

export interface LockedInstance {
  id: string;
  seq: number;
  vm_state: VmState;
  task_state: TaskState;
  power_state: PowerState;
  host: string | null;
  project_id: string;
  user_id: string;
  deleted_at: Date | null;
}

/** Locks the instance row for the rest of the transaction. */
export async function lockInstance(trx: Knex.Transaction, id: string): Promise<LockedInstance | undefined> {
  return trx("instances").where({ id }).forUpdate().first();
}

/** Applies one state machine event and whatever other columns go with it. */
export async function applyEvent(
  trx: Tx,
  instance: InstanceState & { id: string },
  event: InstanceEvent,
  extra: Record<string, unknown> = {},
): Promise<InstanceState> {
  const { vm_state, task_state, power_state } = transition(instance, event);
  await trx("instances")
    .where({ id: instance.id })
    .update({ vm_state, task_state, power_state, ...extra, updated_at: trx.fn.now() });
  return { vm_state, task_state, power_state };
}

export async function addFault(
  trx: Tx,
  fault: { instanceId: string; code: number; message: string; details?: string; host?: string | null },
): Promise<void> {
  await trx("instance_faults").insert({
    instance_id: fault.instanceId,
    code: fault.code,
    message: fault.message,
    details: fault.details ?? "",
    host: fault.host ?? null,
  });
}

export async function startAction(
  trx: Tx,
  a: { instanceId: string; action: string; requestId: string; projectId: string; userId: string },
): Promise<void> {
  await trx("instance_actions")
    .insert({ instance_id: a.instanceId, action: a.action, request_id: a.requestId, project_id: a.projectId, user_id: a.userId })
    .onConflict(["instance_id", "request_id"])
    .ignore();
}

/** An event to record on the action of its (instance, request). */
export interface ActionEvent {
  instanceId: string;
  requestId: string;
  event: string;
  result: "Success" | "Error";
  host?: string | null;
  details?: string | null;
  finishAction?: boolean;
}

/** Records a finished event on the action of this request; finishes the action when asked. */
export async function recordEvent(trx: Tx, e: ActionEvent): Promise<void> {
  await recordEvents(trx, [e]);
}

/**
 * recordEvent for many events in one statement: each event goes on the action of its
 * (instance, request), inserted in the order given; each action is touched once, finished
 * if any of its events finishes it, and its message becomes 'Error' if any event failed
 * (what recording the events one by one leaves).
 */
export async function recordEvents(
  trx: Tx,
  events: readonly ActionEvent[],
): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map((e, ord) => ({
    ord,
    instance_id: e.instanceId,
    request_id: e.requestId,
    event: e.event,
    result: e.result,
    host: e.host ?? null,
    details: e.details ?? null,
    traceback: e.result === "Error" ? (e.details ?? null) : null,
    finish: e.finishAction === true,
    error: e.result === "Error",
  }));
  await prepared(
    trx.raw(
      `WITH v AS (SELECT * FROM json_to_recordset(?::json) AS v(ord int, instance_id uuid, request_id text, event text, result text,
                                                               host text, details text, traceback text, finish boolean, error boolean)),
            a AS (SELECT ia.id, v.* FROM v CROSS JOIN LATERAL (SELECT id FROM instance_actions x
                    WHERE x.instance_id = v.instance_id AND x.request_id = v.request_id OFFSET 0) ia),
            e AS (INSERT INTO instance_action_events (action_id, event, result, host, details, traceback, finish_time)
                  SELECT a.id, a.event, a.result, a.host, a.details, a.traceback, now() FROM a ORDER BY a.ord),
            per AS (SELECT id, bool_or(finish) AS finish, bool_or(error) AS error FROM a GROUP BY id)
       UPDATE instance_actions SET updated_at = now(),
              finish_time = CASE WHEN per.finish THEN now() ELSE finish_time END,
              message = CASE WHEN per.error THEN 'Error' ELSE message END
         FROM per WHERE instance_actions.id = per.id`,
      [JSON.stringify(rows)],
    ),
  );
}
