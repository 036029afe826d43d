import { describe, expect, it } from "vitest";
import { PowerState } from "../../common/power-state.js";
import { planReports, type BatchableReport, type ReportPlan, type ReportedInstance } from "../../scheduler/report-batch.js";

const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

const spawning = (n: number, host = "h1", attempts = 1): ReportedInstance => ({
  id: id(n), seq: n, vm_state: "building", task_state: "spawning", power_state: PowerState.NOSTATE, host, attempts,
});
const active = (n: number, host = "h1"): ReportedInstance => ({
  id: id(n), seq: n, vm_state: "active", task_state: "deleting", power_state: PowerState.RUNNING, host, attempts: 1,
});
const spawned = (n: number, host = "h1", attempt = 1): BatchableReport => ({
  kind: "spawned", host, request_id: `req-c${n}`, instance_id: id(n), attempt, power_state: PowerState.RUNNING,
});
const deleted = (n: number, host = "h1"): BatchableReport => ({ kind: "deleted", host, request_id: `req-d${n}`, instance_id: id(n) });
const rowsOf = (...rows: ReportedInstance[]) => new Map(rows.map((r) => [r.id, r]));

describe("planReports", () => {
  it("a spawn on its host and attempt goes ACTIVE, its ports ACTIVE, the host's failed builds cleared, one event", () => {
    const plan = planReports([spawned(1)], rowsOf(spawning(1)));
    expect(plan.instances).toEqual([{ id: id(1), vm_state: "active", task_state: null, power_state: PowerState.RUNNING, launched: true, deleted: false }]);
    expect(plan.activatePorts).toEqual([id(1)]);
    expect(plan.clearFailedBuilds).toEqual(["h1"]);
    expect(plan.teardown).toEqual([]);
    expect(plan.events).toEqual([
      { instanceId: id(1), requestId: "req-c1", event: "compute_build_and_run_instance", result: "Success", host: "h1", details: null, finishAction: true },
    ]);
    expect(plan.orphans).toEqual([]);
  });

  it("a duplicate spawned report in the same batch changes nothing more", () => {
    const once = planReports([spawned(1)], rowsOf(spawning(1)));
    expect(planReports([spawned(1), spawned(1)], rowsOf(spawning(1)))).toEqual(once);
  });

  it("a spawn of another attempt, an unknown instance, or one no longer spawning changes nothing", () => {
    const nothing: ReportPlan = { instances: [], activatePorts: [], clearFailedBuilds: [], teardown: [], events: [], orphans: [] };
    expect(planReports([spawned(1, "h1", 2)], rowsOf(spawning(1)))).toEqual(nothing);
    expect(planReports([spawned(9)], rowsOf())).toEqual(nothing);
    expect(planReports([spawned(1)], rowsOf({ ...spawning(1), vm_state: "active", task_state: null }))).toEqual(nothing);
  });

  it("a spawn for a deleted or moved instance is an orphan for the reporting host, with a deterministic tag", () => {
    const gone = { ...spawning(1), vm_state: "deleted" as const, task_state: null };
    const moved = spawning(2, "h2", 2);
    const plan = planReports([spawned(1, "h1", 1), spawned(2, "h1", 1)], rowsOf(gone, moved));
    expect(plan.instances).toEqual([]);
    expect(plan.orphans).toEqual([
      { host: "h1", tag: `late-${id(1)}-1`, domain: { instance_id: id(1), instance_name: "instance-00000001", reason: "deleted" } },
      { host: "h1", tag: `late-${id(2)}-1`, domain: { instance_id: id(2), instance_name: "instance-00000002", reason: "built late; the instance is on h2" } },
    ]);
    // The same late report twice is the same job once.
    expect(planReports([spawned(1), spawned(1)], rowsOf(gone)).orphans).toHaveLength(1);
  });

  it("a delete frees the instance and marks it deleted; a second one, or one from another host, changes nothing", () => {
    const plan = planReports([deleted(1), deleted(1), deleted(2, "h9")], rowsOf(active(1), active(2)));
    expect(plan.instances).toEqual([{ id: id(1), vm_state: "deleted", task_state: null, power_state: PowerState.NOSTATE, launched: false, deleted: true }]);
    expect(plan.teardown).toEqual([id(1)]);
    expect(plan.events.map((e) => [e.instanceId, e.event])).toEqual([[id(1), "compute_terminate_instance"]]);
    expect(plan.activatePorts).toEqual([]);
  });

  it("reports for one instance see what the batch's earlier reports did: spawn then delete, delete then spawn", () => {
    const both = planReports([spawned(1), deleted(1)], rowsOf(spawning(1)));
    expect(both.instances).toEqual([{ id: id(1), vm_state: "deleted", task_state: null, power_state: PowerState.NOSTATE, launched: true, deleted: true }]);
    expect(both.activatePorts).toEqual([id(1)]);
    expect(both.teardown).toEqual([id(1)]);
    expect(both.events.map((e) => e.event)).toEqual(["compute_build_and_run_instance", "compute_terminate_instance"]);

    const late = planReports([deleted(1), spawned(1)], rowsOf(spawning(1)));
    expect(late.instances.map((w) => w.vm_state)).toEqual(["deleted"]);
    expect(late.activatePorts).toEqual([]);
    expect(late.orphans.map((o) => o.domain.reason)).toEqual(["deleted"]);
  });

  it("does not change the rows it was given", () => {
    const rows = rowsOf(spawning(1));
    planReports([spawned(1), deleted(1)], rows);
    expect(rows.get(id(1))).toEqual(spawning(1));
  });

  it("a batch decides what its reports decide one by one, each seeing the previous one's outcome", () => {
    // Deterministic pseudo-random batches over a few instances in assorted states.
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let round = 0; round < 200; round++) {
      const start = [spawning(1), spawning(2, "h2"), active(3), spawning(4, "h1", 2), { ...active(5), vm_state: "deleted" as const, task_state: null }];
      const reports = Array.from({ length: 1 + rand(8) }, () => {
        const n = 1 + rand(6);
        const host = rand(3) === 0 ? "h2" : "h1";
        return rand(2) === 0 ? spawned(n, host, 1 + rand(2)) : deleted(n, host);
      });
      const batch = planReports(reports, rowsOf(...start));
      // One by one: each report alone against the rows the previous ones left.
      const state = rowsOf(...start);
      const events = [];
      // Jobs with one id are one job (BullMQ keeps the first).
      const orphans = new Map<string, string>();
      const teardown = new Set<string>();
      for (const r of reports) {
        const alone = planReports([r], state);
        for (const w of alone.instances) state.set(w.id, { ...state.get(w.id)!, vm_state: w.vm_state, task_state: w.task_state, power_state: w.power_state });
        events.push(...alone.events);
        alone.orphans.forEach((o) => orphans.has(`${o.host} ${o.tag}`) || orphans.set(`${o.host} ${o.tag}`, o.domain.reason));
        alone.teardown.forEach((t) => teardown.add(t));
      }
      expect(batch.events).toEqual(events);
      expect(new Map(batch.orphans.map((o) => [`${o.host} ${o.tag}`, o.domain.reason]))).toEqual(orphans);
      expect(new Set(batch.teardown)).toEqual(teardown);
      for (const w of batch.instances) {
        const s = state.get(w.id)!;
        expect([w.vm_state, w.task_state, w.power_state]).toEqual([s.vm_state, s.task_state, s.power_state]);
      }
    }
  });
});
