/**
 * The recovery sweep, run periodically by every scheduler (each step locks the rows it
 * changes with SKIP LOCKED and checks again, so replicas do not collide):
 *
 * - build deadline: an instance still building past CIRRUS_BUILD_TIMEOUT ends in ERROR
 *   with a fault, and its claim is freed (Nova's instance_build_timeout, but on by default);
 * - action deadline: a task_state held past CIRRUS_ACTION_TIMEOUT is cleared with a fault
 *   (as the agent's failure report would, through the conductor);
 * - local delete: a delete whose host's compute service is down completes here (Nova's
 *   _local_delete): allocations and ports freed, row deleted; the agent reaps the domain
 *   as an orphan when the host returns;
 * - lost jobs: an in-flight instance unchanged for CIRRUS_REQUEUE_AFTER whose job is no
 *   longer in Redis (Redis restarted without persistence, or the job was removed) has its
 *   outbox row marked unpublished again, so the relay publishes it anew under the same
 *   deterministic id. Every handler is idempotent, so a job published twice does no harm;
 * - idempotency keys past their 24 hours are dropped.
 */
import type { Redis } from "ioredis";
import type { Knex } from "knex";
import { expireIdempotencyKeys } from "../api/idempotency.js";
import type { RecoveryConfig } from "../common/config.js";
import { releaseAllocations } from "../common/db/allocations.js";
import { recordEvent, type LockedInstance } from "../common/db/instance-records.js";
import { finishDelete } from "../common/db/instance-teardown.js";
import { transactionWithRetry } from "../common/db/retry.js";
import type { ReportedAction } from "../common/messages.js";
import { computeQueueName } from "../common/queues.js";
import { ACTIONS, type ActionKind } from "../common/server-actions.js";
import { applyReport, type ConductorDeps } from "./conductor.js";
import { failBuild, type PlaceableInstance } from "./place.js";

export interface RecoveryDeps extends ConductorDeps {
  recovery: RecoveryConfig;
  redis: Redis;
  queuePrefix: string;
}

export interface SweepCounts {
  buildTimeouts: number;
  actionTimeouts: number;
  localDeletes: number;
  requeued: number;
  expiredKeys: number;
}

const BATCH = 500;

/** The action whose task this is (reboot_soft and reboot_hard hold different tasks). */
export function actionForTask(task: string): ActionKind | undefined {
  return (Object.keys(ACTIONS) as ActionKind[]).find((k) => ACTIONS[k].task === task);
}

async function requestIdOf(db: Knex | Knex.Transaction, instanceId: string, actions: string[]): Promise<string | null> {
  const row: { request_id: string } | undefined = await db("instance_actions")
    .where({ instance_id: instanceId })
    .whereIn("action", actions)
    .orderBy("id", "desc")
    .first("request_id");
  return row?.request_id ?? null;
}

export async function sweep(deps: RecoveryDeps): Promise<SweepCounts> {
  const counts: SweepCounts = { buildTimeouts: 0, actionTimeouts: 0, localDeletes: 0, requeued: 0, expiredKeys: 0 };
  const { db, recovery } = deps;

  if (recovery.buildTimeoutSec > 0) {
    const ids: string[] = await db("instances")
      .where({ vm_state: "building" })
      .whereIn("task_state", ["scheduling", "spawning"])
      .where("created_at", "<", db.raw("now() - make_interval(secs => ?)", [recovery.buildTimeoutSec]))
      .limit(BATCH)
      .pluck("id");
    for (const id of ids) if (await buildTimedOut(deps, id)) counts.buildTimeouts++;
  }

  if (recovery.actionTimeoutSec > 0) {
    const rows: { id: string }[] = await db("instances")
      .whereNotNull("task_state")
      .whereNotIn("task_state", ["scheduling", "spawning", "deleting"])
      .whereNot("vm_state", "deleted")
      .where("updated_at", "<", db.raw("now() - make_interval(secs => ?)", [recovery.actionTimeoutSec]))
      .limit(BATCH)
      .select("id");
    for (const { id } of rows) if (await actionTimedOut(deps, id)) counts.actionTimeouts++;
  }

  // Deletes whose host is down (or gone): finish them here.
  const stranded: string[] = await db("instances as i")
    .leftJoin("compute_services as cs", "cs.host", "i.host")
    .where("i.task_state", "deleting")
    .whereNot("i.vm_state", "deleted")
    .whereNotNull("i.host")
    .where((q) =>
      q
        .whereNull("cs.id")
        .orWhere("cs.forced_down", true)
        .orWhere("cs.last_seen_at", "<", db.raw("now() - make_interval(secs => ?)", [deps.serviceDownTimeSec])),
    )
    .limit(BATCH)
    .pluck("i.id");
  for (const id of stranded) if (await localDelete(deps, id, "conductor_delete_local")) counts.localDeletes++;

  counts.requeued = await requeueLostJobs(deps);
  counts.expiredKeys = await expireIdempotencyKeys(db);
  return counts;
}

