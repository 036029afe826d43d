/**
 * Every change of an instance's (vm_state, task_state, power_state) is one call of
 * `transition`: routes, conductor and reconciler use it, nothing writes vm_state by
 * hand. A transition not in the table throws InvalidTransition, which callers turn
 * into 409 (API) or into "ignore a stale report" (conductor).
 */
import { PowerState } from "./power-state.js";
import { ACTIONS, type ActionKind } from "./server-actions.js";

export type VmState =
  | "building" | "active" | "stopped" | "paused" | "suspended" | "rescued" | "resized"
  | "soft-delete" | "deleted" | "error" | "shelved" | "shelved_offloaded";

export type TaskState = "scheduling" | "spawning" | "deleting" | (string & {}) | null;

export interface InstanceState {
  vm_state: VmState;
  task_state: TaskState;
  power_state: PowerState;
}

export type InstanceEvent =
  | { type: "create_accepted" }
  | { type: "host_claimed" }
  | { type: "spawn_succeeded"; power_state: PowerState }
  | { type: "build_failed" }
  | { type: "delete_requested" }
  | { type: "delete_failed" }
  | { type: "action_started"; action: ActionKind }
  | { type: "action_succeeded"; action: ActionKind; power_state: PowerState; restore_vm_state?: VmState }
  | { type: "action_failed"; action: ActionKind }
  | { type: "resize_confirmed"; restore_vm_state: VmState }
  /** The agent's periodic power-state sync saw this power state with no task in flight (Nova's _sync_instance_power_state). */
  | { type: "power_synced"; power_state: PowerState }
  | { type: "delete_completed" };

export class InvalidTransition extends Error {
  constructor(
    readonly state: InstanceState,
    readonly event: InstanceEvent["type"],
  ) {
    super(`cannot apply ${event} to vm_state ${state.vm_state}, task_state ${state.task_state ?? "None"}`);
    this.name = "InvalidTransition";
  }
}

type Rule<E extends InstanceEvent> = {
  from: (s: InstanceState, e: E) => boolean;
  to: (s: InstanceState, e: E) => InstanceState;
};

type Table = { [K in InstanceEvent["type"]]: Rule<Extract<InstanceEvent, { type: K }>> };

const building = (s: InstanceState) => s.vm_state === "building";

/** Only the three state fields, whatever else the caller's object (a database row) carries. */
const with_ = (s: InstanceState, change: Partial<InstanceState>): InstanceState => ({
  vm_state: change.vm_state ?? s.vm_state,
  task_state: change.task_state !== undefined ? change.task_state : s.task_state,
  power_state: change.power_state ?? s.power_state,
});

export const TRANSITIONS: Table = {
  create_accepted: {
    from: () => true,
    to: () => ({ vm_state: "building", task_state: "scheduling", power_state: PowerState.NOSTATE }),
  },
  // A host was claimed (first choice or an alternate after a failed spawn).
  host_claimed: {
    from: (s) => building(s) && (s.task_state === "scheduling" || s.task_state === "spawning"),
    to: (s) => with_(s, { task_state: "spawning" }),
  },
  spawn_succeeded: {
    from: (s) => building(s) && s.task_state === "spawning",
    to: (_s, e) => ({ vm_state: "active", task_state: null, power_state: e.power_state }),
  },
  build_failed: {
    from: (s) => building(s) && s.task_state !== "deleting",
    to: () => ({ vm_state: "error", task_state: null, power_state: PowerState.NOSTATE }),
  },
  // Delete is always accepted, whatever task is in flight (Nova does the same).
  delete_requested: {
    from: (s) => s.vm_state !== "deleted",
    to: (s) => with_(s, { task_state: "deleting" }),
  },
  // Nova puts an instance whose delete failed into ERROR; deleting it again is allowed.
  delete_failed: {
    from: (s) => s.task_state === "deleting",
    to: (s) => with_(s, { vm_state: "error", task_state: null }),
  },
  // Gated as Nova gates actions: an allowed vm_state and no task in flight.
  action_started: {
    from: (s, e) => s.task_state === null && ACTIONS[e.action].from.includes(s.vm_state),
    to: (s, e) => with_(s, { task_state: ACTIONS[e.action].task }),
  },
  action_succeeded: {
    from: (s, e) => s.task_state === ACTIONS[e.action].task,
    to: (s, e) => {
      const to = ACTIONS[e.action].to;
      const vm_state: VmState =
        to === "same" ? s.vm_state
        : to === "rebuilt" ? (s.vm_state === "stopped" ? "stopped" : "active")
        : to === "restored" ? (e.restore_vm_state ?? "active")
        : to;
      return { vm_state, task_state: null, power_state: e.power_state };
    },
  },
  // A failed rebuild may have lost the old disk: ERROR. Other failures leave the server as it was.
  action_failed: {
    from: (s, e) => s.task_state === ACTIONS[e.action].task,
    to: (s, e) => with_(s, { task_state: null, ...(e.action === "rebuild" ? { vm_state: "error" as const } : {}) }),
  },
  resize_confirmed: {
    from: (s) => s.vm_state === "resized" && s.task_state === null,
    to: (s, e) => with_(s, { vm_state: e.restore_vm_state }),
  },
  // Nova's sync rules: the hypervisor's power state is written; an ACTIVE server whose domain
  // stopped or crashed outside Cirrus becomes SHUTOFF (Nova calls its stop API); PAUSED,
  // SUSPENDED or a missing domain (NOSTATE) on an ACTIVE server are recorded only; a stopped
  // server found running stays stopped (the conductor sends a stop, as Nova's force_stop).
  power_synced: {
    from: (s) => s.task_state === null && s.vm_state !== "deleted" && s.vm_state !== "building",
    to: (s, e) =>
      with_(s, {
        power_state: e.power_state,
        ...(s.vm_state === "active" && (e.power_state === PowerState.SHUTDOWN || e.power_state === PowerState.CRASHED)
          ? { vm_state: "stopped" as const }
          : {}),
      }),
  },
  delete_completed: {
    from: (s) => s.vm_state !== "deleted",
    to: () => ({ vm_state: "deleted", task_state: null, power_state: PowerState.NOSTATE }),
  },
};

export function canTransition(state: InstanceState, event: InstanceEvent): boolean {
  return (TRANSITIONS[event.type] as Rule<InstanceEvent>).from(state, event);
}

export function transition(state: InstanceState, event: InstanceEvent): InstanceState {
  const rule = TRANSITIONS[event.type] as Rule<InstanceEvent>;
  if (!rule.from(state, event)) throw new InvalidTransition(state, event.type);
  return rule.to(state, event);
}
