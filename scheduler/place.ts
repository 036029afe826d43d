/**
 * Placing one instance: read candidates, filter, weigh, claim the best host that still
 * has room (compare-and-set), record the choice and its alternates, and write the spawn
 * job to that host's queue through the outbox, all in one transaction.
 */
import type { Knex } from "knex";
import type { WeigherMultipliers } from "../common/config.js";
import { addFault, applyEvent, recordEvent } from "../common/db/instance-records.js";
import { transactionOnConnection } from "../common/db/begun-with.js";
import { withRetry } from "../common/db/retry.js";
import type { Logger } from "../common/logger.js";
import type { FlavorSnapshot, ImageSnapshot } from "../common/messages.js";
import { enqueue } from "../common/outbox.js";
import { computeQueueName } from "../common/queues.js";
import type { InstanceState } from "../common/state-machine.js";
import { hostsOfInstances, loadServerGroupSpecs } from "./candidates.js";
import { BatchLedger, RoundDecisions, type BatchItem, type Choice } from "./batch-decisions.js";
import { LOCK_OPTIONS, lockQuery, type BatchSelection, type LockedBoot } from "./batch-lock.js";
import { claimAndPlace } from "./batch-writes.js";
import { claim } from "./claim.js";
import type { FilterResult, RequestSpec, ServerGroupSpec } from "./filters/index.js";
import { resourcesForFlavor, type HostState } from "./host-state.js";
import { HostStateView } from "./host-state-view.js";
import { portsFromRows, spawnJob } from "./spawn-spec.js";

export interface PlacementDeps {
  db: Knex;
  log: Logger;
  serviceDownTimeSec: number;
  maxAttempts: number;
  /** The scheduler's host-state view; one per database is made on first use when absent. */
  view?: HostStateView;
  /** Nova's defaults when absent. */
  weigherMultipliers?: Readonly<WeigherMultipliers>;
  /** Told, after each round, how long its decisions took in memory (filters and weighers) and for how many boots. */
  onDecided?: (ms: number, boots: number) => void;
}

export interface PlaceableInstance extends InstanceState {
  id: string;
  seq: number;
  name: string;
  project_id: string;
  user_id: string;
  host: string | null;
  availability_zone: string | null;
  flavor: FlavorSnapshot;
  image: ImageSnapshot;
  metadata: Record<string, string>;
  config_drive: boolean;
  user_data: string | null;
  attempts: number;
  alternates: string[];
  tried_hosts: string[];
  scheduler_hints?: { same_host?: string[]; different_host?: string[] } | null;
}

/** What the caller resolves for a boot's spec: its group, the hosts its hints name, and when a host counts as up. */
export type ResolvedForSpec = Pick<RequestSpec, "group" | "sameHost" | "differentHost" | "upSinceMs">;

/**
 * What the filters see of a boot. Every spec is this one literal, each field always
 * present and in this order: filters read some of them once per host, and specs made by
 * spreading this into another literal came in enough hidden classes that the
 * ComputeFilter's read of upSinceMs went megamorphic, and a megamorphic read of a
 * floating-point field allocates a number each time (runFilters over 10,000 hosts in
 * B4's process: 400 KB and 0.58 to 0.71 ms a call, against 84 KB and 0.36 to 0.41 now).
 */
export function requestSpecOf(inst: PlaceableInstance, ignoreHosts: string[] = inst.tried_hosts, resolved: ResolvedForSpec = {}): RequestSpec {
  return {
    instanceId: inst.id,
    resources: resourcesForFlavor(inst.flavor),
    availabilityZone: inst.availability_zone,
    ignoreHosts,
    group: resolved.group ?? null,
    imageProperties: inst.image?.properties ?? {},
    flavorExtraSpecs: inst.flavor.extra_specs ?? {},
    sameHost: resolved.sameHost ?? null,
    differentHost: resolved.differentHost ?? null,
    upSinceMs: resolved.upSinceMs,
  };
}

export const NO_VALID_HOST = "No valid host was found. There are not enough hosts available.";

function describeTrail(trail: FilterResult["trail"], considered: number): string {
  const steps = trail.map((t) => `${t.filter} returned ${t.remaining} host(s)`).join(", ");
  return `${considered} enabled and up host(s) considered${steps ? `; ${steps}` : ""}.`;
}

/** Claims `host` and sends it the spawn job; the instance row must be locked by trx. */
export async function dispatchTo(
  trx: Knex.Transaction,
  inst: PlaceableInstance,
  host: HostState,
  alternates: string[],
  triedHosts: string[],
  requestId: string,
  opts: { skipLocked?: boolean } = {},
): Promise<boolean> {
  if (!(await claim(trx, host, inst.id, resourcesForFlavor(inst.flavor), opts))) return false;
  const attempt = inst.attempts + 1;
  await applyEvent(trx, inst, { type: "host_claimed" }, {
    host: host.host,
    node: host.hypervisorHostname,
    attempts: attempt,
    alternates: JSON.stringify(alternates),
    tried_hosts: JSON.stringify(triedHosts),
  });
  const job = await spawnJob(trx, inst, requestId, attempt);
  await enqueue(trx, { queue: computeQueueName(host.host), name: "spawn", jobId: `spawn-${inst.id}-${attempt}`, payload: job });
  return true;
}

