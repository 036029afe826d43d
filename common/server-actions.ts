/**
 * The server actions, each as Nova gates it: the vm_states it is allowed from (with no
 * task in flight), the task_state it holds while the agent works, and the vm_state it
 * ends in. Pure data; the state machine and the API's 409 messages read it.
 */
import type { VmState } from "./state-machine.js";

export type ActionKind =
  | "stop" | "start" | "reboot_soft" | "reboot_hard" | "pause" | "unpause" | "suspend" | "resume"
  | "rebuild" | "resize" | "revert_resize" | "snapshot";

export interface ActionRule {
  /** The action's name in Nova's conflict messages and in os-instance-actions. */
  nova: string;
  from: readonly VmState[];
  task: string;
  /** The vm_state once the agent reports success; `same` keeps the current one. */
  to: VmState | "same" | "rebuilt" | "restored";
}

export const ACTIONS: Record<ActionKind, ActionRule> = {
  stop: { nova: "stop", from: ["active", "error"], task: "powering-off", to: "stopped" },
  start: { nova: "start", from: ["stopped"], task: "powering-on", to: "active" },
  reboot_soft: { nova: "reboot", from: ["active"], task: "rebooting", to: "active" },
  reboot_hard: { nova: "reboot", from: ["active", "stopped", "paused", "suspended", "error"], task: "rebooting_hard", to: "active" },
  pause: { nova: "pause", from: ["active"], task: "pausing", to: "paused" },
  unpause: { nova: "unpause", from: ["paused"], task: "unpausing", to: "active" },
  suspend: { nova: "suspend", from: ["active"], task: "suspending", to: "suspended" },
  resume: { nova: "resume", from: ["suspended"], task: "resuming", to: "active" },
  // A stopped server stays stopped after a rebuild; an active or errored one becomes active.
  rebuild: { nova: "rebuild", from: ["active", "stopped", "error"], task: "rebuilding", to: "rebuilt" },
  resize: { nova: "resize", from: ["active", "stopped"], task: "resize_prep", to: "resized" },
  // Back to the vm_state the server had before the resize.
  revert_resize: { nova: "revertResize", from: ["resized"], task: "resize_reverting", to: "restored" },
  snapshot: { nova: "createImage", from: ["active", "stopped", "paused", "suspended"], task: "image_snapshot", to: "same" },
};

/** Nova's conflict message (nova/api/openstack/common.py raise_http_conflict_for_instance_invalid_state). */
export function conflictMessage(action: string, instanceId: string, attr: "vm_state" | "task_state", state: string | null): string {
  return `Cannot '${action}' instance ${instanceId} while it is in ${attr} ${state ?? "None"}`;
}
