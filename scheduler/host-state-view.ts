/**
 * The scheduler's picture of every host, held in memory and refreshed incrementally,
 * so a decision at 10,000 hosts does not re-read 10,000 hosts.
 *
 * What changed is found through columns that triggers keep: a provider's row changes with
 * every claim and release (its generation is bumped), a service's row when anything but
 * its heartbeat changes (migration 006), and each such change records the transaction
 * that made it (changed_xid, migration 008); one epoch row moves when aggregates change.
 * A refresh reads the rows changed by any transaction that had not finished when the
 * previous refresh read (its snapshot's xmin, returned by the same statement), so a
 * change made before a refresh and committed after it is still read by the next one.
 * Providers and services are read in one statement: one round trip.
 * Heartbeats (last_seen_at) are re-read as a whole on a slower timer.
 *
 * The view can still be behind the database: the claim's compare-and-set decides, a
 * lost one reloads that provider, and a full re-read now and then bounds any drift.
 */
import type { Knex } from "knex";
import { HostChanges } from "./host-changes.js";
import type { HostState } from "./host-state.js";
import { StandingPasses } from "./standing-pass.js";
import {
  applyAggregates, readAggregates, readChanges, readHosts, readMark, readStaleLiveness, type HostAggregates, type ReadHost,
} from "./host-state-rows.js";

export interface ViewOptions {
  /** How stale heartbeats may be before a refresh re-reads them (ms). */
  livenessMaxAgeMs: number;
  /**
   * A heartbeat newer than this (ms) is read as exactly this old: the liveness read
   * returns only the services heard from longer ago (none, normally), not every service.
   * Must stay well under the service down time (the scheduler uses half of it).
   */
  freshWithinMs: number;
  /** A full re-read at least this often (ms), a bound on any drift. */
  fullResyncMs: number;
}

export const DEFAULT_VIEW_OPTIONS: ViewOptions = { livenessMaxAgeMs: 2_000, freshWithinMs: 30_000, fullResyncMs: 300_000 };

