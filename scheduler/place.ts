/**
 * Placing one instance: read candidates, filter, weigh, claim the best host that still
 * has room (compare-and-set), record the choice and its alternates, and write the spawn
 * job to that host's queue through the outbox, all in one transaction.
 */
import type { Knex } from "knex";
import type { WeigherMultipliers } from "../common/config.js";
import { addFault, applyEvent, recordEvent } from "../common/db/instance-records.js";
import { transactionWithRetry } from "../common/db/retry.js";
import type { Logger } from "../common/logger.js";
import type { FlavorSnapshot, ImageSnapshot } from "../common/messages.js";
import { enqueue } from "../common/outbox.js";
import { computeQueueName } from "../common/queues.js";
import type { InstanceState } from "../common/state-machine.js";
import { hostsOfInstances, loadServerGroupSpecs } from "./candidates.js";
import { claim } from "./claim.js";
import { runFilters, type FilterResult, type RequestSpec } from "./filters/index.js";
import { consume, resourcesForFlavor, type HostState } from "./host-state.js";
import { HostStateView } from "./host-state-view.js";
import { spawnJob } from "./spawn-spec.js";
import { rank, weighersFor } from "./weighers/index.js";

export interface PlacementDeps {
  db: Knex;
  log: Logger;
  serviceDownTimeSec: number;
  maxAttempts: number;
  /** The scheduler's host-state view; one per database is made on first use when absent. */
  view?: HostStateView;
  /** Nova's defaults when absent. */
  weigherMultipliers?: Readonly<WeigherMultipliers>;
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

/** What the filters see of a boot; group and hint hosts are resolved by the caller. */
export function requestSpecOf(inst: PlaceableInstance, ignoreHosts: string[] = inst.tried_hosts): RequestSpec {
  return {
    instanceId: inst.id,
    resources: resourcesForFlavor(inst.flavor),
    availabilityZone: inst.availability_zone,
    ignoreHosts,
    imageProperties: inst.image?.properties ?? {},
    flavorExtraSpecs: inst.flavor.extra_specs ?? {},
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

/** Which instances a batch takes: named ones (waiting for their locks), or the oldest waiting ones. */
export type BatchSelection = { ids: string[] } | { pending: number; first?: string };

const views = new WeakMap<Knex, HostStateView>();

export function viewFor(deps: PlacementDeps): HostStateView {
  if (deps.view) return deps.view;
  let v = views.get(deps.db);
  if (!v) views.set(deps.db, (v = new HostStateView(deps.db)));
  return v;
}

/** How many times one instance re-ranks after losing every claim it tried, before giving up for now. */
const MAX_ROUNDS = 20;

/**
 * Places a batch of boots in one transaction (one commit): the instances of one
 * multi-create, or whatever is waiting. Each decision reads the in-memory view, and a
 * won claim is taken off that view at once, so the next instance in the batch sees the
 * capacity and group members the previous one used.
 */
export async function placeBatch(deps: PlacementDeps, which: BatchSelection): Promise<Map<string, PlaceOutcome>> {
  const view = viewFor(deps);
  await view.refresh();
  const touched = new Set<string>();
  try {
    return await transactionWithRetry(deps.db, async (trx) => {
      if (touched.size > 0) {
        // A previous try rolled back after taking claims off the view: read those hosts again.
        await view.reload(trx, [...touched]);
        touched.clear();
      }
      const outcomes = new Map<string, PlaceOutcome>();
      const insts = await lockBatch(trx, which);
      const waiting = insts.filter((i) => i.vm_state === "building" && i.task_state === "scheduling" && i.host === null);
      for (const i of insts) if (!waiting.includes(i)) outcomes.set(i.id, "skipped");
      if ("ids" in which) for (const id of which.ids) if (!outcomes.has(id) && !insts.some((i) => i.id === id)) outcomes.set(id, "skipped");
      if (waiting.length === 0) return outcomes;
      const ids = waiting.map((i) => i.id);
      const groups = await loadServerGroupSpecs(trx, ids);
      const hinted = waiting.flatMap((i) => [...(i.scheduler_hints?.same_host ?? []), ...(i.scheduler_hints?.different_host ?? [])]);
      const hintHosts = await hostsOfInstances(trx, [...new Set(hinted)]);
      const requestIds = await createRequestIds(trx, ids);
      const upSinceMs = Date.now() - deps.serviceDownTimeSec * 1000;
      for (const inst of waiting) {
        const hostsOf = (list: string[] | undefined) => (list ? list.flatMap((id) => hintHosts.get(id) ?? []) : null);
        const spec: RequestSpec = {
          ...requestSpecOf(inst),
          group: groups.get(inst.id) ?? null,
          sameHost: hostsOf(inst.scheduler_hints?.same_host),
          differentHost: hostsOf(inst.scheduler_hints?.different_host),
          upSinceMs,
        };
        const outcome = await placeOne(deps, trx, view, inst, spec, requestIds.get(inst.id) ?? "req-unknown", touched);
        outcomes.set(inst.id, outcome);
      }
      return outcomes;
    });
  } catch (err) {
    view.invalidate(touched);
    throw err;
  }
}

async function placeOne(
  deps: PlacementDeps,
  trx: Knex.Transaction,
  view: HostStateView,
  inst: PlaceableInstance,
  spec: RequestSpec,
  requestId: string,
  touched: Set<string>,
): Promise<PlaceOutcome> {
  const resources = spec.resources;
  // Hosts whose claim this decision lost (changed, or being claimed by another batch right now).
  const lostHosts = new Set<string>();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const filtered = runFilters(view.hosts(), spec);
    const open = lostHosts.size === 0 ? filtered.hosts : filtered.hosts.filter((h) => !lostHosts.has(h.providerId));
    if (filtered.hosts.length === 0) {
      await failBuild(trx, inst, requestId, {
        message: NO_VALID_HOST,
        details: describeTrail(filtered.trail, view.size),
        event: "schedule_instances",
      });
      return "no_valid_host";
    }
    if (open.length === 0) break;
    const ranked = rank(open, weighersFor(spec, deps.weigherMultipliers), deps.maxAttempts + 2);
    // Copies taken now, in the same tick as the decision: the view's objects change while this
    // awaits its claims (other batches refresh and consume), and the compare-and-set must carry
    // the generation the decision was made on, not a later one.
    const decided = ranked.map((h) => ({ live: h, seen: { ...h } }));
    const lost: string[] = [];
    for (const { live, seen: host } of decided) {
      const alternates = decided.filter((d) => d.seen !== host).slice(0, deps.maxAttempts - 1).map((d) => d.seen.host);
      touched.add(host.providerId);
      if (await dispatchTo(trx, inst, host, alternates, [], requestId, { skipLocked: true })) {
        consume(live, resources);
        if (spec.group) spec.group.hosts[host.host] = (spec.group.hosts[host.host] ?? 0) + 1;
        await recordEvent(trx, { instanceId: inst.id, requestId, event: "schedule_instances", result: "Success", host: host.host });
        return "placed";
      }
      lost.push(host.providerId);
      lostHosts.add(host.providerId);
    }
    // Every choice was lost: read those hosts again (the view keeps them, this decision moves on).
    await view.reload(trx, lost);
  }
  deps.log.warn({ instance_id: inst.id }, "every claim lost its race; the boot stays waiting for the next try");
  return "raced";
}

async function lockBatch(trx: Knex.Transaction, which: BatchSelection): Promise<PlaceableInstance[]> {
  if ("ids" in which) {
    return trx("instances").whereIn("id", which.ids).orderBy("seq").forUpdate();
  }
  const q = trx("instances").where({ vm_state: "building", task_state: "scheduling" }).whereNull("host");
  let limit = which.pending;
  if (which.first) {
    // The whole multi-create of the first boot comes first, however large, so it is placed in one pass.
    const own: { reservation_id: string } | undefined = await trx("instances").where({ id: which.first }).first("reservation_id");
    if (own) {
      const [row] = await trx("instances").where({ reservation_id: own.reservation_id, task_state: "scheduling" }).count<{ n: string }[]>("* as n");
      limit = Math.max(limit, Number(row?.n ?? 0));
      q.orderByRaw("(reservation_id = ?) DESC, (id = ?) DESC", [own.reservation_id, which.first]);
    }
  }
  return q.orderBy("seq").limit(limit).forUpdate().skipLocked();
}

async function createRequestIds(trx: Knex.Transaction, ids: string[]): Promise<Map<string, string>> {
  const rows: { instance_id: string; request_id: string }[] = await trx("instance_actions")
    .whereIn("instance_id", ids)
    .where({ action: "create" })
    .select("instance_id", "request_id");
  return new Map(rows.map((r) => [r.instance_id, r.request_id]));
}

/** Places one instance (waiting for its row lock if another scheduler holds it). */
export async function placeInstance(deps: PlacementDeps, instanceId: string, _requestId?: string): Promise<PlaceOutcome> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const outcome = (await placeBatch(deps, { ids: [instanceId] })).get(instanceId) ?? "skipped";
    if (outcome !== "raced") return outcome;
    await new Promise((r) => setTimeout(r, Math.random() * 20));
  }
  throw new Error(`could not place instance ${instanceId}: every claim lost its race 50 times`);
}
