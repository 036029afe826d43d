import { describe, expect, it } from "vitest";
import { PowerState } from "../../common/power-state.js";
import { InvalidTransition, TRANSITIONS, canTransition, transition } from "../../common/state-machine.js";
import type { InstanceEvent, InstanceState, TaskState, VmState } from "../../common/state-machine.js";

const VM_STATES: VmState[] = [
  "building", "active", "stopped", "paused", "suspended", "rescued", "resized",
  "soft-delete", "deleted", "error", "shelved", "shelved_offloaded",
];
const TASK_STATES: TaskState[] = [null, "scheduling", "spawning", "deleting", "powering-off", "rebuilding"];

const st = (vm_state: VmState, task_state: TaskState, power_state: PowerState = PowerState.RUNNING): InstanceState => ({
  vm_state,
  task_state,
  power_state,
});

const ALL_STATES: InstanceState[] = VM_STATES.flatMap((vm) => TASK_STATES.map((t) => st(vm, t)));

const EVENTS: Record<InstanceEvent["type"], InstanceEvent> = {
  create_accepted: { type: "create_accepted" },
  host_claimed: { type: "host_claimed" },
  spawn_succeeded: { type: "spawn_succeeded", power_state: PowerState.RUNNING },
  build_failed: { type: "build_failed" },
  delete_requested: { type: "delete_requested" },
  delete_failed: { type: "delete_failed" },
  delete_completed: { type: "delete_completed" },
  action_started: { type: "action_started", action: "stop" },
  action_succeeded: { type: "action_succeeded", action: "stop", power_state: PowerState.SHUTDOWN },
  action_failed: { type: "action_failed", action: "rebuild" },
  resize_confirmed: { type: "resize_confirmed", restore_vm_state: "stopped" },
  power_synced: { type: "power_synced", power_state: PowerState.SHUTDOWN },
};

const label = (s: InstanceState) => `${s.vm_state}/${s.task_state ?? "None"}`;

