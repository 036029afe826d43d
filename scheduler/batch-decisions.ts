/**
 * Deciding a batch of boots in memory, before any claim is written: each boot is
 * filtered and weighed over the view as the batch's earlier choices left it, so one
 * round of decisions needs one round trip to claim, not one per boot. Pure: no I/O.
 *
 * The ledger keeps the batch's own consumption apart from the shared view (other
 * batches in the process read the view at the same time): a host the batch chose is
 * copied once, and the copy carries the usage of every boot the batch put there and
 * the generation the first of those decisions saw, which the claim compares and sets.
 */
import { runFilters, type FilterResult, type RequestSpec } from "./filters/index.js";
import { consume, type HostState } from "./host-state.js";
import { withoutLiveness, type StandingPass, type StandingPasses } from "./standing-pass.js";
import { rank, weighersFor, WeighedRows } from "./weighers/index.js";
import type { WeigherMultipliers } from "../common/config.js";

export interface BatchItem {
  instanceId: string;
  spec: RequestSpec;
}

export interface Choice {
  instanceId: string;
  providerId: string;
  host: string;
  node: string;
  /** Next-best hosts, for a reschedule after a failed build. */
  alternates: string[];
}

export type Decision =
  | { kind: "chosen"; choice: Choice }
  /** No host passes the filters: the boot fails ("No valid host"). */
  | { kind: "no_valid_host"; trail: FilterResult["trail"]; considered: number }
  /** Hosts pass, but this batch lost a claim on every one of them, or another batch of this process is claiming it: try again later. */
  | { kind: "raced" };

export interface ProviderClaim {
  providerId: string;
  /** The generation the batch's first decision on this provider saw (this round). */
  generation: number;
  /** Boots placed there this round. */
  count: number;
}

export class BatchLedger {
  private readonly copies = new Map<string, HostState>();
  /** Providers whose claim this batch lost: changed under it or being claimed by another batch. */
  readonly lost = new Set<string>();

  /** Generation per provider at the start of the current round's claims on it. */
  private roundStart = new Map<string, number>();
  private roundCounts = new Map<string, number>();

  /** The providers this batch put into `claiming`. */
  private readonly mine = new Set<string>();

  /**
   * @param claiming The providers the process's batches are claiming right now
   * (HostStateView.claiming). This batch adds each provider it takes and leaves alone, like
   * lost ones, those another batch added, since a claim on one of them would lose to that
   * batch's; release() takes its own out again.
   */
  constructor(private readonly claiming: Set<string> = new Set()) {}

  /** Whether this batch may choose the provider: not lost, not being claimed by another batch of this process. */
  open(providerId: string): boolean {
    if (this.lost.has(providerId)) return false;
    return !this.claiming.has(providerId) || this.mine.has(providerId);
  }

  /** Whether every provider is open, so nothing need be checked. */
  get allOpen(): boolean {
    return this.lost.size === 0 && this.claiming.size === this.mine.size;
  }

  /** The batch's claims are over (won, lost or rolled back): its providers are open to the other batches again. */
  release(): void {
    for (const providerId of this.mine) this.claiming.delete(providerId);
    this.mine.clear();
  }

  /** The view as this batch sees it: its own copies in place of the shared hosts. */
  hosts(view: readonly HostState[]): HostState[] {
    if (this.copies.size === 0) return view as HostState[];
    return view.map((h) => this.copies.get(h.providerId) ?? h);
  }

  /** Takes one boot's resources off a host, in the batch's copy. */
  take(host: HostState, resources: RequestSpec["resources"]): HostState {
    let copy = this.copies.get(host.providerId);
    if (!copy) {
      const resourcesCopy: HostState["resources"] = {};
      for (const [rc, r] of Object.entries(host.resources)) resourcesCopy[rc as keyof HostState["resources"]] = { ...r };
      copy = { ...host, resources: resourcesCopy };
      this.copies.set(host.providerId, copy);
    }
    if (!this.mine.has(copy.providerId)) {
      this.mine.add(copy.providerId);
      this.claiming.add(copy.providerId);
    }
    if (!this.roundStart.has(copy.providerId)) this.roundStart.set(copy.providerId, copy.generation);
    this.roundCounts.set(copy.providerId, (this.roundCounts.get(copy.providerId) ?? 0) + 1);
    consume(copy, resources);
    return copy;
  }