export async function failBuild(
  trx: Knex.Transaction,
  inst: PlaceableInstance,
  requestId: string,
  fault: { message: string; details: string; host?: string | null; event: string },
): Promise<void> {
  await applyEvent(trx, inst, { type: "build_failed" });
  await addFault(trx, { instanceId: inst.id, code: 500, message: fault.message, details: fault.details, host: fault.host ?? null });
  await recordEvent(trx, { instanceId: inst.id, requestId, event: fault.event, result: "Error", details: fault.details, host: fault.host ?? null, finishAction: true });
}

export type PlaceOutcome = "placed" | "no_valid_host" | "skipped" | "raced";

export type { BatchSelection } from "./batch-lock.js";

const views = new WeakMap<Knex, HostStateView>();

export function viewFor(deps: PlacementDeps): HostStateView {
  if (deps.view) return deps.view;
  let v = views.get(deps.db);
  if (!v) views.set(deps.db, (v = new HostStateView(deps.db)));
  return v;
}

/** Rounds of decide-then-claim a batch may take before its leftovers wait for the next try. */
const MAX_ROUNDS = 8;

/**
 * Places a batch of boots: the instances of one multi-create, or whatever is waiting. The
 * boots are decided in memory over the view (batch-decisions.ts), each seeing what the
 * previous ones took; then every chosen provider is claimed, and the placements written, in
 * one statement that carries the transaction's COMMIT (batch-writes.ts). Boots whose
 * provider was lost are decided again in the next round, a transaction of its own, away
 * from every provider the batch lost.
 */
export async function placeBatch(deps: PlacementDeps, which: BatchSelection): Promise<Map<string, PlaceOutcome>> {
  const outcomes = new Map<string, PlaceOutcome>();
  const lost = new Set<string>();
  let selection = which;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const result = await placeRound(deps, selection, lost);
    for (const [id, outcome] of result.outcomes) outcomes.set(id, outcome);
    for (const providerId of result.lostProviders) lost.add(providerId);
    if (result.racedNow.length === 0) break;
    selection = { ids: result.racedNow };
  }
  return outcomes;
}

interface RoundResult {
  outcomes: Map<string, PlaceOutcome>;
  /** Boots whose chosen provider was lost in this round: decided again in the next. */
  racedNow: string[];
  lostProviders: string[];
}

/**
 * One round in one transaction: BEGIN and the lock, the decisions in memory, the claim and
 * COMMIT. Two round trips for a boot placed alone (and the view's refresh beside the first).
 */
