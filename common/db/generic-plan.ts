/**
 * A read run with its generic plan: `SET LOCAL plan_cache_mode TO force_generic_plan;
 * EXECUTE name(…)` as one simple-protocol query (its own implicit transaction, so the
 * setting ends with it, error or not), the statement prepared once per connection.
 *
 * For a statement whose plan does not depend on its values but which Postgres plans for
 * every run anyway, because its generic estimate (a third of the table for `x >= $1`)
 * always costs more than a custom plan: the view's read of what changed (scheduler/
 * host-state-rows.ts) was planned on each of 365 runs, 0.27 to 0.31 ms of a statement
 * that then runs in 0.1. Its generic plan is the same index probes.
 */
import type { Knex } from "knex";
import type pg from "pg";
import { simpleStatement } from "./simple-statement.js";

/** The setting that makes the statements after it in its transaction run with their generic plans. */
export const FORCE_GENERIC_PLAN = "SET LOCAL plan_cache_mode TO force_generic_plan";

export async function queryWithGenericPlan<R>(db: Knex, statement: Knex.Raw | Knex.QueryBuilder): Promise<R[]> {
  const conn = (await db.client.acquireConnection()) as pg.Client;
  try {
    const text = await simpleStatement(conn, statement, true);
    const results = (await conn.query(`${FORCE_GENERIC_PLAN}; ${text}`)) as unknown as pg.QueryResult[];
    return results[1]!.rows as R[];
  } finally {
    db.client.releaseConnection(conn);
  }
}
