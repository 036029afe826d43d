/** The inverse of the status map: which (vm_state, task_state) pairs a ?status= means. */
import { serverStatus } from "../../common/status.js";

const VM_STATES = ["building", "active", "stopped", "paused", "suspended", "rescued", "resized", "soft-delete", "deleted", "error", "shelved", "shelved_offloaded"];
const TASK_STATES = [
  null, "scheduling", "spawning", "deleting", "rebooting", "rebooting_hard", "reboot_pending", "reboot_started",
  "reboot_pending_hard", "reboot_started_hard", "updating_password", "rebuilding", "rebuild_block_device_mapping",
  "rebuild_spawning", "migrating", "resize_prep", "resize_migrating", "resize_migrated", "resize_finish", "resize_reverting",
  "powering-off", "powering-on", "pausing", "unpausing", "suspending", "resuming",
];

export interface StatusCondition {
  vmState: string;
  /** undefined: any task state that the map does not send elsewhere. */
  taskStates: (string | null)[];
}

export function conditionsForStatus(status: string): StatusCondition[] {
  const wanted = status.toUpperCase();
  const out: StatusCondition[] = [];
  for (const vm of VM_STATES) {
    const tasks = TASK_STATES.filter((t) => serverStatus(vm, t) === wanted);
    if (tasks.length > 0) out.push({ vmState: vm, taskStates: tasks });
  }
  return out;
}
