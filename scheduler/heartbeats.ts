/**
 * Agents write their heartbeat into one Redis hash (host -> epoch ms) instead of a
 * queue message each; this copies the hash into compute_services.last_seen_at in one
 * statement, so liveness costs one query per interval whatever the number of hosts.
 */
import type { Redis } from "ioredis";
import type { Knex } from "knex";
import { prepared } from "../common/db/prepared.js";
import { heartbeatKey } from "../common/heartbeat.js";

export async function flushHeartbeats(redis: Redis, db: Knex, prefix: string): Promise<number> {
  const beats = await redis.hgetall(heartbeatKey(prefix));
  const entries = Object.entries(beats).filter(([, ms]) => Number.isFinite(Number(ms)));
  if (entries.length === 0) return 0;
  const result = await prepared(
    db.raw(
      `UPDATE compute_services cs SET last_seen_at = to_timestamp(v.ms / 1000.0)
         FROM unnest(?::text[], ?::bigint[]) AS v(host, ms)
        WHERE cs.host = v.host AND cs.last_seen_at < to_timestamp(v.ms / 1000.0)`,
      [entries.map(([host]) => host), entries.map(([, ms]) => Number(ms))],
    ),
  );
  return (result as { rowCount: number }).rowCount;
}
