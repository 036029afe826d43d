/**
 * Placing one instance: read candidates, filter, weigh, claim the best host that still
 * has room (compare-and-set), record the choice and its alternates, and write the spawn
 * job to that host's queue through the outbox, all in one transaction.
 */
import type { Knex } from "knex";
import { addFault, applyEvent, recordEvent } from "../common/db/instance-records.js";
import { transactionWithRetry } from "../common/db/retry.js";
import type { Logger } from "../common/logger.js";
import type { FlavorSnapshot, ImageSnapshot } from "../common/messages.js";
import { enqueue } from "../common/outbox.js";
import { computeQueueName } from "../common/queues.js";
import type { InstanceState } from "../common/state-machine.js";
import { loadCandidates, loadServerGroupSpec } from "./candidates.js";
import { claim } from "./claim.js";
import { runFilters, type FilterResult, type RequestSpec } from "./filters/index.js";
import { resourcesForFlavor, type HostState } from "./host-state.js";
import { spawnJob } from "./spawn-spec.js";
import { weigh, weighersFor } from "./weighers/index.js";

export interface PlacementDeps {
  db: Knex;
  log: Logger;
  serviceDownTimeSec: number;
  maxAttempts: number;
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
}

export function requestSpecOf(inst: PlaceableInstance, ignoreHosts: string[] = inst.tried_hosts): RequestSpec {
  return {
    instanceId: inst.id,
    resources: resourcesForFlavor(inst.flavor),
    availabilityZone: inst.availability_zone,
    ignoreHosts,
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
): Promise<boolean> {
  if (!(await claim(trx, host, inst.id, resourcesForFlavor(inst.flavor)))) return false;
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

export type PlaceOutcome = "placed" | "no_valid_host" | "skipped";

export async function placeInstance(deps: PlacementDeps, instanceId: string, requestId: string): Promise<PlaceOutcome> {
  // A lost compare-and-set means another scheduler changed a host under us: read again.
  for (let round = 0; round < 50; round++) {
    const outcome = await transactionWithRetry(deps.db, async (trx): Promise<PlaceOutcome | "raced"> => {
      const inst: PlaceableInstance | undefined = await trx("instances").where({ id: instanceId }).forUpdate().first();
      if (!inst || inst.vm_state !== "building" || inst.task_state !== "scheduling" || inst.host !== null) return "skipped";
      // (compute extras) the server group, if any, for the group filters and weighers
      const spec: RequestSpec = { ...requestSpecOf(inst), group: await loadServerGroupSpec(trx, inst.id) };
      const candidates = await loadCandidates(trx, deps.serviceDownTimeSec);
      const filtered = runFilters(candidates, spec);
      if (filtered.hosts.length === 0) {
        await failBuild(trx, inst, requestId, {
          message: NO_VALID_HOST,
          details: describeTrail(filtered.trail, candidates.length),
          event: "schedule_instances",
        });
        return "no_valid_host";
      }
      const ordered = weigh(filtered.hosts, weighersFor(spec));
      for (const host of ordered) {
        const alternates = ordered.filter((h) => h !== host).slice(0, deps.maxAttempts - 1).map((h) => h.host);
        if (await dispatchTo(trx, inst, host, alternates, [], requestId)) {
          await recordEvent(trx, { instanceId: inst.id, requestId, event: "schedule_instances", result: "Success", host: host.host });
          return "placed";
        }
      }
      return "raced";
    });
    if (outcome !== "raced") return outcome;
    await new Promise((r) => setTimeout(r, Math.random() * 20));
  }
  throw new Error(`could not place instance ${instanceId}: every claim lost its race 50 times`);
}
