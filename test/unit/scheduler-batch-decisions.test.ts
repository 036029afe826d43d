import { describe, expect, it } from "vitest";
import { BatchLedger, decide, RoundDecisions, type BatchItem, type Decision } from "../../scheduler/batch-decisions.js";
import type { HostState } from "../../scheduler/host-state.js";
import { HostChanges } from "../../scheduler/host-changes.js";
import { StandingPasses } from "../../scheduler/standing-pass.js";
import { DEFAULT_WEIGHER_MULTIPLIERS } from "../../common/config.js";

function host(name: string, vcpus: number, used = 0, generation = 7): HostState {
  const inv = { reserved: 0, min_unit: 1, step_size: 1, allocation_ratio: 1 };
  return {
    providerId: `rp-${name}`, host: name, hypervisorHostname: name, generation, availabilityZone: null,
    resources: { VCPU: { total: vcpus, max_unit: vcpus, used, ...inv }, MEMORY_MB: { total: 4096, max_unit: 4096, used: 0, ...inv } },
    instanceCount: used, enabled: true, forcedDown: false, lastSeenMs: Date.now(), hypervisorType: "QEMU", cpuArch: "x86_64",
    aggregateMetadata: {}, failedBuilds: 0, tieKey: 0,
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

  it("leaves alone the providers another batch of the process is claiming, while it claims them, in both deciding paths", () => {
    const view = [host("a", 8), host("b", 4), host("c", 2)];
    const claiming = new Set(["rp-a"]);
    const ledger = new BatchLedger(claiming);
    const alone = decide(view, ledger, boot("i1"), opts);
    expect(alone.kind === "chosen" && [alone.choice.host, alone.choice.alternates]).toEqual(["b", ["c"]]);
    // A run of like boots shares one pass (RoundDecisions); it leaves rp-a alone too.
    const round = new RoundDecisions(view, new BatchLedger(claiming), opts);
    const hosts = ["r1", "r2", "r3"].map((id) => round.decide(boot(id))).map((d) => (d.kind === "chosen" ? d.choice.host : d.kind));
    expect(hosts).not.toContain("a");
    // Once that claim is over, the provider is open again.
    claiming.delete("rp-a");
    const after = decide(view, new BatchLedger(claiming), boot("i2"), opts);
    expect(after.kind === "chosen" && after.choice.host).toBe("a");
    // A batch puts each provider it takes into the set, stays free to take it again, and
    // takes its own out when its claim is over.
    const shared = new Set<string>();
    const mine = new BatchLedger(shared);
    for (const id of ["o1", "o2", "o3"]) {
      const d = decide([host("solo", 8)], mine, boot(id), opts);
      expect(d.kind === "chosen" && d.choice.host).toBe("solo");
      expect([...shared]).toEqual(["rp-solo"]);
    }
    expect(decide([host("solo", 8)], new BatchLedger(shared), boot("o4"), opts).kind).toBe("raced");
    mine.release();
    expect(shared.size).toBe(0);
    // A boot only a claimed provider could take is raced (placed again later), not failed.
    const only = [host("a", 8), host("tiny", 1, 1)];
    expect(decide(only, new BatchLedger(new Set(["rp-a"])), boot("i3"), opts).kind).toBe("raced");
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

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomHosts(rnd: () => number, n: number): HostState[] {
  return Array.from({ length: n }, (_, i) => {
    const h = host(`h${String(i).padStart(3, "0")}`, 2 + Math.floor(rnd() * 14), 0);
    h.resources.MEMORY_MB = { total: 1024 * (1 + Math.floor(rnd() * 8)), max_unit: 8192, used: 256 * Math.floor(rnd() * 4), reserved: 0, min_unit: 1, step_size: 1, allocation_ratio: 1 };
    h.resources.VCPU!.used = Math.floor(rnd() * 3);
    h.instanceCount = Math.floor(rnd() * 5);
    h.failedBuilds = rnd() < 0.1 ? 1 : 0;
    h.enabled = rnd() > 0.05;
    h.availabilityZone = rnd() < 0.5 ? "az1" : "az2";
    return h;
  });
}

const copyHosts = (hosts: HostState[]): HostState[] => structuredClone(hosts);

describe("a round's decisions for runs of identical requests", () => {
  it("choose exactly what deciding each boot alone chooses, across rounds with lost providers", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = random(seed);
      const shared = randomHosts(rnd, 25 + Math.floor(rnd() * 40));
      const views = [copyHosts(shared), copyHosts(shared)];
      const ledgers = [new BatchLedger(), new BatchLedger()];
      const group = () => ({ id: "g", policy: "anti-affinity" as const, hosts: {} as Record<string, number> });
      const groups = [group(), group()];
      const kinds = [
        (id: string, _g: number) => boot(id, 1),
        (id: string, _g: number) => ({ ...boot(id, 2), spec: { ...boot(id, 2).spec, availabilityZone: "az1" } }),
        (id: string, _g: number) => ({ ...boot(id, 1), spec: { ...boot(id, 1).spec, ignoreHosts: ["h001", "h002"] } }),
        (id: string, g: number) => ({ ...boot(id, 1), spec: { ...boot(id, 1).spec, group: groups[g]! } }),
      ];
      // Runs of one kind, as batches arrive: a multi-create, then a mix.
      const order = Array.from({ length: 60 }, (_, i) => (i < 20 ? 0 : Math.floor(rnd() * kinds.length)));
      let pending = order.map((k, i) => ({ id: `i${i}`, kind: k }));
      for (let round = 0; round < 3 && pending.length > 0; round++) {
        const cached = new RoundDecisions(views[0]!, ledgers[0]!, opts);
        const got: Decision[] = pending.map((p) => cached.decide(kinds[p.kind]!(p.id, 0)));
        const want: Decision[] = pending.map((p) => decide(views[1]!, ledgers[1]!, kinds[p.kind]!(p.id, 1), opts));
        expect(got, `seed ${seed}, round ${round}`).toEqual(want);
        expect(ledgers[0]!.endRound()).toEqual(ledgers[1]!.endRound());
        // Lose every third chosen provider; its boots are decided again next round.
        const chosen = got.flatMap((d, i) => (d.kind === "chosen" ? [{ p: pending[i]!, providerId: d.choice.providerId }] : []));
        const lost = new Set(chosen.filter((_, i) => i % 3 === 0).map((c) => c.providerId));
        for (const id of lost) for (const l of ledgers) l.loseProvider(id);
        pending = chosen.filter((c) => lost.has(c.providerId)).map((c) => c.p);
      }
      expect(groups[0]).toEqual(groups[1]);
    }
  });
});

describe("standing passes kept from one round to the next", () => {
  const packing = Object.freeze({ ...DEFAULT_WEIGHER_MULTIPLIERS, ram: -1, cpu: 0.5, numInstances: 2 });

  it("choose exactly what deciding each boot alone chooses, as hosts change, die, come back and are claimed between rounds", () => {
    for (let seed = 1; seed <= 60; seed++) {
      const rnd = random(seed);
      const now = 1_000_000;
      const live = randomHosts(rnd, 20 + Math.floor(rnd() * 50));
      for (const h of live) h.lastSeenMs = now - Math.floor(rnd() * 40_000);
      const copy = copyHosts(live); // decided alone, with no pass
      const changes = new HostChanges();
      const standing = new StandingPasses(changes, 3);
      const o = { maxAttempts: 3, multipliers: seed % 2 === 0 ? packing : DEFAULT_WEIGHER_MULTIPLIERS };
      const claiming = [new Set<string>(), new Set<string>()];
      let cutoff = now - 60_000;
      const kinds = [
        (id: string) => boot(id, 1),
        (id: string) => ({ ...boot(id, 2), spec: { ...boot(id, 2).spec, availabilityZone: "az1" } }),
        (id: string) => ({ ...boot(id, 1), spec: { ...boot(id, 1).spec, ignoreHosts: ["h001", "h002"] } }),
        (id: string) => boot(id, 3),
        (id: string) => boot(id, 13), // fewer hosts pass than a decision's alternates
      ];
      for (let round = 0; round < 12; round++) {
        // Between rounds: some hosts change (and are logged), heartbeats move (not logged),
        // the cut-off moves on, and now and then everything changes (new aggregates).
        for (let c = 0; c < 3; c++) {
          const i = Math.floor(rnd() * live.length);
          const kind = Math.floor(rnd() * 4);
          for (const v of [live, copy]) {
            const h = v[i]!;
            if (kind === 0) h.resources.VCPU!.used = Math.max(0, h.resources.VCPU!.used - 1);
            if (kind === 1) h.enabled = !h.enabled;
            if (kind === 2) h.failedBuilds = h.failedBuilds > 0 ? 0 : 1;
            if (kind === 3) h.availabilityZone = h.availabilityZone === "az1" ? "az2" : "az1";
          }
          changes.note(live[i]!.providerId);
        }
        for (let i = 0; i < live.length; i++) {
          if (rnd() < 0.3) {
            const heard = now + round * 5_000 - Math.floor(rnd() * 20_000);
            live[i]!.lastSeenMs = copy[i]!.lastSeenMs = Math.max(live[i]!.lastSeenMs, heard);
          }
        }
        if (rnd() < 0.1) changes.everything();
        cutoff += Math.floor(rnd() * 8_000);
        // Another batch of the process claims a provider now and then.
        const other = rnd() < 0.3 ? live[Math.floor(rnd() * live.length)]!.providerId : null;
        for (const s of claiming) {
          s.clear();
          if (other) s.add(other);
        }
        const ledgers = [new BatchLedger(claiming[0]), new BatchLedger(claiming[1])];
        const order = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => Math.floor(rnd() * kinds.length));
        const item = (k: number, i: number) => {
          const it = kinds[k]!(`r${round}-${i}`);
          return { ...it, spec: { ...it.spec, upSinceMs: cutoff } };
        };
        const decisions = new RoundDecisions(live, ledgers[0]!, o, standing);
        const got = order.map((k, i) => decisions.decide(item(k, i)));
        const want = order.map((k, i) => decide(copy, ledgers[1]!, item(k, i), o));
        expect(got, `seed ${seed}, round ${round}`).toEqual(want);
        // The claims won: the view takes what the batch's copies hold, as applyWon does.
        const won = ledgers.map((l) => l.endRound());
        expect(won[0]).toEqual(won[1]);
        for (const claim of won[0]!) {
          if (rnd() < 0.2) continue; // lost: the view keeps what it had
          for (const [v, l] of [[live, ledgers[0]!], [copy, ledgers[1]!]] as const) {
            const h = v.find((x) => x.providerId === claim.providerId)!;
            const c = l.copyOf(claim.providerId)!;
            Object.assign(h, { generation: c.generation, resources: structuredClone(c.resources), instanceCount: c.instanceCount });
          }
          changes.note(claim.providerId);
        }
      }
    }
  });
});
