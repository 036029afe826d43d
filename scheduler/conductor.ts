/**
 * The conductor applies what agents report: a registered host and its inventory, a
 * spawned instance (ACTIVE), a failed spawn (free the claim, try an alternate, or
 * ERROR), a finished delete. A report applied twice, or one that arrives after the
 * instance moved on, changes nothing.
 */
import type { Knex } from "knex";
import { releaseAllocations } from "../common/db/allocations.js";
import { addFault, applyEvent, recordEvent, type LockedInstance } from "../common/db/instance-records.js";
import { finishDelete } from "../common/db/instance-teardown.js";
import { transactionWithRetry } from "../common/db/retry.js";
import { newId } from "../common/ids.js";
import { RESOURCE_CLASSES, type Report } from "../common/messages.js";
import { ACTIONS } from "../common/server-actions.js";
import type { VmState } from "../common/state-machine.js";
import { restoreResizeAllocations } from "../common/db/resize-allocations.js";
import { loadCandidates } from "./candidates.js";
import { runFilters } from "./filters/index.js";
import { dispatchTo, failBuild, requestSpecOf, type PlacementDeps, type PlaceableInstance } from "./place.js";

type ReportOf<K extends Report["kind"]> = Extract<Report, { kind: K }>;

export async function applyReport(deps: PlacementDeps, report: Report): Promise<void> {
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
      })
      .onConflict("host")
      .merge({
        availability_zone: r.availability_zone,
        hypervisor_type: r.hypervisor_type,
        hypervisor_version: r.hypervisor_version,
        hypervisor_hostname: r.hypervisor_hostname,
        host_ip: r.host_ip,
        libvirt_uri: r.libvirt_uri,
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
    if (same) return;
    await trx("inventories").where({ provider_id: provider.id }).delete();
    await trx("inventories").insert(wanted);
    await trx("resource_providers").where({ id: provider.id }).increment("generation", 1);
  });
}

async function lockForReport(trx: Knex.Transaction, id: string): Promise<(PlaceableInstance & LockedInstance) | undefined> {
  return trx("instances").where({ id }).forUpdate().first();
}

async function spawned(deps: PlacementDeps, r: ReportOf<"spawned">): Promise<void> {
  await transactionWithRetry(deps.db, async (trx) => {
    const inst = await lockForReport(trx, r.instance_id);
    if (!inst || inst.host !== r.host || inst.attempts !== r.attempt) return;
    if (inst.vm_state !== "building" || inst.task_state !== "spawning") return;
    await applyEvent(trx, inst, { type: "spawn_succeeded", power_state: r.power_state }, { launched_at: trx.fn.now() });
    await trx("ports").where({ device_id: inst.id }).update({ status: "ACTIVE", updated_at: trx.fn.now() });
    await recordEvent(trx, { instanceId: inst.id, requestId: r.request_id, event: "compute_build_and_run_instance", result: "Success", host: r.host, finishAction: true });
  });
}

async function spawnFailed(deps: PlacementDeps, r: ReportOf<"spawn_failed">): Promise<void> {
  await transactionWithRetry(deps.db, async (trx) => {
    const inst = await lockForReport(trx, r.instance_id);
    if (!inst || inst.host !== r.host || inst.attempts !== r.attempt) return;
    if (inst.vm_state !== "building" || inst.task_state !== "spawning") return;
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

async function deleted(deps: PlacementDeps, r: ReportOf<"deleted">): Promise<void> {
  await transactionWithRetry(deps.db, async (trx) => {
    const inst = await lockForReport(trx, r.instance_id);
    if (!inst || inst.vm_state === "deleted" || inst.host !== r.host) return;
    await finishDelete(trx, inst);
    await recordEvent(trx, { instanceId: inst.id, requestId: r.request_id, event: "compute_terminate_instance", result: "Success", host: r.host, finishAction: true });
  });
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