async function buildTimedOut(deps: RecoveryDeps, id: string): Promise<boolean> {
  const timeout = deps.recovery.buildTimeoutSec;
  return transactionWithRetry(deps.db, async (trx) => {
    const inst: (PlaceableInstance & { created_at: Date }) | undefined = await trx("instances").where({ id }).forUpdate().skipLocked().first();
    if (!inst || inst.vm_state !== "building" || (inst.task_state !== "scheduling" && inst.task_state !== "spawning")) return false;
    const stillDue = await trx.raw("SELECT ?::timestamptz < now() - make_interval(secs => ?) AS due", [inst.created_at, timeout]);
    if (!(stillDue as { rows: { due: boolean }[] }).rows[0]?.due) return false;
    await releaseAllocations(trx, id);
    const requestId = (await requestIdOf(trx, id, ["create"])) ?? "req-unknown";
    const where = inst.host ? `the compute host ${inst.host} did not finish it` : "no scheduler placed it";
    await failBuild(trx, inst, requestId, {
      message: `Build of instance ${id} timed out after ${timeout} seconds: ${where}.`,
      details: `Instance build timed out (CIRRUS_BUILD_TIMEOUT=${timeout}). task_state was ${inst.task_state}; host ${inst.host ?? "none"}; attempt ${inst.attempts}.`,
      host: inst.host,
      event: "conductor_build_timeout",
    });
    deps.log.warn({ instance_id: id, host: inst.host, task_state: inst.task_state }, "build timed out; the server is ERROR");
    return true;
  });
}

async function actionTimedOut(deps: RecoveryDeps, id: string): Promise<boolean> {
  const inst: { host: string | null; task_state: string | null } | undefined = await deps.db("instances").where({ id }).first("host", "task_state");
  if (!inst || !inst.host || !inst.task_state) return false;
  const kind = actionForTask(inst.task_state);
  if (!kind) {
    // A task no action owns (left by an older version): clear it only through a known path.
    deps.log.warn({ instance_id: id, task_state: inst.task_state }, "a task_state past its deadline that no action owns; left alone");
    return false;
  }
  const requestId = (await requestIdOf(deps.db, id, [ACTIONS[kind].nova])) ?? "req-unknown";
  // The same path as the agent's failure report: the conductor checks the task is still in flight.
  await applyReport(deps, {
    kind: "action_failed",
    host: inst.host,
    request_id: requestId,
    instance_id: id,
    action: kind as ReportedAction,
    reason: `timed out: the compute host ${inst.host} did not finish ${ACTIONS[kind].nova} within ${deps.recovery.actionTimeoutSec} seconds (task_state ${inst.task_state} cleared)`,
  });
  const after: { task_state: string | null } | undefined = await deps.db("instances").where({ id }).first("task_state");
  const cleared = after?.task_state !== inst.task_state;
  if (cleared) deps.log.warn({ instance_id: id, host: inst.host, task_state: inst.task_state }, "action timed out; task cleared with a fault");
  return cleared;
}

/** Nova's _local_delete: the host cannot be reached, so the control plane finishes the delete. */
export async function localDelete(deps: Pick<RecoveryDeps, "db" | "log">, id: string, event: string): Promise<boolean> {
  return transactionWithRetry(deps.db, async (trx) => {
    const inst: LockedInstance | undefined = await trx("instances").where({ id }).forUpdate().skipLocked().first();
    if (!inst || inst.vm_state === "deleted" || inst.task_state !== "deleting") return false;
    await finishDelete(trx, inst);
    const requestId = (await requestIdOf(trx, id, ["delete"])) ?? "req-unknown";
    await recordEvent(trx, {
      instanceId: id,
      requestId,
      event,
      result: "Success",
      host: inst.host,
      details: `The compute service on ${inst.host} is down: deleted locally; its domain is reaped when the host returns.`,
      finishAction: true,
    });
    deps.log.warn({ instance_id: id, host: inst.host }, "delete completed locally: the host is down");
    return true;
  });
}