  /** The claims this round's choices need, one per provider; starts the next round. */
  endRound(): ProviderClaim[] {
    const claims = [...this.roundStart].map(([providerId, generation]) => ({ providerId, generation, count: this.roundCounts.get(providerId)! }));
    this.roundStart = new Map();
    this.roundCounts = new Map();
    return claims;
  }

  /** A claim lost: the copy's usage is void; the batch leaves the provider alone. */
  loseProvider(providerId: string): void {
    this.copies.delete(providerId);
    this.lost.add(providerId);
  }

  /** The batch's copies of the providers it took from this round or earlier, and did not lose. */
  copied(): IterableIterator<HostState> {
    return this.copies.values();
  }

  /** The batch's copy of a provider it won (its usage includes the batch's boots). */
  copyOf(providerId: string): HostState | undefined {
    return this.copies.get(providerId);
  }
}

/** One boot's decision over the view as the batch left it; takes the choice into the ledger. */
export function decide(
  view: readonly HostState[],
  ledger: BatchLedger,
  item: BatchItem,
  opts: { maxAttempts: number; multipliers?: Readonly<WeigherMultipliers> },
): Decision {
  const filtered = runFilters(ledger.hosts(view), item.spec);
  if (filtered.hosts.length === 0) return { kind: "no_valid_host", trail: filtered.trail, considered: view.length };
  const open = ledger.allOpen ? filtered.hosts : filtered.hosts.filter((h) => ledger.open(h.providerId));
  if (open.length === 0) return { kind: "raced" };
  const ranked = rank(open, weighersFor(item.spec, opts.multipliers), opts.maxAttempts);
  const best = ranked[0]!;
  ledger.take(best, item.spec.resources);
  const group = item.spec.group;
  if (group) group.hosts[best.host] = (group.hosts[best.host] ?? 0) + 1;
  return chosen(item, best, ranked.slice(1));
}

function chosen(item: BatchItem, best: HostState, alternates: readonly HostState[]): Decision {
  const choice = { instanceId: item.instanceId, providerId: best.providerId, host: best.host, node: best.hypervisorHostname, alternates: alternates.map((h) => h.host) };
  return { kind: "chosen", choice };
}

/**
 * The decisions of one round, where runs of boots with the same request (a multi-create,
 * or many boots of one flavor and image) share one filter pass and one weighing of every
 * host: filters and weighers look at one host at a time, so after a decision only the
 * host it took resources on can change its verdict or its values, and only that host is
 * filtered and weighed again. The choices are exactly decide()'s. With the view's standing
 * passes (scheduler/standing-pass.ts) even a lone boot starts from a pass: it reads the
 * standing one as it is while every passing host is a candidate, and the round copies it,
 * with the batch's own copies of hosts put in, once the batch has taken from a host or a
 * host is not open to it. Without them the first boot of a run is decided alone, as a lone
 * boot is (the shared pass keeps every host's weigher values, more than one decision
 * needs), and the second builds the pass. The standing pass applies the heartbeat cut-off
 * itself; a round's own pass leaves it out, and each decision checks it. A request in a
 * server group is decided alone (each member's choice changes the group's hosts for the
 * next). Made afresh each round: a lost claim changes the view between rounds.
 */
export class RoundDecisions {
  /** The request the shared pass was made for (null: none, or out of date). */
  private key: string | null = null;
  /** The request of the previous decision: the second of a run builds the shared pass. */
  private previous: string | null = null;
  private rows: WeighedRows | null = null;
  private passing = new Uint8Array(0);
  /** The shared pass, while it is still the standing one, read as it is. */
  private pass: StandingPass | null = null;
  /** Rows of that pass where the batch holds a copy of the host (it took from it): put in when the pass is copied. */
  private overlay: [number, HostState][] = [];
  /** The shared pass's request, as it filters. */
  private filtering: RequestSpec | null = null;

  constructor(
    private readonly view: readonly HostState[],
    private readonly ledger: BatchLedger,
    private readonly opts: { maxAttempts: number; multipliers?: Readonly<WeigherMultipliers> },
    /** Passes kept over `view` from one round to the next (HostStateView.standing). */
    private readonly standing: StandingPasses | null = null,
  ) {}

