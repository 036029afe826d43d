import { describe, expect, it } from "vitest";
import { serverStatus } from "../../common/status.js";

// Nova's _STATE_MAP (nova/api/openstack/common.py), nova-contract.md §1.2: [vm_state, task_state, status].
const NOVA_STATE_MAP: [string, string | null, string][] = [
  ["active", null, "ACTIVE"],
  ["active", "rebooting", "REBOOT"],
  ["active", "reboot_pending", "REBOOT"],
  ["active", "reboot_started", "REBOOT"],
  ["active", "rebooting_hard", "HARD_REBOOT"],
  ["active", "reboot_pending_hard", "HARD_REBOOT"],
  ["active", "reboot_started_hard", "HARD_REBOOT"],
  ["active", "updating_password", "PASSWORD"],
  ["active", "rebuilding", "REBUILD"],
  ["active", "rebuild_block_device_mapping", "REBUILD"],
  ["active", "rebuild_spawning", "REBUILD"],
  ["active", "migrating", "MIGRATING"],
  ["active", "resize_prep", "RESIZE"],
  ["active", "resize_migrating", "RESIZE"],
  ["active", "resize_migrated", "RESIZE"],
  ["active", "resize_finish", "RESIZE"],
  ["building", null, "BUILD"],
  ["stopped", null, "SHUTOFF"],
  ["stopped", "resize_prep", "RESIZE"],
  ["stopped", "resize_migrating", "RESIZE"],
  ["stopped", "resize_migrated", "RESIZE"],
  ["stopped", "resize_finish", "RESIZE"],
  ["stopped", "rebuilding", "REBUILD"],
  ["stopped", "rebuild_block_device_mapping", "REBUILD"],
  ["stopped", "rebuild_spawning", "REBUILD"],
  ["resized", null, "VERIFY_RESIZE"],
  ["resized", "resize_reverting", "REVERT_RESIZE"],
  ["paused", null, "PAUSED"],
  ["paused", "migrating", "MIGRATING"],
  ["suspended", null, "SUSPENDED"],
  ["rescued", null, "RESCUE"],
  ["error", null, "ERROR"],
  ["error", "rebuilding", "REBUILD"],
  ["error", "rebuild_block_device_mapping", "REBUILD"],
  ["error", "rebuild_spawning", "REBUILD"],
  ["deleted", null, "DELETED"],
  ["soft-delete", null, "SOFT_DELETED"],
  ["shelved", null, "SHELVED"],
  ["shelved_offloaded", null, "SHELVED_OFFLOADED"],
];

const DEFAULT_STATUS: Record<string, string> = Object.fromEntries(
  NOVA_STATE_MAP.filter(([, t]) => t === null).map(([vm, , s]) => [vm, s]),
);

describe("serverStatus (Nova _STATE_MAP)", () => {
  it.each(NOVA_STATE_MAP)("%s + %s → %s", (vm, task, status) => {
    expect(serverStatus(vm, task)).toBe(status);
  });

  it("falls back to the vm_state's default for a task state it does not map", () => {
    // building has only a default: scheduling/spawning/deleting are all BUILD.
    for (const task of ["scheduling", "spawning", "deleting", "block_device_mapping", "networking"]) {
      expect(serverStatus("building", task), task).toBe("BUILD");
    }
    expect(serverStatus("active", "deleting")).toBe("ACTIVE");
    expect(serverStatus("active", "powering-off")).toBe("ACTIVE");
    expect(serverStatus("paused", "rebooting")).toBe("PAUSED"); // rebooting maps only under active
    expect(serverStatus("suspended", "migrating")).toBe("SUSPENDED");
    expect(serverStatus("error", "deleting")).toBe("ERROR");
    expect(serverStatus("resized", "resize_prep")).toBe("VERIFY_RESIZE");
    for (const [vm, status] of Object.entries(DEFAULT_STATUS)) {
      expect(serverStatus(vm, "some_unknown_task"), vm).toBe(status);
    }
  });

  it("is UNKNOWN for an unknown vm_state, with or without a task", () => {
    expect(serverStatus("exploded", null)).toBe("UNKNOWN");
    expect(serverStatus("exploded", "rebooting")).toBe("UNKNOWN");
    expect(serverStatus("", null)).toBe("UNKNOWN");
    expect(serverStatus("ACTIVE", null)).toBe("UNKNOWN"); // vm_state is lower case
    expect(serverStatus("soft_deleted", null)).toBe("UNKNOWN"); // Nova's spelling is soft-delete
  });

  it("does not treat Object prototype keys as states or tasks", () => {
    expect(serverStatus("constructor", null)).toBe("UNKNOWN");
    expect(serverStatus("toString", null)).toBe("UNKNOWN");
    expect(serverStatus("active", "constructor")).toBe("ACTIVE");
  });
});
