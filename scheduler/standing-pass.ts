/**
 * Filter-and-weigh passes kept from one decision to the next, one per kind of request.
 * At 10,000 hosts, filtering and weighing every host took a lone boot's decision 1 to 2 ms
 * of the scheduler's CPU (B4), while between two decisions only the hosts that a claim, a
 * release or a service change touched are different. A pass records, per host of the
 * view, whether it passes every filter, the weighers' raw values, and the hosts' weights
 * (weighers/rank.ts KeptTotals); it catches up through the view's change log
 * (scheduler/host-changes.ts) by filtering and weighing again only the hosts changed since,
 * and starts over when the view's hosts are a new list or the log cannot tell.
 *
 * Heartbeats change with the clock, not through the log, so the pass keeps the heartbeat
 * filter apart: it holds the cut-off it last applied, a lower bound on the heartbeats of
 * the hosts it lets through, and the hosts it keeps out only for being down. At a newer
 * cut-off, the hosts kept out are looked at again (a few, normally), and the others only
 * when the bound says one of them may now be down. Pure: no I/O.
 */
import { runFilters, type RequestSpec } from "./filters/index.js";
import type { HostChanges } from "./host-changes.js";
import type { HostState } from "./host-state.js";
import { KeptTotals, WeighedRows, type Weigher } from "./weighers/index.js";

/** The request as a pass filters it, every filter but the heartbeat's age (checked apart). */
export function withoutLiveness(spec: RequestSpec): RequestSpec {
  return { ...spec, upSinceMs: undefined };
}

/** One kind of request's pass over the view's hosts, as of the last passFor(). */
export class StandingPass {
  /** The view's hosts and their weigher values, row for row. Read only: copy() to change. */
  readonly rows: WeighedRows;
  /** 1 where the host passes every filter, heartbeat included. Read only. */
  readonly passing: Uint8Array;
  private readonly ranking: KeptTotals;
  /** Rows that pass every filter but were down at the cut-off. */
  private readonly down = new Set<number>();
  private cutoffMs = -Infinity;
  /** No passing host was heard from before this (a lower bound). */
  private oldestPassingMs = Infinity;
  /** Where in the view's change log this pass is up to. */
  position: number;

  constructor(
    readonly list: readonly HostState[],
    private readonly spec: RequestSpec,
    weighers: readonly Weigher[],
    private readonly rowIndex: ReadonlyMap<string, number>,
    position: number,
  ) {
    this.position = position;
    this.passing = new Uint8Array(list.length);
    // runFilters keeps the hosts that pass in the list's order.
    const kept = runFilters(list, spec).hosts;
    for (let i = 0, k = 0; i < list.length && k < kept.length; i++) {
      if (list[i] === kept[k]) {
        this.passing[i] = 1;
        k++;
      }
    }
    this.rows = new WeighedRows(list as HostState[], weighers);
    this.ranking = new KeptTotals(this.rows, this.passing);
    this.recountOldest();
  }

  /** The row of a provider of the view. */
  rowOf(providerId: string): number | undefined {
    return this.rowIndex.get(providerId);
  }

  /**
   * The best k passing rows, best first, weighed across every passing row: what rank()
   * gives when every passing host is a candidate (none taken or claimed by a batch).
   */
  best(k: number): number[] {
    return this.ranking.best(k);
  }

  /** Whether any host passes. */
  get anyPassing(): boolean {
    return this.passing.includes(1);
  }

  /** The host at `row` changed in place: filters and weighs it again. */
  changed(row: number): void {
    this.ranking.leaving(row);
    this.down.delete(row);
    const host = this.list[row]!;
    const passes = runFilters([host], this.spec).hosts.length === 1;
    const up = host.lastSeenMs >= this.cutoffMs;
    this.passing[row] = passes && up ? 1 : 0;
    if (passes && !up) this.down.add(row);
    if (passes && up && host.lastSeenMs < this.oldestPassingMs) this.oldestPassingMs = host.lastSeenMs;
    this.rows.reweigh(row);
    this.ranking.entered(row);
  }

  /** Applies the heartbeat filter at `cutoffMs` (hosts last heard from before it are down). */
  upSince(cutoffMs: number): void {
    this.cutoffMs = cutoffMs;
    for (const row of this.down) {
      if (this.list[row]!.lastSeenMs >= cutoffMs) this.flip(row, 1);
    }
    if (this.oldestPassingMs >= cutoffMs) return;
    for (let row = 0; row < this.list.length; row++) {
      if (this.passing[row] === 1 && this.list[row]!.lastSeenMs < cutoffMs) this.flip(row, 0);
    }
    this.recountOldest();
  }

  private flip(row: number, passing: 0 | 1): void {
    this.ranking.leaving(row);
    this.passing[row] = passing;
    if (passing === 1) {
      this.down.delete(row);
      this.oldestPassingMs = Math.min(this.oldestPassingMs, this.list[row]!.lastSeenMs);
    } else this.down.add(row);
    this.ranking.entered(row);
  }

  private recountOldest(): void {
    let oldest = Infinity;
    for (let row = 0; row < this.list.length; row++) {
      if (this.passing[row] === 1 && this.list[row]!.lastSeenMs < oldest) oldest = this.list[row]!.lastSeenMs;
    }
    this.oldestPassingMs = oldest;
  }
}

export class StandingPasses {
  /** Most recently used last. */
  private readonly entries = new Map<string, StandingPass>();
  private indexOf = new WeakMap<readonly HostState[], Map<string, number>>();

  constructor(
    private readonly changes: HostChanges,
    private readonly capacity = 8,
  ) {}

  /**
   * The pass for requests of kind `key` (filtered as `spec`, without its heartbeat cut-off;
   * weighed by `weighers`) over `list`, the view's hosts as they are now, with hosts heard
   * from before `upSinceMs` down; null when no host passes.
   */
  passFor(key: string, list: readonly HostState[], spec: RequestSpec, weighers: readonly Weigher[], upSinceMs = -Infinity): StandingPass | null {
    let pass = this.entries.get(key);
    this.entries.delete(key);
    const changed = pass && pass.list === list && sameWeighers(pass.rows.weighers, weighers) ? this.changes.since(pass.position) : null;
    // A kind not asked for in a long while may be further behind than a new pass costs.
    if (!pass || changed === null || changed.length > list.length) pass = new StandingPass(list, spec, weighers, this.rowIndexOf(list), this.changes.position);
    else {
      for (const providerId of new Set(changed)) {
        const row = pass.rowOf(providerId);
        if (row !== undefined) pass.changed(row);
      }
      pass.position = this.changes.position;
    }
    pass.upSince(upSinceMs);
    this.entries.set(key, pass);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return pass.anyPassing ? pass : null;
  }

  private rowIndexOf(list: readonly HostState[]): Map<string, number> {
    let index = this.indexOf.get(list);
    if (!index) this.indexOf.set(list, (index = new Map(list.map((h, i) => [h.providerId, i]))));
    return index;
  }
}

function sameWeighers(kept: readonly Weigher[], wanted: readonly Weigher[]): boolean {
  const active = wanted.filter((w) => w.multiplier !== 0);
  return active.length === kept.length && active.every((w, i) => w === kept[i]);
}
