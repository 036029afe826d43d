/**
 * What a batch of placements writes, a few statements for the whole batch: the claims
 * (compare-and-set on each provider's generation), the allocations, the instances'
 * new host and state, their spawn jobs in the outbox, and the "schedule_instances"
 * events of their create actions.
 */
import type { Knex } from "knex";
import { computeQueueName } from "../common/queues.js";
import { enqueueMany } from "../common/outbox.js";
import { transition } from "../common/state-machine.js";
import type { Choice, ProviderClaim } from "./batch-decisions.js";
import { resourcesForFlavor } from "./host-state.js";
import type { PlaceableInstance } from "./place.js";
import { loadPortsOf, spawnJob } from "./spawn-spec.js";

/**
 * Claims providers at once: each only if its generation is still the one the decisions
 * saw, bumped by the number of boots placed there. A provider another transaction holds
 * right now is skipped (a lost claim), never waited for. Returns the providers won.
 */
export async function claimProviders(trx: Knex.Transaction, claims: ProviderClaim[]): Promise<Set<string>> {
  if (claims.length === 0) return new Set();
  const values = claims.map(() => "(?::uuid, ?::bigint, ?::int)").join(", ");
  const { rows } = (await trx.raw(
    `WITH want(id, gen, n) AS (VALUES ${values}),
          locked AS (SELECT rp.id FROM resource_providers rp JOIN want w ON w.id = rp.id
                      WHERE rp.generation = w.gen FOR UPDATE OF rp SKIP LOCKED)
     UPDATE resource_providers rp SET generation = rp.generation + w.n
       FROM want w WHERE rp.id = w.id AND rp.id IN (SELECT id FROM locked)
     RETURNING rp.id`,
    claims.flatMap((c) => [c.providerId, c.generation, c.count]),
  )) as { rows: { id: string }[] };
  return new Set(rows.map((r) => r.id));
}

export interface Placement {
  inst: PlaceableInstance;
  choice: Choice;
  requestId: string;
}

export async function writePlacements(trx: Knex.Transaction, placed: Placement[]): Promise<void> {
  if (placed.length === 0) return;
  const allocations = placed.flatMap(({ inst, choice }) =>
    Object.entries(resourcesForFlavor(inst.flavor))
      .filter(([, used]) => used !== undefined && used > 0)
      .map(([resource_class, used]) => ({ provider_id: choice.providerId, consumer_id: inst.id, resource_class, used })),
  );
  if (allocations.length > 0) await trx("allocations").insert(allocations);

  const rows = placed.map(({ inst, choice }) => {
    const s = transition(inst, { type: "host_claimed" });
    return [inst.id, s.vm_state, s.task_state, s.power_state, choice.host, choice.node, inst.attempts + 1, JSON.stringify(choice.alternates)];
  });
  await trx.raw(
    `UPDATE instances i SET vm_state = v.vm_state, task_state = v.task_state, power_state = v.power_state,
            host = v.host, node = v.node, attempts = v.attempts, alternates = v.alternates, tried_hosts = '[]'::jsonb, updated_at = now()
       FROM (VALUES ${rows.map(() => "(?::uuid, ?, ?, ?::int, ?, ?, ?::int, ?::jsonb)").join(", ")})
            AS v(id, vm_state, task_state, power_state, host, node, attempts, alternates)
      WHERE i.id = v.id`,
    rows.flat(),
  );

  const ports = await loadPortsOf(trx, placed.map((p) => p.inst.id));
  const jobs = await Promise.all(
    placed.map(async ({ inst, choice, requestId }) => {
      const attempt = inst.attempts + 1;
      const job = await spawnJob(trx, inst, requestId, attempt, ports.get(inst.id) ?? []);
      return { queue: computeQueueName(choice.host), name: "spawn", jobId: `spawn-${inst.id}-${attempt}`, payload: job };
    }),
  );
  await enqueueMany(trx, jobs);

  const events = placed.map(({ inst, choice, requestId }) => [inst.id, requestId, choice.host]);
  await trx.raw(
    `WITH v(instance_id, request_id, host) AS (VALUES ${events.map(() => "(?::uuid, ?, ?)").join(", ")}),
          a AS (SELECT ia.id, v.host FROM instance_actions ia JOIN v ON ia.instance_id = v.instance_id AND ia.request_id = v.request_id),
          e AS (INSERT INTO instance_action_events (action_id, event, result, host, finish_time)
                SELECT a.id, 'schedule_instances', 'Success', a.host, now() FROM a)
     UPDATE instance_actions SET updated_at = now() FROM a WHERE instance_actions.id = a.id`,
    events.flat(),
  );
}