/** Explicit expectations per event: accepted from → result, and states it must refuse. */
const CASES: {
  event: InstanceEvent;
  allowed: [InstanceState, InstanceState][];
  refused: InstanceState[];
}[] = [
  {
    event: EVENTS.create_accepted,
    allowed: [
      [st("building", null, PowerState.NOSTATE), st("building", "scheduling", PowerState.NOSTATE)],
      [st("active", null, PowerState.RUNNING), st("building", "scheduling", PowerState.NOSTATE)],
    ],
    refused: [], // accepted from everything: it builds the initial state
  },
  {
    event: EVENTS.host_claimed,
    allowed: [
      [st("building", "scheduling", PowerState.NOSTATE), st("building", "spawning", PowerState.NOSTATE)],
      // an alternate host claimed after a failed spawn
      [st("building", "spawning", PowerState.NOSTATE), st("building", "spawning", PowerState.NOSTATE)],
    ],
    refused: [st("building", null), st("building", "deleting"), st("active", null), st("error", null), st("deleted", null)],
  },
  {
    event: { type: "spawn_succeeded", power_state: PowerState.PAUSED },
    allowed: [[st("building", "spawning", PowerState.NOSTATE), st("active", null, PowerState.PAUSED)]],
    refused: [st("building", "scheduling"), st("building", null), st("building", "deleting"), st("active", null), st("error", null)],
  },
  {
    event: EVENTS.build_failed,
    allowed: [
      [st("building", "scheduling", PowerState.NOSTATE), st("error", null, PowerState.NOSTATE)],
      [st("building", "spawning", PowerState.RUNNING), st("error", null, PowerState.NOSTATE)],
      [st("building", null, PowerState.NOSTATE), st("error", null, PowerState.NOSTATE)],
    ],
    refused: [st("building", "deleting"), st("active", null), st("error", null), st("deleted", null)],
  },
  {
    event: EVENTS.delete_requested,
    allowed: [
      [st("active", null, PowerState.RUNNING), st("active", "deleting", PowerState.RUNNING)],
      [st("building", "spawning", PowerState.NOSTATE), st("building", "deleting", PowerState.NOSTATE)],
      [st("building", "scheduling", PowerState.NOSTATE), st("building", "deleting", PowerState.NOSTATE)],
      [st("error", null, PowerState.NOSTATE), st("error", "deleting", PowerState.NOSTATE)],
      [st("stopped", "deleting", PowerState.SHUTDOWN), st("stopped", "deleting", PowerState.SHUTDOWN)],
    ],
    refused: [st("deleted", null), st("deleted", "deleting")],
  },
  {
    event: EVENTS.delete_failed,
    allowed: [
      [st("active", "deleting", PowerState.RUNNING), st("error", null, PowerState.RUNNING)],
      [st("building", "deleting", PowerState.NOSTATE), st("error", null, PowerState.NOSTATE)],
    ],
    refused: [st("active", null), st("building", "spawning"), st("error", null)],
  },
  {
    event: EVENTS.delete_completed,
    allowed: [
      [st("active", "deleting", PowerState.RUNNING), st("deleted", null, PowerState.NOSTATE)],
      [st("error", null, PowerState.NOSTATE), st("deleted", null, PowerState.NOSTATE)],
      [st("building", "spawning", PowerState.NOSTATE), st("deleted", null, PowerState.NOSTATE)],
    ],
    refused: [st("deleted", null), st("deleted", "deleting")],
  },
  {
    event: EVENTS.action_started,
    allowed: [
      [st("active", null), st("active", "powering-off")],
      [st("error", null, PowerState.NOSTATE), st("error", "powering-off", PowerState.NOSTATE)],
    ],
    refused: [st("stopped", null), st("active", "rebuilding"), st("building", "spawning"), st("active", "deleting")],
  },
  {
    event: EVENTS.action_succeeded,
    allowed: [[st("active", "powering-off"), st("stopped", null, PowerState.SHUTDOWN)]],
    refused: [st("active", null), st("active", "rebuilding")],
  },
  {
    event: EVENTS.action_failed,
    allowed: [[st("stopped", "rebuilding", PowerState.SHUTDOWN), st("error", null, PowerState.SHUTDOWN)]],
    refused: [st("active", null), st("active", "powering-off")],
  },
  {
    event: EVENTS.resize_confirmed,
    allowed: [[st("resized", null, PowerState.SHUTDOWN), st("stopped", null, PowerState.SHUTDOWN)]],
    refused: [st("active", null), st("resized", "resize_reverting")],
  },
  {
    event: EVENTS.power_synced,
    allowed: [
      [st("active", null, PowerState.RUNNING), st("stopped", null, PowerState.SHUTDOWN)],
      [st("stopped", null, PowerState.SHUTDOWN), st("stopped", null, PowerState.SHUTDOWN)],
      [st("error", null, PowerState.NOSTATE), st("error", null, PowerState.SHUTDOWN)],
    ],
    // a task in flight is skipped, as Nova skips it
    refused: [st("active", "powering-off"), st("active", "rebooting"), st("building", "spawning"), st("building", null), st("deleted", null), st("active", "deleting")],
  },
];

describe("power-state sync (Nova's _sync_instance_power_state)", () => {
  const sync = (s: InstanceState, p: PowerState) => transition(s, { type: "power_synced", power_state: p });
  it("makes an ACTIVE server whose domain stopped or crashed SHUTOFF", () => {
    expect(sync(st("active", null), PowerState.SHUTDOWN)).toEqual(st("stopped", null, PowerState.SHUTDOWN));
    expect(sync(st("active", null), PowerState.CRASHED)).toEqual(st("stopped", null, PowerState.CRASHED));
  });
  it("only records PAUSED, SUSPENDED or a missing domain on an ACTIVE server, and a running domain of a stopped one", () => {
    expect(sync(st("active", null), PowerState.PAUSED)).toEqual(st("active", null, PowerState.PAUSED));
    expect(sync(st("active", null), PowerState.NOSTATE)).toEqual(st("active", null, PowerState.NOSTATE));
    expect(sync(st("stopped", null, PowerState.SHUTDOWN), PowerState.RUNNING)).toEqual(st("stopped", null, PowerState.RUNNING));
  });
});

