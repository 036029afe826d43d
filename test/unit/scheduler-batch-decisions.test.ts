import { describe, expect, it } from "vitest";
import { BatchLedger, decide, type BatchItem } from "../../scheduler/batch-decisions.js";
import type { HostState } from "../../scheduler/host-state.js";

function host(name: string, vcpus: number, used = 0, generation = 7): HostState {
  const inv = { reserved: 0, min_unit: 1, step_size: 1, allocation_ratio: 1 };
  return {
    providerId: `rp-${name}`, host: name, hypervisorHostname: name, generation, availabilityZone: null,
    resources: { VCPU: { total: vcpus, max_unit: vcpus, used, ...inv }, MEMORY_MB: { total: 4096, max_unit: 4096, used: 0, ...inv } },
    instanceCount: used, enabled: true, forcedDown: false, lastSeenMs: Date.now(), hypervisorType: "QEMU", cpuArch: "x86_64",
    aggregateMetadata: {}, failedBuilds: 0,
  };
}

const boot = (id: string, vcpus = 1): BatchItem => ({
  instanceId: id,
  spec: { instanceId: id, resources: { VCPU: vcpus, MEMORY_MB: 256 }, availabilityZone: null, ignoreHosts: [] },
});
const opts = { maxAttempts: 3 };

describe("deciding a batch in memory", () => {
  it("sees what earlier boots of the batch took, without touching the shared view", () => {
    const view = [host("a", 1), host("b", 1)];
    const ledger = new BatchLedger();
    const first = decide(view, ledger, boot("i1"), opts);
    const second = decide(view, ledger, boot("i2"), opts);
    const third = decide(view, ledger, boot("i3"), opts);
    expect(first.kind === "chosen" && second.kind === "chosen").toBe(true);
    const hosts = [first, second].map((d) => (d.kind === "chosen" ? d.choice.host : null));
    expect(new Set(hosts)).toEqual(new Set(["a", "b"]));
    expect(third.kind).toBe("no_valid_host");
    expect(view.map((h) => h.resources.VCPU!.used)).toEqual([0, 0]);
  });

  it("claims each provider once per round, at the generation its first decision saw, for every boot put there", () => {
    const view = [host("a", 8, 0, 41)];
    const ledger = new BatchLedger();
    for (const id of ["i1", "i2", "i3"]) decide(view, ledger, boot(id), opts);
    expect(ledger.endRound()).toEqual([{ providerId: "rp-a", generation: 41, count: 3 }]);
    // A won provider's next round starts from the generation the batch's own claim left.
    decide(view, ledger, boot("i4"), opts);
    expect(ledger.endRound()).toEqual([{ providerId: "rp-a", generation: 44, count: 1 }]);
  });

  it("after a lost claim, decides away from that provider, and says raced when only lost ones would do", () => {
    const view = [host("a", 4), host("b", 2, 1)];
    const ledger = new BatchLedger();
    const d1 = decide(view, ledger, boot("i1"), opts);
    expect(d1.kind === "chosen" && d1.choice.host).toBe("a");
    ledger.endRound();
    ledger.loseProvider("rp-a");
    const d2 = decide(view, ledger, boot("i1"), opts);
    expect(d2.kind === "chosen" && d2.choice.host).toBe("b");
    ledger.endRound();
    ledger.loseProvider("rp-b");
    expect(decide(view, ledger, boot("i1"), opts).kind).toBe("raced");
  });

  it("gives alternates in rank order and counts a group member where it was put", () => {
    const view = [host("a", 8), host("b", 6), host("c", 4)];
    const ledger = new BatchLedger();
    const group = { id: "g", policy: "anti-affinity" as const, hosts: {} as Record<string, number> };
    const d1 = decide(view, ledger, { ...boot("i1"), spec: { ...boot("i1").spec, group } }, opts);
    expect(d1.kind === "chosen" && [d1.choice.host, ...d1.choice.alternates]).toEqual(["a", "b", "c"]);
    const d2 = decide(view, ledger, { ...boot("i2"), spec: { ...boot("i2").spec, group } }, opts);
    expect(d2.kind === "chosen" && d2.choice.host).toBe("b");
    expect(group.hosts).toEqual({ a: 1, b: 1 });
  });
});