  decide(item: BatchItem): Decision {
    const key = shareableKey(item.spec);
    if (key === null || (key !== this.key && !this.load(key, item.spec))) {
      // Alone, as a lone boot is decided (no pass to share yet, or nothing passes); it may
      // take from a host the shared pass holds, so that pass is out of date.
      this.previous = key;
      this.key = null;
      return decide(this.view, this.ledger, item, this.opts);
    }
    if (this.pass !== null) {
      if (this.overlay.length === 0 && this.ledger.allOpen) return this.decideOnStanding(this.pass, item);
      this.copyPass();
    }
    const rows = this.rows!;
    const upSince = item.spec.upSinceMs ?? -Infinity;
    const allOpen = this.ledger.allOpen;
    const open: number[] = [];
    let anyPassing = false;
    for (let i = 0; i < rows.hosts.length; i++) {
      if (this.passing[i] === 0 || !(rows.hosts[i]!.lastSeenMs >= upSince)) continue;
      anyPassing = true;
      if (allOpen || this.ledger.open(rows.hosts[i]!.providerId)) open.push(i);
    }
    if (!anyPassing) {
      this.key = null;
      return decide(this.view, this.ledger, item, this.opts); // no valid host, with decide()'s trail
    }
    if (open.length === 0) return { kind: "raced" };
    const ranked = rows.rank(Int32Array.from(open), this.opts.maxAttempts);
    const bestRow = ranked[0]!;
    const best = rows.hosts[bestRow]!;
    const taken = this.ledger.take(best, item.spec.resources);
    this.passing[bestRow] = runFilters([taken], this.filtering!).hosts.length;
    rows.update(bestRow, taken);
    return chosen(item, best, ranked.slice(1).map((r) => rows.hosts[r]!));
  }

  /** Every passing host is a candidate: the standing pass's own ranking is the answer. */
  private decideOnStanding(pass: StandingPass, item: BatchItem): Decision {
    const ranked = pass.best(this.opts.maxAttempts);
    if (ranked.length === 0) {
      // Loaded with a passing host in this same call, so not expected; decide() says why.
      this.key = null;
      return decide(this.view, this.ledger, item, this.opts);
    }
    const best = pass.rows.hosts[ranked[0]!]!;
    this.overlay.push([ranked[0]!, this.ledger.take(best, item.spec.resources)]);
    return chosen(item, best, ranked.slice(1).map((r) => pass.rows.hosts[r]!));
  }

  /** The round's own copy of the standing pass, with the batch's copies of hosts put in. */
  private copyPass(): void {
    const pass = this.pass!;
    this.rows = pass.rows.copy();
    this.passing = pass.passing.slice();
    for (const [row, copy] of this.overlay) {
      this.passing[row] = runFilters([copy], this.filtering!).hosts.length;
      this.rows.update(row, copy);
    }
    this.pass = null;
    this.overlay = [];
  }

  /** A filter pass and weighing for requests like `spec`, ready to share; false when none is to be had yet or no host passes. */
  private load(key: string, spec: RequestSpec): boolean {
    const filtering = withoutLiveness(spec);
    const weighers = weighersFor(spec, this.opts.multipliers);
    if (this.standing) {
      const pass = this.standing.passFor(key, this.view, filtering, weighers, spec.upSinceMs);
      if (!pass) return false;
      this.pass = pass;
      this.overlay = [];
      for (const copy of this.ledger.copied()) {
        const row = pass.rowOf(copy.providerId);
        if (row !== undefined) this.overlay.push([row, copy]);
      }
    } else {
      if (key !== this.previous) return false;
      this.pass = null;
      const filtered = runFilters(this.ledger.hosts(this.view), filtering);
      if (filtered.hosts.length === 0) return false;
      this.rows = new WeighedRows(filtered.hosts, weighers);
      this.passing = new Uint8Array(filtered.hosts.length).fill(1);
    }
    this.filtering = filtering;
    this.key = key;
    return true;
  }
}

/**
 * What makes two requests filter and weigh alike: everything but the instance and the
 * heartbeat cut-off (checked apart); none for a group member.
 */
function shareableKey(spec: RequestSpec): string | null {
  if (spec.group) return null;
  return JSON.stringify({ ...spec, instanceId: undefined, upSinceMs: undefined });
}