describe("state machine", () => {
  it("covers every event of the TRANSITIONS table", () => {
    expect(CASES.map((c) => c.event.type).sort()).toEqual(Object.keys(TRANSITIONS).sort());
  });

  for (const c of CASES) {
    describe(c.event.type, () => {
      it.each(c.allowed.map(([from, to]) => ({ from, to, name: label(from) })))("is accepted from $name", ({ from, to }) => {
        const before = { ...from };
        expect(canTransition(from, c.event)).toBe(true);
        expect(transition(from, c.event)).toStrictEqual(to);
        expect(from).toStrictEqual(before); // the input is not mutated
      });

      if (c.refused.length > 0) {
        it.each(c.refused.map((from) => ({ from, name: label(from) })))("is refused from $name", ({ from }) => {
          expect(canTransition(from, c.event)).toBe(false);
          let caught: unknown;
          try {
            transition(from, c.event);
          } catch (err) {
            caught = err;
          }
          expect(caught).toBeInstanceOf(InvalidTransition);
          const e = caught as InvalidTransition;
          expect(e.name).toBe("InvalidTransition");
          expect(e.event).toBe(c.event.type);
          expect(e.state).toStrictEqual(from);
          expect(e.message).toContain(c.event.type);
          expect(e.message).toContain(from.vm_state);
        });
      }
    });
  }

  it("accepts delete_requested from every non-deleted state, including while spawning", () => {
    for (const s of ALL_STATES) {
      if (s.vm_state === "deleted") {
        expect(() => transition(s, EVENTS.delete_requested), label(s)).toThrow(InvalidTransition);
      } else {
        expect(transition(s, EVENTS.delete_requested), label(s)).toStrictEqual({ ...s, task_state: "deleting" });
      }
    }
  });

  it("accepts spawn_succeeded only from building/spawning", () => {
    const accepted = ALL_STATES.filter((s) => canTransition(s, EVENTS.spawn_succeeded)).map(label);
    expect(accepted).toEqual(["building/spawning"]);
    for (const s of ALL_STATES) {
      if (label(s) === "building/spawning") continue;
      expect(() => transition(s, EVENTS.spawn_succeeded), label(s)).toThrow(/spawn_succeeded/);
    }
  });

  it("canTransition agrees with transition for every event and state", () => {
    for (const e of Object.values(EVENTS)) {
      for (const s of ALL_STATES) {
        const ok = canTransition(s, e);
        if (ok) expect(() => transition(s, e), `${e.type} ${label(s)}`).not.toThrow();
        else expect(() => transition(s, e), `${e.type} ${label(s)}`).toThrow(InvalidTransition);
      }
    }
  });

  it("names the task state None in the message when it is null", () => {
    expect(() => transition(st("active", null), EVENTS.spawn_succeeded)).toThrow(
      "cannot apply spawn_succeeded to vm_state active, task_state None",
    );
  });

  describe("the result never carries extra fields", () => {
    const KEYS = ["power_state", "task_state", "vm_state"];
    for (const e of Object.values(EVENTS)) {
      it(`${e.type}, from a plain state`, () => {
        for (const s of ALL_STATES.filter((x) => canTransition(x, e))) {
          expect(Object.keys(transition(s, e)).sort(), label(s)).toEqual(KEYS);
        }
      });
      // Callers hand in whole instance rows (common/db/instance-records.ts applyEvent).
      it(`${e.type}, from a database row with more columns`, () => {
        for (const s of ALL_STATES.filter((x) => canTransition(x, e))) {
          const row = { ...s, id: "9f0c", host: "compute-1", updated_at: new Date(0) };
          expect(Object.keys(transition(row, e)).sort(), label(s)).toEqual(KEYS);
        }
      });
    }
  });
});