export class HostStateView {
  private readonly byProvider = new Map<string, HostState>();
  /**
   * Providers a batch of this process is claiming right now (scheduler/place.ts): the
   * process's other batches leave them alone until that claim is over, instead of choosing
   * the same best hosts and losing the compare-and-set to it.
   */
  readonly claiming = new Set<string>();
  /** Which hosts changed in place (heartbeats aside), for the standing passes. */
  private readonly changes = new HostChanges();
  /** Filter-and-weigh passes kept up to date with the hosts, one per kind of request (scheduler/standing-pass.ts). */
  readonly standing = new StandingPasses(this.changes);
  private readonly providerOfHost = new Map<string, string>();
  private list: HostState[] | null = null;
  private aggregates = new Map<string, HostAggregates>();
  private aggregatesAt: string | null = null;
  /** Where the next read of changes starts (a pg_snapshot_xmin mark); null before the first load. */
  private since: string | null = null;
  private loadedAt = 0;
  private livenessAt = 0;
  private stale = new Set<string>();
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly db: Knex,
    private readonly opts: ViewOptions = DEFAULT_VIEW_OPTIONS,
  ) {}

  /** Every registered host (usable or not: the filters decide). Do not mutate the array. */
  hosts(): HostState[] {
    return (this.list ??= [...this.byProvider.values()]);
  }

  get size(): number {
    return this.byProvider.size;
  }

  /** Brings the view up to date with what has committed; concurrent callers share one refresh. */
  async refresh(): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = this.doRefresh().finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight;
  }

  /**
   * Brings every host's heartbeat up to date now (the scheduler also runs this on a timer).
   * Only the services not heard from within freshWithinMs are read, with their exact
   * heartbeat; every other host counts as heard from freshWithinMs ago, which is never
   * later than the truth, so no host looks up for longer than it is. At 10,000 hosts the
   * read of every heartbeat took 9 to 14 ms of the event loop every 2 s, and set B4's p99.
   */
  async refreshLiveness(): Promise<void> {
    const at = Date.now();
    const { nowMs, stale } = await readStaleLiveness(this.db, this.opts.freshWithinMs);
    const floor = nowMs - this.opts.freshWithinMs;
    for (const h of this.byProvider.values()) if (h.lastSeenMs < floor) h.lastSeenMs = floor;
    for (const r of stale) {
      const id = this.providerOfHost.get(r.host);
      const h = id ? this.byProvider.get(id) : undefined;
      if (h) h.lastSeenMs = r.last_seen_ms;
    }
    this.livenessAt = at;
  }

  /** Re-reads some providers, e.g. after losing a compare-and-set on them, inside the caller's transaction. */
  async reload(db: Knex | Knex.Transaction, providerIds: string[]): Promise<void> {
    const fresh = await readHosts(db, { ids: providerIds }, this.aggregates);
    const found = new Set(fresh.map((h) => h.state.providerId));
    for (const h of fresh) this.put(h);
    for (const id of providerIds) if (!found.has(id)) this.remove(id);
  }

  /**
   * A claim of this process won: the provider now holds what the batch's copy says (its
   * usage at the generation the claim compared, plus the batch's boots, at the generation
   * it set). Taken at once, so the process's next batch sees it before the next refresh
   * reads it back; ignored if the view already holds a later generation.
   */
  applyWon(copy: HostState): void {
    const h = this.byProvider.get(copy.providerId);
    if (h && copy.generation > h.generation) {
      Object.assign(h, usageOf(copy));
      this.changes.note(h.providerId);
    }
  }

  /** Marks providers whose in-memory usage may be wrong (a transaction that claimed on them rolled back). */
  invalidate(providerIds: Iterable<string>): void {
    for (const id of providerIds) this.stale.add(id);
  }

  private async doRefresh(): Promise<void> {
    if (this.since === null || Date.now() - this.loadedAt > this.opts.fullResyncMs) return this.fullLoad();
    const changed = await readChanges(this.db, this.since, this.aggregates);
    for (const h of changed.hosts) {
      this.stale.delete(h.state.providerId);
      this.put(h);
    }
    if (changed.aggregatesAt !== this.aggregatesAt) {
      this.aggregates = await readAggregates(this.db);
      for (const h of this.byProvider.values()) applyAggregates(h, this.serviceZone(h), this.aggregates.get(h.host));
      this.changes.everything();
      this.aggregatesAt = changed.aggregatesAt;
    }
    for (const s of changed.services) {
      const id = this.providerOfHost.get(s.host);
      const h = id ? this.byProvider.get(id) : undefined;
      if (!h) continue;
      h.enabled = s.status === "enabled";
      h.forcedDown = s.forced_down;
      h.hypervisorType = s.hypervisor_type;
      h.hypervisorHostname = s.hypervisor_hostname;
      h.cpuArch = s.cpu_arch;
      h.failedBuilds = s.failed_builds;
      h.lastSeenMs = Number(s.last_seen_ms);
      this.serviceZones.set(h.providerId, s.availability_zone);
      applyAggregates(h, s.availability_zone, this.aggregates.get(h.host));
      this.changes.note(h.providerId);
    }
    if (this.stale.size > 0) {
      const ids = [...this.stale];
      this.stale.clear();
      await this.reload(this.db, ids);
    }
    if (Date.now() - this.livenessAt > this.opts.livenessMaxAgeMs) await this.refreshLiveness();
    this.since = changed.mark;
  }

  /** Every host and aggregate, read after the mark that later refreshes start from. */
  private async fullLoad(): Promise<void> {
    const { mark, aggregatesAt } = await readMark(this.db);
    this.aggregates = await readAggregates(this.db);
    const hosts = await readHosts(this.db, { all: true }, this.aggregates);
    this.byProvider.clear();
    this.providerOfHost.clear();
    this.serviceZones.clear();
    this.list = null;
    this.changes.everything();
    for (const h of hosts) this.put(h);
    this.loadedAt = Date.now();
    this.livenessAt = this.loadedAt;
    this.stale.clear();
    this.since = mark;
    this.aggregatesAt = aggregatesAt;
  }

  /** The zone each service registered, kept so a change of aggregates can be re-applied. */
  private readonly serviceZones = new Map<string, string | null>();

  private serviceZone(h: HostState): string | null {
    return this.serviceZones.get(h.providerId) ?? null;
  }

  private put({ state, serviceZone }: ReadHost): void {
    const old = this.byProvider.get(state.providerId);
    this.serviceZones.set(state.providerId, serviceZone);
    // Callers may hold the old object (a ranked list): update it in place.
    // A row read before a claim of this process committed (applyWon holds it already) has
    // older usage than the view's; its service's fields may still be newer.
    if (old) {
      Object.assign(old, state, state.generation < old.generation ? usageOf(old) : null);
      this.changes.note(old.providerId);
    } else {
      this.byProvider.set(state.providerId, state);
      this.list = null;
    }
    this.providerOfHost.set(state.host, state.providerId);
  }

  private remove(providerId: string): void {
    const h = this.byProvider.get(providerId);
    if (!h) return;
    this.byProvider.delete(providerId);
    this.providerOfHost.delete(h.host);
    this.serviceZones.delete(providerId);
    this.list = null;
  }
}

/** What a provider's generation versions: its usage, which claims and releases change. */
function usageOf(h: HostState): Pick<HostState, "generation" | "resources" | "instanceCount"> {
  return { generation: h.generation, resources: h.resources, instanceCount: h.instanceCount };
}
