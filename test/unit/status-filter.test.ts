import { describe, expect, it } from "vitest";
import { conditionsForStatus } from "../../api/servers/status-filter.js";
import type { StatusCondition } from "../../api/servers/status-filter.js";
import { serverStatus } from "../../common/status.js";

const conditionFor = (conds: StatusCondition[], vm: string) => conds.find((c) => c.vmState === vm);
const covers = (conds: StatusCondition[], vm: string, task: string | null) =>
  conds.some((c) => c.vmState === vm && c.taskStates.includes(task));

// Every vm_state Cirrus stores, and every task state it stores or that Nova's _STATE_MAP names (§1.2).
const VM_STATES = [
  "building", "active", "stopped", "paused", "suspended", "rescued", "resized",
  "soft-delete", "deleted", "error", "shelved", "shelved_offloaded",
];
const TASK_STATES: (string | null)[] = [
  null, "scheduling", "spawning", "deleting",
  "rebooting", "reboot_pending", "reboot_started", "rebooting_hard", "reboot_pending_hard", "reboot_started_hard",
  "updating_password", "rebuilding", "rebuild_block_device_mapping", "rebuild_spawning", "migrating",
  "resize_prep", "resize_migrating", "resize_migrated", "resize_finish", "resize_reverting",
];
const REBOOTING = ["rebooting", "reboot_pending", "reboot_started"];

describe("conditionsForStatus", () => {
  it("ACTIVE is vm_state active with no task, and never a rebooting one", () => {
    const conds = conditionsForStatus("ACTIVE");
    expect(conds.map((c) => c.vmState)).toEqual(["active"]);
    const active = conditionFor(conds, "active")!;
    expect(active.taskStates).toContain(null);
    expect(active.taskStates).toContain("deleting"); // maps to ACTIVE by default
    for (const t of [...REBOOTING, "rebooting_hard", "updating_password", "rebuilding", "migrating", "resize_prep"]) {
      expect(active.taskStates, t).not.toContain(t);
    }
  });

  it("BUILD is vm_state building, idle or with any task", () => {
    const conds = conditionsForStatus("BUILD");
    expect(conds.map((c) => c.vmState)).toEqual(["building"]);
    for (const t of [null, "scheduling", "spawning", "deleting"]) expect(covers(conds, "building", t), String(t)).toBe(true);
  });

  it("REBOOT is vm_state active with exactly the soft reboot tasks", () => {
    const conds = conditionsForStatus("REBOOT");
    expect(conds).toHaveLength(1);
    expect(conds[0]!.vmState).toBe("active");
    expect([...conds[0]!.taskStates].sort()).toEqual([...REBOOTING].sort());
  });

  it("REBUILD spans active, stopped and error", () => {
    const conds = conditionsForStatus("REBUILD");
    expect(conds.map((c) => c.vmState).sort()).toEqual(["active", "error", "stopped"]);
    for (const c of conds) expect(c.taskStates).not.toContain(null);
  });

  it("an unknown status matches nothing", () => {
    expect(conditionsForStatus("BOGUS")).toEqual([]);
    expect(conditionsForStatus("")).toEqual([]);
    expect(conditionsForStatus("UNKNOWN")).toEqual([]);
  });

  it("is case-insensitive", () => {
    expect(conditionsForStatus("active")).toEqual(conditionsForStatus("ACTIVE"));
    expect(conditionsForStatus("Shutoff")).toEqual(conditionsForStatus("SHUTOFF"));
    expect(conditionsForStatus("hard_reboot")).toEqual(conditionsForStatus("HARD_REBOOT"));
    expect(conditionsForStatus("shutoff")).not.toEqual([]);
  });

  it("round trip: every (vm_state, task_state) is matched by the filter for its own status", () => {
    for (const vm of VM_STATES) {
      for (const task of TASK_STATES) {
        const status = serverStatus(vm, task);
        const conds = conditionsForStatus(status);
        expect(covers(conds, vm, task), `${vm}/${task} → ${status}`).toBe(true);
        // ...and by no other status's filter
        for (const other of ["ACTIVE", "BUILD", "SHUTOFF", "ERROR", "REBOOT", "DELETED"]) {
          if (other === status) continue;
          expect(covers(conditionsForStatus(other), vm, task), `${vm}/${task} also under ${other}`).toBe(false);
        }
      }
    }
  });
});
