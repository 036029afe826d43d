/**
 * What a round of a batch writes, in one statement: the claims (compare-and-set on each
 * provider's generation) and, on the providers won, the allocations, the instances' new
 * host and state, their spawn jobs in the outbox, and the "schedule_instances" events of
 * their create actions.
 */
import type { Knex } from "knex";
import type { BegunTransaction } from "../common/db/begun-with.js";
import { computeQueueName } from "../common/queues.js";
import type { PortSpec } from "../common/messages.js";
import { OUTBOX_CHANNEL } from "../common/outbox.js";
import { transition } from "../common/state-machine.js";
import type { Choice, ProviderClaim } from "./batch-decisions.js";
import { resourcesForFlavor } from "./host-state.js";
import type { PlaceableInstance } from "./place.js";
import { spawnJob } from "./spawn-spec.js";

export interface Placement {
  inst: PlaceableInstance;
  choice: Choice;
  requestId: string;
  /** The instance's ports, read when it was locked. */
  ports: PortSpec[];
}

/**
 * Claims the chosen providers and writes the placements on the ones won, in ONE
 * statement: each provider only if its generation is still the one the decisions saw
 * (bumped by the number of boots placed there), skipping any that another transaction
 * holds right now (a lost claim, never waited for); then, for the boots on won
 * providers only, their allocations, the instances' host and state, their spawn jobs in
 * the outbox (with one wake-up for the relay) and the "schedule_instances" events.
 * Every set goes in as one JSON parameter, so the SQL text is the same whatever the
 * batch size. The providers' ids also go in as an array, so that they are found by an
 * index probe (`= ANY(array)`): the plan guesses 100 rows for a JSON set, and at 1,000
 * hosts it hash-joined them against a scan of every provider (0.2 ms of the statement's
 * 0.9). Returns the providers won.
 *
 * The statement carries the transaction's COMMIT (`tx.commitWith`, common/db/begun-with.ts),
 * one round trip fewer: the transaction is over when this returns. With no claim to make
 * it sends nothing, and the transaction commits as usual.
 */
export async function claimAndPlace(db: Knex, claims: ProviderClaim[], chosen: Placement[], tx: BegunTransaction): Promise<Set<string>> {
  if (claims.length === 0) return new Set();
  const want = claims.map((c) => ({ id: c.providerId, gen: c.generation, n: c.count }));
  const allocations = chosen.flatMap(({ inst, choice }) =>
    Object.entries(resourcesForFlavor(inst.flavor))
      .filter(([, used]) => used !== undefined && used > 0)
      .map(([resource_class, used]) => ({ provider_id: choice.providerId, consumer_id: inst.id, resource_class, used })),
  );
  const instances = chosen.map(({ inst, choice }) => {
    const s = transition(inst, { type: "host_claimed" });
    return {
      id: inst.id, provider_id: choice.providerId, vm_state: s.vm_state, task_state: s.task_state, power_state: s.power_state,
      host: choice.host, node: choice.node, attempts: inst.attempts + 1, alternates: choice.alternates,
    };
  });
  const jobs = await Promise.all(
    chosen.map(async ({ inst, choice, requestId, ports }) => {
      const attempt = inst.attempts + 1;
      const payload = await spawnJob(() => tx.knex(), inst, requestId, attempt, ports);
      return { provider_id: choice.providerId, queue: computeQueueName(choice.host), job_name: "spawn", job_id: `spawn-${inst.id}-${attempt}`, payload };
    }),
  );
  const events = chosen.map(({ inst, choice, requestId }) => ({ instance_id: inst.id, request_id: requestId, host: choice.host, provider_id: choice.providerId }));
  // Built on db (knex only writes the text); sent on the transaction's connection by commitWith.
  const statement = db.raw(
    `WITH want AS (SELECT * FROM json_to_recordset(?::json) AS w(id uuid, gen bigint, n int)),
          locked AS (SELECT rp.id FROM resource_providers rp JOIN want w ON w.id = rp.id
                      WHERE rp.id = ANY(?::uuid[]) AND rp.generation = w.gen FOR UPDATE OF rp SKIP LOCKED),
          claimed AS (UPDATE resource_providers rp SET generation = rp.generation + w.n
                        FROM want w WHERE rp.id = w.id AND rp.id IN (SELECT id FROM locked)
                      RETURNING rp.id),
          alloc AS (INSERT INTO allocations (provider_id, consumer_id, resource_class, used)
                    SELECT a.provider_id, a.consumer_id, a.resource_class, a.used
                      FROM json_to_recordset(?::json) AS a(provider_id uuid, consumer_id uuid, resource_class text, used int)
                     WHERE a.provider_id IN (SELECT id FROM claimed)),
          inst AS (UPDATE instances i SET vm_state = v.vm_state, task_state = v.task_state, power_state = v.power_state,
                          host = v.host, node = v.node, attempts = v.attempts, alternates = v.alternates,
                          tried_hosts = '[]'::jsonb, updated_at = now()
                     FROM json_to_recordset(?::json) AS v(id uuid, provider_id uuid, vm_state text, task_state text,
                          power_state int, host text, node text, attempts int, alternates jsonb)
                    WHERE i.id = v.id AND v.provider_id IN (SELECT id FROM claimed)),
          job AS (INSERT INTO outbox (queue, job_name, job_id, payload)
                  SELECT j.queue, j.job_name, j.job_id, j.payload
                    FROM json_to_recordset(?::json) AS j(provider_id uuid, queue text, job_name text, job_id text, payload jsonb)
                   WHERE j.provider_id IN (SELECT id FROM claimed)
                  RETURNING id),
          ev AS (SELECT ia.id, e.host
                   FROM json_to_recordset(?::json) AS e(instance_id uuid, request_id text, host text, provider_id uuid)
                   JOIN instance_actions ia ON ia.instance_id = e.instance_id AND ia.request_id = e.request_id
                  WHERE e.provider_id IN (SELECT id FROM claimed)),
          ev_insert AS (INSERT INTO instance_action_events (action_id, event, result, host, finish_time)
                        SELECT ev.id, 'schedule_instances', 'Success', ev.host, now() FROM ev),
          ev_touch AS (UPDATE instance_actions SET updated_at = now() FROM ev WHERE instance_actions.id = ev.id),
          wake AS (SELECT pg_notify(?, '') FROM (SELECT 1 FROM job LIMIT 1) AS any_job)
     SELECT id, (SELECT count(*) FROM wake) AS woke FROM claimed`,
    [JSON.stringify(want), want.map((w) => w.id), JSON.stringify(allocations), JSON.stringify(instances), JSON.stringify(jobs), JSON.stringify(events), OUTBOX_CHANNEL],
  );
  const rows = await tx.commitWith<{ id: string }>(statement);
  return new Set(rows.map((r) => r.id));
}
