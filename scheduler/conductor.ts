/**
 * The conductor applies what agents report: a registered host and its inventory, a
 * spawned instance (ACTIVE), a failed spawn (free the claim, try an alternate, or
 * ERROR), a finished delete. A report applied twice, or one that arrives after the
 * instance moved on, changes nothing.
 */
import type { Knex } from "knex";
import { releaseAllocations } from "../common/db/allocations.js";
import { addFault, applyEvent, recordEvent, startAction, type LockedInstance } from "../common/db/instance-records.js";
import { transactionBegunWith } from "../common/db/begun-with.js";
import { transactionWithRetry, withRetry } from "../common/db/retry.js";
import { newId, newRequestId } from "../common/ids.js";
import { instanceNameFromSeq } from "../common/instance-name.js";
import { RESOURCE_CLASSES, type ComputeJob, type InstanceRef, type Report } from "../common/messages.js";
import { enqueue } from "../common/outbox.js";
import { PowerState } from "../common/power-state.js";
import { computeQueueName } from "../common/queues.js";
import { canTransition } from "../common/state-machine.js";
import { ACTIONS } from "../common/server-actions.js";
import type { VmState } from "../common/state-machine.js";
import { restoreResizeAllocations } from "../common/db/resize-allocations.js";
import { loadCandidates } from "./candidates.js";
import { runFilters } from "./filters/index.js";
import { dispatchTo, failBuild, requestSpecOf, type PlacementDeps, type PlaceableInstance } from "./place.js";
import { planReports, type BatchableReport, type ReportedInstance } from "./report-batch.js";
import { byId, reportedInstancesLock, writeReportPlan } from "./report-batch-writes.js";

export type { BatchableReport } from "./report-batch.js";

type ReportOf<K extends Report["kind"]> = Extract<Report, { kind: K }>;

export interface ConductorDeps extends PlacementDeps {
  /** Seconds after an instance was deleted or moved before a domain left for it counts as an orphan. */
  orphanGraceSec?: number;
}

export async function applyReport(deps: ConductorDeps, report: Report): Promise<void> {
  switch (report.kind) {
    case "register":
      return registerHost(deps.db, report);
    case "spawned":
      return spawned(deps, report);
    case "spawn_failed":
      return spawnFailed(deps, report);
    case "deleted":
      return deleted(deps, report);
    case "delete_failed":
      return deleteFailed(deps, report);
    case "action_done":
      return actionDone(deps, report);
    case "action_failed":
      return actionFailed(deps, report);
    case "power_sync":
      return powerSync(deps, report);
  }
}

async function registerHost(db: Knex, r: ReportOf<"register">): Promise<void> {
  await transactionWithRetry(db, async (trx) => {
    const [service] = await trx("compute_services")
      .insert({
        id: newId(),
        host: r.host,
        availability_zone: r.availability_zone,
        hypervisor_type: r.hypervisor_type,
        hypervisor_version: r.hypervisor_version,
        hypervisor_hostname: r.hypervisor_hostname,
        host_ip: r.host_ip,
        libvirt_uri: r.libvirt_uri,
        cpu_arch: r.cpu_arch ?? null,
      })
      .onConflict("host")
      .merge({
        availability_zone: r.availability_zone,
        hypervisor_type: r.hypervisor_type,
        hypervisor_version: r.hypervisor_version,
        hypervisor_hostname: r.hypervisor_hostname,
        host_ip: r.host_ip,
        libvirt_uri: r.libvirt_uri,
        cpu_arch: r.cpu_arch ?? null,
        // A restarted agent starts its run of failed builds afresh, as a restarted nova-compute does.
        failed_builds: 0,
        last_seen_at: trx.fn.now(),
        started_at: trx.fn.now(),
        updated_at: trx.fn.now(),
      })
      .returning("id");
    const serviceId = (service as { id: string }).id;
    await trx("resource_providers").insert({ id: newId(), name: r.host, compute_service_id: serviceId }).onConflict("compute_service_id").ignore();
    const provider: { id: string } = await trx("resource_providers").where({ compute_service_id: serviceId }).forUpdate().first("id");
    const current: Record<string, unknown>[] = await trx("inventories").where({ provider_id: provider.id });
    const wanted = RESOURCE_CLASSES.map((rc) => ({ provider_id: provider.id, resource_class: rc, ...r.inventory[rc] }));
    const same =
      current.length === wanted.length &&
      wanted.every((w) => current.some((c) => Object.entries(w).every(([k, v]) => c[k] === v)));
    if (!same) {
      await trx("inventories").where({ provider_id: provider.id }).delete();
      await trx("inventories").insert(wanted);
      await trx("resource_providers").where({ id: provider.id }).increment("generation", 1);
    }
    // Start-up reconciliation: tell the agent what this host should run (Nova's _init_instance input).
    const rows: { id: string; seq: number; vm_state: string; task_state: string | null; power_state: number; attempts: number }[] = await trx("instances")
      .where({ host: r.host })
      .whereNot("vm_state", "deleted")
      .select("id", "seq", "vm_state", "task_state", "power_state", "attempts");
    const job: ComputeJob = {
      kind: "reconcile",
      request_id: newRequestId(),
      expected: rows.map((i) => ({
        instance_id: i.id,
        instance_name: instanceNameFromSeq(i.seq),
        vm_state: i.vm_state,
        task_state: i.task_state,
        power_state: i.power_state,
        attempt: i.attempts,
      })),
    };
    await enqueue(trx, { queue: computeQueueName(r.host), name: "reconcile", jobId: `reconcile-${r.host}-${newId()}`, payload: job });
  });
}

