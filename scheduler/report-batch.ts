/**
 * What a batch of `spawned` and `deleted` reports does, decided in memory (no I/O): the
 * same rules as applying each report alone under its instance's row lock, in arrival
 * order. Reports for one instance see the state the batch's earlier reports left it in,
 * so a duplicate changes nothing and a spawn reported after the delete in the same
 * batch is an orphan, exactly as if they had been applied one by one.
 * scheduler/report-batch-writes.ts turns the plan into a few set-based statements.
 */
import type { LockedInstance } from "../common/db/instance-records.js";
import { instanceNameFromSeq } from "../common/instance-name.js";
import type { InstanceRef, Report } from "../common/messages.js";
import type { PowerState } from "../common/power-state.js";
import { transition, type TaskState, type VmState } from "../common/state-machine.js";

export type SpawnedReport = Extract<Report, { kind: "spawned" }>;
export type DeletedReport = Extract<Report, { kind: "deleted" }>;
/** The reports that come by the thousand in a burst of boots or deletes; they can share a commit. */
export type BatchableReport = SpawnedReport | DeletedReport;

/** The columns of a locked instance row that the decisions read. */
export type ReportedInstance = Pick<LockedInstance, "id" | "seq" | "vm_state" | "task_state" | "power_state" | "host"> & { attempts: number };

/** An instance's state after the batch, with the timestamps its reports stamp. */
export interface InstanceWrite {
  id: string;
  vm_state: VmState;
  task_state: TaskState;
  power_state: PowerState;
  /** A spawn succeeded: launched_at = now(). */
  launched: boolean;
  /** A delete completed: deleted_at = terminated_at = now(). */
  deleted: boolean;
}

/** One event on the instance action of (instance, request), as recordEvent writes it. */
export interface ActionEvent {
  instanceId: string;
  requestId: string;
  event: string;
  result: "Success" | "Error";
  host: string | null;
  details: string | null;
  finishAction: boolean;
}

/** A domain built for an instance that was deleted or moved meanwhile: the host's agent reaps it. */
export interface OrphanNotice {
  host: string;
  domain: InstanceRef & { reason: string };
  /** Makes the orphans job id deterministic, so a report applied twice sends the same job. */
  tag: string;
}

export interface ReportPlan {
  /** One entry per instance the batch changes, in instance id order. */
  instances: InstanceWrite[];
  /** Instances whose spawn succeeded: their ports go ACTIVE. */
  activatePorts: string[];
  /** Hosts with a successful spawn: their run of failed builds ends (BuildFailureWeigher). */
  clearFailedBuilds: string[];
  /** Instances whose delete completed: allocations, ports and fixed IPs are freed. */
  teardown: string[];
  /** In report order. */
  events: ActionEvent[];
  orphans: OrphanNotice[];
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Decides every report of the batch against the locked rows (`rows`: the instances that
 * exist; a report for any other changes nothing).
 */
export function planReports(reports: readonly BatchableReport[], rows: ReadonlyMap<string, ReportedInstance>): ReportPlan {
  // The batch's own view of each instance; the rows themselves are not changed.
  const current = new Map<string, ReportedInstance>();
  const at = (id: string) => current.get(id) ?? rows.get(id);
  const writes = new Map<string, InstanceWrite>();
  const activatePorts = new Set<string>();
  const clearFailedBuilds = new Set<string>();
  const teardown = new Set<string>();
  const events: ActionEvent[] = [];
  const orphans = new Map<string, OrphanNotice>();

  const change = (inst: ReportedInstance, next: Pick<InstanceWrite, "vm_state" | "task_state" | "power_state">, stamp: "launched" | "deleted") => {
    current.set(inst.id, { ...inst, ...next });
    const w = writes.get(inst.id) ?? { id: inst.id, launched: false, deleted: false, ...next };
    writes.set(inst.id, { ...w, ...next, [stamp]: true });
  };

  for (const r of reports) {
    const inst = at(r.instance_id);
    if (r.kind === "spawned") {
      // A build that finished after its instance was deleted (locally, the host being down) or
      // moved to another host left a domain nobody owns: reap it now rather than at the next sync.
      if (inst && (inst.vm_state === "deleted" || inst.host !== r.host)) {
        const reason = inst.vm_state === "deleted" ? "deleted" : `built late; the instance is on ${inst.host ?? "no host"}`;
        const tag = `late-${inst.id}-${r.attempt}`;
        // The same job id twice is one job (BullMQ deduplicates); keep the first.
        if (!orphans.has(`${r.host}\u0000${tag}`)) {
          orphans.set(`${r.host}\u0000${tag}`, { host: r.host, domain: { instance_id: inst.id, instance_name: instanceNameFromSeq(inst.seq), reason }, tag });
        }
        continue;
      }
      if (!inst || inst.attempts !== r.attempt) continue;
      if (inst.vm_state !== "building" || inst.task_state !== "spawning") continue;
      change(inst, transition(inst, { type: "spawn_succeeded", power_state: r.power_state }), "launched");
      activatePorts.add(inst.id);
      clearFailedBuilds.add(r.host);
      events.push({ instanceId: inst.id, requestId: r.request_id, event: "compute_build_and_run_instance", result: "Success", host: r.host, details: null, finishAction: true });
    } else {
      if (!inst || inst.vm_state === "deleted" || inst.host !== r.host) continue;
      change(inst, transition(inst, { type: "delete_completed" }), "deleted");
      teardown.add(inst.id);
      events.push({ instanceId: inst.id, requestId: r.request_id, event: "compute_terminate_instance", result: "Success", host: r.host, details: null, finishAction: true });
    }
  }

  return {
    instances: [...writes.values()].sort((a, b) => byString(a.id, b.id)),
    activatePorts: [...activatePorts].sort(byString),
    clearFailedBuilds: [...clearFailedBuilds].sort(byString),
    teardown: [...teardown].sort(byString),
    events,
    orphans: [...orphans.values()],
  };
}
