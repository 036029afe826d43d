/**
 * The API's `status` as a function of (vm_state, task_state), Nova's _STATE_MAP
 * (nova/api/openstack/common.py). Anything not in the map is UNKNOWN.
 */
const DEFAULT = "default";

const STATE_MAP: Record<string, Record<string, string>> = {
  active: {
    [DEFAULT]: "ACTIVE",
    rebooting: "REBOOT", reboot_pending: "REBOOT", reboot_started: "REBOOT",
    rebooting_hard: "HARD_REBOOT", reboot_pending_hard: "HARD_REBOOT", reboot_started_hard: "HARD_REBOOT",
    updating_password: "PASSWORD",
    rebuilding: "REBUILD", rebuild_block_device_mapping: "REBUILD", rebuild_spawning: "REBUILD",
    migrating: "MIGRATING",
    resize_prep: "RESIZE", resize_migrating: "RESIZE", resize_migrated: "RESIZE", resize_finish: "RESIZE",
  },
  building: { [DEFAULT]: "BUILD" },
  stopped: {
    [DEFAULT]: "SHUTOFF",
    resize_prep: "RESIZE", resize_migrating: "RESIZE", resize_migrated: "RESIZE", resize_finish: "RESIZE",
    rebuilding: "REBUILD", rebuild_block_device_mapping: "REBUILD", rebuild_spawning: "REBUILD",
  },
  resized: { [DEFAULT]: "VERIFY_RESIZE", resize_reverting: "REVERT_RESIZE" },
  paused: { [DEFAULT]: "PAUSED", migrating: "MIGRATING" },
  suspended: { [DEFAULT]: "SUSPENDED" },
  rescued: { [DEFAULT]: "RESCUE" },
  error: {
    [DEFAULT]: "ERROR",
    rebuilding: "REBUILD", rebuild_block_device_mapping: "REBUILD", rebuild_spawning: "REBUILD",
  },
  deleted: { [DEFAULT]: "DELETED" },
  "soft-delete": { [DEFAULT]: "SOFT_DELETED" },
  shelved: { [DEFAULT]: "SHELVED" },
  shelved_offloaded: { [DEFAULT]: "SHELVED_OFFLOADED" },
};

export function serverStatus(vmState: string, taskState: string | null): string {
  if (!Object.hasOwn(STATE_MAP, vmState)) return "UNKNOWN";
  const byTask = STATE_MAP[vmState]!;
  if (taskState !== null && Object.hasOwn(byTask, taskState)) return byTask[taskState]!;
  return byTask[DEFAULT]!;
}