/** A domain on `host` that no live instance there owns: the agent applies its orphan action (reap, log, noop). */
async function sendOrphans(trx: Knex | Knex.Transaction, host: string, domains: (InstanceRef & { reason: string })[], tag: string): Promise<void> {
  if (domains.length === 0) return;
  const job: ComputeJob = { kind: "orphans", request_id: newRequestId(), domains };
  await enqueue(trx, { queue: computeQueueName(host), name: "orphans", jobId: `orphans-${host}-${tag}`, payload: job });
}

async function lockForReport(trx: Knex.Transaction, id: string): Promise<(PlaceableInstance & LockedInstance) | undefined> {
  return trx("instances").where({ id }).forUpdate().first();
}

/** A spawned report alone: the batch path with one report. */
async function spawned(deps: PlacementDeps, r: ReportOf<"spawned">): Promise<void> {
  await applyReportBatch(deps, [r]);
}

async function spawnFailed(deps: PlacementDeps, r: ReportOf<"spawn_failed">): Promise<void> {
  await transactionWithRetry(deps.db, async (trx) => {
    const inst = await lockForReport(trx, r.instance_id);
    if (!inst || inst.host !== r.host || inst.attempts !== r.attempt) return;
    if (inst.vm_state !== "building" || inst.task_state !== "spawning") return;
    await trx("compute_services").where({ host: r.host }).increment("failed_builds", 1);
    const provider: { id: string } | undefined = await trx("resource_providers").where({ name: r.host }).first("id");
    if (provider) await releaseAllocations(trx, inst.id, provider.id);
    await recordEvent(trx, { instanceId: inst.id, requestId: r.request_id, event: "compute_build_and_run_instance", result: "Error", host: r.host, details: r.reason });
    const tried = [...inst.tried_hosts, r.host];
    if (inst.attempts < deps.maxAttempts) {
      const spec = requestSpecOf(inst, tried);
      const remaining = inst.alternates.filter((h) => !tried.includes(h));
      for (const alternate of remaining) {
        const altProvider: { id: string } | undefined = await trx("resource_providers").where({ name: alternate }).first("id");
        if (!altProvider) continue;
        const fresh = await loadCandidates(trx, deps.serviceDownTimeSec, altProvider.id);
        const host = runFilters(fresh, spec).hosts[0];
        const rest = remaining.filter((h) => h !== alternate);
        if (host && (await dispatchTo(trx, inst, host, rest, tried, r.request_id))) {
          deps.log.info({ instance_id: inst.id, failed_host: r.host, next_host: alternate, request_id: r.request_id }, "rescheduled to an alternate host");
          return;
        }
      }
    }
    await failBuild(trx, inst, r.request_id, {
      message: `Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance ${inst.id}. Last failure on ${r.host}: ${r.reason}`,
      details: `Hosts tried: ${tried.join(", ")}. Last error: ${r.reason}`,
      host: r.host,
      event: "conductor_schedule_and_build_instances",
    });
  });
}

/** A deleted report alone: the batch path with one report. */
async function deleted(deps: PlacementDeps, r: ReportOf<"deleted">): Promise<void> {
  await applyReportBatch(deps, [r]);
}

export function isBatchable(r: Report): r is BatchableReport {
  return r.kind === "spawned" || r.kind === "deleted";
}