/** The job an in-flight instance waits for, as the outbox named it. */
async function expectedJob(db: Knex, row: { id: string; host: string | null; task_state: string; attempts: number }): Promise<{ queue: string; jobId: string } | null> {
  // A boot waiting for a host needs no job of its own: boots accepted together share one
  // (api/servers/boot-write.ts), and every scheduler's stranded-boot sweep places any boot
  // left waiting, job or not (scheduler/main.ts).
  if (row.task_state === "scheduling") return null;
  if (!row.host) return null;
  const queue = computeQueueName(row.host);
  if (row.task_state === "spawning") return { queue, jobId: `spawn-${row.id}-${row.attempts}` };
  if (row.task_state === "deleting") return { queue, jobId: `delete-${row.id}` };
  const kind = actionForTask(row.task_state);
  if (!kind) return null;
  const requestId = await requestIdOf(db, row.id, [ACTIONS[kind].nova]);
  return requestId ? { queue, jobId: `${kind}-${row.id}-${requestId}` } : null;
}

/**
 * Rebuilds lost queue state from the outbox: for each in-flight instance unchanged for a
 * while, the outbox row of the job it waits for is marked unpublished again when Redis no
 * longer holds that job (BullMQ keeps a job's hash at <prefix>:<queue>:<id> while it is
 * waiting, active, delayed, completed or failed).
 */
export async function requeueLostJobs(deps: RecoveryDeps): Promise<number> {
  const { db } = deps;
  const rows: { id: string; host: string | null; task_state: string; attempts: number }[] = await db("instances")
    .whereNotNull("task_state")
    .whereNot("vm_state", "deleted")
    .where("updated_at", "<", db.raw("now() - make_interval(secs => ?)", [deps.recovery.requeueAfterSec]))
    .orderBy("updated_at")
    .limit(BATCH)
    .select("id", "host", "task_state", "attempts");
  if (rows.length === 0) return 0;
  const wanted = (await Promise.all(rows.map((r) => expectedJob(db, r)))).filter((j): j is { queue: string; jobId: string } => j !== null);
  if (wanted.length === 0) return 0;
  const outbox: { id: number; queue: string; job_id: string }[] = await db("outbox")
    .whereIn("job_id", wanted.map((w) => w.jobId))
    .whereNotNull("published_at")
    .select("id", "queue", "job_id");
  if (outbox.length === 0) return 0;
  const pipeline = deps.redis.pipeline();
  for (const o of outbox) pipeline.exists(`${deps.queuePrefix}:${o.queue}:${o.job_id}`);
  const results = (await pipeline.exec()) ?? [];
  const lost = outbox.filter((_, i) => {
    const [err, exists] = results[i] ?? [new Error("no reply"), 1];
    return !err && Number(exists) === 0;
  });
  if (lost.length === 0) return 0;
  await db.transaction(async (trx) => {
    await trx("outbox").whereIn("id", lost.map((o) => o.id)).update({ published_at: null });
    await trx.raw("SELECT pg_notify('cirrus_outbox', '')");
  });
  deps.log.warn({ jobs: lost.map((o) => o.job_id).slice(0, 20), count: lost.length }, "jobs missing from Redis: republished from the outbox");
  return lost.length;
}

/** Runs the sweep every interval until stopped; a stop waits for the sweep under way. */
export function startRecovery(deps: RecoveryDeps): { stop(): Promise<void> } {
  let running: Promise<void> | null = null;
  let stopped = false;
  const tick = () => {
    if (running || stopped) return;
    running = sweep(deps)
      .then((c) => {
        if (c.buildTimeouts || c.actionTimeouts || c.localDeletes || c.requeued) deps.log.info(c, "recovery sweep");
      })
      .catch((err: unknown) => deps.log.warn({ err: String(err) }, "recovery sweep failed"))
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, Math.max(0.2, deps.recovery.sweepIntervalSec) * 1000);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