function placeRound(deps: PlacementDeps, which: BatchSelection, lostBefore: ReadonlySet<string>): Promise<RoundResult> {
  const view = viewFor(deps);
  // What the batch claims reaches the view through its next refresh (the claims stamp changed_at).
  // The lock is the transaction's first statement and carries its BEGIN (common/db/begun-with.ts).
  // The refresh (on a connection of its own) overlaps it, and is sent first: sent after the
  // lock, its query went out about 1 ms later (B4's statement trace), since sending the lock
  // hands the CPU to the Postgres backend it wakes.
  let early: Promise<void> | null = view.refresh();
  early.catch(() => {}); // awaited below; this only keeps a failure before then from counting as unhandled
  // No knex transaction unless a boot needs one (a group, a hint, a failure, a read for its
  // spawn job): tx.knex() makes it on the transaction's connection (common/db/begun-with.ts).
  return withRetry(() => transactionOnConnection<LockedBoot, RoundResult>(deps.db, (db) => lockQuery(db, which), async (insts, tx) => {
    const refreshed = early ?? view.refresh(); // a retried transaction refreshes again
    early = null;
    await refreshed;
    const outcomes = new Map<string, PlaceOutcome>();
    const done = (racedNow: string[] = [], lostProviders: string[] = []): RoundResult => ({ outcomes, racedNow, lostProviders });
    const waiting = insts.filter((i) => i.vm_state === "building" && i.task_state === "scheduling" && i.host === null);
    for (const i of insts) if (!waiting.includes(i)) outcomes.set(i.id, "skipped");
    if ("ids" in which) for (const id of which.ids) if (!outcomes.has(id) && !insts.some((i) => i.id === id)) outcomes.set(id, "skipped");
    if (waiting.length === 0) return done();
    const memberships = waiting.flatMap((i) => (i.group_id && i.group_policy ? [{ instance_id: i.id, group_id: i.group_id, policy: i.group_policy }] : []));
    const groups = memberships.length > 0 ? await loadServerGroupSpecs(await tx.knex(), memberships) : new Map<string, ServerGroupSpec>();
    const hinted = waiting.flatMap((i) => [...(i.scheduler_hints?.same_host ?? []), ...(i.scheduler_hints?.different_host ?? [])]);
    const hintHosts = hinted.length > 0 ? await hostsOfInstances(await tx.knex(), [...new Set(hinted)]) : new Map<string, string>();
    const ports = portsFromRows(waiting.flatMap((i) => i.port_rows ?? []));
    const upSinceMs = Date.now() - deps.serviceDownTimeSec * 1000;
    const hostsOf = (list: string[] | undefined) => (list ? list.flatMap((id) => hintHosts.get(id) ?? []) : null);
    const items = new Map<string, BatchItem>(
      waiting.map((inst) => [
        inst.id,
        {
          instanceId: inst.id,
          spec: requestSpecOf(inst, inst.tried_hosts, {
            group: groups.get(inst.id) ?? null,
            sameHost: hostsOf(inst.scheduler_hints?.same_host),
            differentHost: hostsOf(inst.scheduler_hints?.different_host),
            upSinceMs,
          }),
        },
      ]),
    );
    const byId = new Map(waiting.map((i) => [i.id, i]));
    const requestIdOf = (id: string) => byId.get(id)?.create_request_id ?? "req-unknown";
    const ledger = new BatchLedger(view.claiming);
    for (const providerId of lostBefore) ledger.loseProvider(providerId);
    const decisions = new RoundDecisions(view.hosts(), ledger, { maxAttempts: deps.maxAttempts, multipliers: deps.weigherMultipliers }, view.standing);
    const chosen: Choice[] = [];
    // Each provider chosen goes into view.claiming as it is chosen (the ledger puts it there),
    // so that the process's other batches leave it alone, until this round's claim is over.
    try {
      let decidingMs = 0;
      for (const inst of waiting) {
        const started = performance.now();
        const d = decisions.decide(items.get(inst.id)!);
        decidingMs += performance.now() - started;
        if (d.kind === "chosen") chosen.push(d.choice);
        else if (d.kind === "raced") outcomes.set(inst.id, "raced");
        else {
          await failBuild(await tx.knex(), inst, requestIdOf(inst.id), { message: NO_VALID_HOST, details: describeTrail(d.trail, d.considered), event: "schedule_instances" });
          outcomes.set(inst.id, "no_valid_host");
        }
      }
      deps.onDecided?.(decidingMs, waiting.length);
      const wonNow = await claimAndPlace(
        deps.db,
        ledger.endRound(),
        chosen.map((choice) => ({ inst: byId.get(choice.instanceId)!, choice, requestId: requestIdOf(choice.instanceId), ports: ports.get(choice.instanceId) ?? [] })),
        tx,
      );
      // Committed (the claim carried the COMMIT): the view takes what was won now, before
      // the providers are released to the process's other batches.
      for (const providerId of wonNow) {
        const copy = ledger.copyOf(providerId);
        if (copy) view.applyWon(copy);
      }
      for (const c of chosen) outcomes.set(c.instanceId, wonNow.has(c.providerId) ? "placed" : "raced");
      const lostNow = chosen.filter((c) => !wonNow.has(c.providerId));
      return done(
        lostNow.map((c) => c.instanceId),
        [...new Set(lostNow.map((c) => c.providerId))],
      );
    } finally {
      ledger.release();
    }
  }, LOCK_OPTIONS));
}

/** Places one instance (waiting for its row lock if another scheduler holds it). */
export async function placeInstance(deps: PlacementDeps, instanceId: string, _requestId?: string): Promise<PlaceOutcome> {
  return (await placeUntilSettled(deps, [instanceId])).get(instanceId) ?? "skipped";
}

/**
 * Places the named instances again until none of them is raced (each pass waits for
 * their row locks, so one held by another batch is decided there, then skipped here);
 * throws after 50 passes, leaving the rest to the job's retry and the stranded-boot sweep.
 */
export async function placeUntilSettled(deps: PlacementDeps, instanceIds: string[]): Promise<Map<string, PlaceOutcome>> {
  const outcomes = new Map<string, PlaceOutcome>();
  let left = instanceIds;
  for (let attempt = 0; attempt < 50 && left.length > 0; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.random() * 20));
    const pass = await placeBatch(deps, { ids: left });
    for (const id of left) outcomes.set(id, pass.get(id) ?? "skipped");
    left = left.filter((id) => outcomes.get(id) === "raced");
  }
  if (left.length > 0) throw new Error(`could not place ${left.length} instance(s), ${left[0]} first: every claim lost its race 50 times`);
  return outcomes;
}