/**
 * Applies several reports in one transaction (one commit) with a constant number of
 * statements: lock every named instance in id order, decide each report in arrival order
 * as it would be decided alone (report-batch.ts), then write the outcome set-based
 * (report-batch-writes.ts). A delete's providers are locked once for the batch, in id
 * order, after the instances, so two batches cannot deadlock on them.
 */
export async function applyReportBatch(deps: PlacementDeps, reports: BatchableReport[]): Promise<void> {
  if (reports.length === 0) return;
  // The lock carries the transaction's BEGIN (common/db/begun-with.ts).
  await withRetry(() =>
    transactionBegunWith<ReportedInstance, void>(
      deps.db,
      (trx) => reportedInstancesLock(trx, reports.map((r) => r.instance_id)),
      (trx, rows) => writeReportPlan(trx, planReports(reports, byId(rows))),
      { prepare: true },
    ),
  );
}

async function deleteFailed(deps: PlacementDeps, r: ReportOf<"delete_failed">): Promise<void> {
  await transactionWithRetry(deps.db, async (trx) => {
    const inst = await lockForReport(trx, r.instance_id);
    if (!inst || inst.host !== r.host || inst.task_state !== "deleting") return;
    await applyEvent(trx, inst, { type: "delete_failed" });
    await addFault(trx, { instanceId: inst.id, code: 500, message: `Failed to delete instance on ${r.host}: ${r.reason}`, details: r.reason, host: r.host });
    await recordEvent(trx, { instanceId: inst.id, requestId: r.request_id, event: "compute_terminate_instance", result: "Error", host: r.host, details: r.reason, finishAction: true });
  });
}

async function actionDone(deps: PlacementDeps, r: ReportOf<"action_done">): Promise<void> {
  await transactionWithRetry(deps.db, async (trx) => {
    const inst = await lockForReport(trx, r.instance_id);
    // A report for a task that is no longer in flight (applied already, or overtaken by a delete) is stale.
    if (!inst || inst.host !== r.host || inst.task_state !== ACTIONS[r.action].task) return;
    const row = inst as typeof inst & { old_vm_state: VmState | null; old_flavor: unknown; migration_id: string | null };
    const extra: Record<string, unknown> = {};
    if (r.action === "revert_resize") {
      await restoreResizeAllocations(trx, inst.id, row.migration_id);
      Object.assign(extra, { flavor: JSON.stringify(row.old_flavor), old_flavor: null, migration_id: null, old_vm_state: null });
    }
    await applyEvent(
      trx,
      inst,
      { type: "action_succeeded", action: r.action, power_state: r.power_state, ...(row.old_vm_state ? { restore_vm_state: row.old_vm_state } : {}) },
      extra,
    );
    await recordEvent(trx, { instanceId: inst.id, requestId: r.request_id, event: `compute_${ACTIONS[r.action].nova}`, result: "Success", host: r.host, finishAction: true });
  });
}

async function actionFailed(deps: PlacementDeps, r: ReportOf<"action_failed">): Promise<void> {
  await transactionWithRetry(deps.db, async (trx) => {
    const inst = await lockForReport(trx, r.instance_id);
    if (!inst || inst.host !== r.host || inst.task_state !== ACTIONS[r.action].task) return;
    if (r.action === "resize") {
      // The agent restored the old domain: give the new flavor's claim back.
      const row = inst as typeof inst & { old_flavor: unknown; migration_id: string | null };
      await restoreResizeAllocations(trx, inst.id, row.migration_id);
      await trx("instances").where({ id: inst.id }).update({ flavor: JSON.stringify(row.old_flavor), old_flavor: null, migration_id: null, old_vm_state: null });
    }
    await applyEvent(trx, inst, { type: "action_failed", action: r.action });
    await addFault(trx, { instanceId: inst.id, code: 500, message: `${ACTIONS[r.action].nova} failed on ${r.host}: ${r.reason}`, details: r.reason, host: r.host });
    await recordEvent(trx, { instanceId: inst.id, requestId: r.request_id, event: `compute_${ACTIONS[r.action].nova}`, result: "Error", host: r.host, details: r.reason, finishAction: true });
  });
}

const SYNCED_VM_STATES = ["active", "stopped", "paused", "suspended", "resized", "error"];

/**
 * Nova's _sync_power_states, fed by the agent's periodic listing: for each instance of
 * this host with no task in flight (and unchanged since the listing was taken), write the
 * hypervisor's power state through the state machine (ACTIVE + SHUTDOWN/CRASHED becomes
 * SHUTOFF, recorded as a "stop" instance action); a stopped server found running gets a
 * stop job (Nova's force_stop). Domains whose instance is unknown, deleted or on another
 * host for longer than the grace period go back to the agent as orphans.
 */
async function powerSync(deps: ConductorDeps, r: ReportOf<"power_sync">): Promise<void> {
  const graceMs = (deps.orphanGraceSec ?? 60) * 1000;
  const listedAt = new Date(r.listed_at);
  const onHost: { id: string; seq: number; host: string | null; vm_state: string; task_state: string | null; power_state: number; updated_at: Date; deleted_at: Date | null }[] =
    await deps.db("instances")
      .where((q) => q.where({ host: r.host }).whereNot("vm_state", "deleted"))
      .orWhereIn("id", r.domains.map((d) => d.instance_id))
      .select("id", "seq", "host", "vm_state", "task_state", "power_state", "updated_at", "deleted_at");
  const byId = new Map(onHost.map((i) => [i.id, i]));
  const seen = new Set(r.domains.map((d) => d.instance_id));
  const orphans: (InstanceRef & { reason: string })[] = [];
  const changes: { id: string; power_state: PowerState }[] = [];
  for (const d of r.domains) {
    const inst = byId.get(d.instance_id);
    if (!inst) {
      orphans.push({ instance_id: d.instance_id, instance_name: d.instance_name, reason: "unknown instance" });
    } else if (inst.vm_state === "deleted") {
      if ((inst.deleted_at ?? inst.updated_at).getTime() < r.listed_at - graceMs) orphans.push({ ...d, reason: "instance deleted" });
    } else if (inst.host !== r.host) {
      if (inst.updated_at.getTime() < r.listed_at - graceMs) orphans.push({ ...d, reason: `instance is on ${inst.host ?? "no host"}` });
    } else if (inst.power_state !== d.power_state) {
      changes.push({ id: inst.id, power_state: d.power_state });
    }
  }
  for (const inst of onHost) {
    // Nova: ACTIVE with no domain (NOSTATE) is logged and recorded, not acted on.
    if (inst.host === r.host && !seen.has(inst.id) && SYNCED_VM_STATES.includes(inst.vm_state) && inst.power_state !== PowerState.NOSTATE) {
      changes.push({ id: inst.id, power_state: PowerState.NOSTATE });
    }
  }
  for (const change of changes) {
    await transactionWithRetry(deps.db, async (trx) => {
      const inst = await lockForReport(trx, change.id);
      if (!inst || inst.host !== r.host || inst.task_state !== null) return; // a task in flight: skip, as Nova does
      if ((inst as unknown as { updated_at: Date }).updated_at > listedAt) return; // changed since the listing
      const event = { type: "power_synced" as const, power_state: change.power_state };
      if (!canTransition(inst, event) || inst.power_state === change.power_state) return;
      const after = await applyEvent(trx, inst, event);
      const log = deps.log.child({ instance_id: inst.id, host: r.host });
      if (after.vm_state !== inst.vm_state) {
        const requestId = newRequestId();
        await startAction(trx, { instanceId: inst.id, action: "stop", requestId, projectId: inst.project_id, userId: inst.user_id });
        await recordEvent(trx, {
          instanceId: inst.id,
          requestId,
          event: "compute_sync_power_state",
          result: "Success",
          host: r.host,
          details: `The domain was found in power state ${change.power_state} while the server was ${inst.vm_state}: now ${after.vm_state}.`,
          finishAction: true,
        });
        log.warn({ power_state: change.power_state, vm_state: after.vm_state }, "power-state sync: the domain stopped outside Cirrus; the server is SHUTOFF");
      } else if (inst.vm_state === "stopped" && change.power_state === PowerState.RUNNING) {
        const job: ComputeJob = { kind: "power", request_id: newRequestId(), action: "stop", instance: { instance_id: inst.id, instance_name: instanceNameFromSeq(inst.seq) } };
        await enqueue(trx, { queue: computeQueueName(r.host), name: "power", jobId: `sync-stop-${inst.id}-${r.listed_at}`, payload: job });
        log.warn("power-state sync: a stopped server's domain runs; stopping it (Nova's force_stop)");
      } else {
        log.info({ from: inst.power_state, to: change.power_state, vm_state: inst.vm_state }, "power-state sync: power state recorded");
      }
    });
  }
  if (orphans.length > 0) {
    deps.log.warn({ host: r.host, orphans: orphans.map((o) => `${o.instance_name} (${o.reason})`) }, "domains without a live instance on this host");
    await sendOrphans(deps.db, r.host, orphans, String(r.listed_at));
  }
}
