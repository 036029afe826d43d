/**
 * Named (server-side prepared) statements for the hot paths. An unnamed statement is
 * parsed, analysed and planned by Postgres on every execution; for the boot path's
 * CTE-heavy statements that was 35–50 % of their time (parse 0.5–0.6 ms, plan 1–1.6 ms
 * of 4–6 ms under B2's load). A named one is parsed once per connection, and after five
 * executions Postgres reuses a generic plan when it costs no more than the custom ones.
 *
 * The name is derived from the statement's final text, so two texts never share a name
 * (node-postgres refuses that) and one text always reuses its statement. Each connection
 * keeps every statement it was handed for as long as it lives, so only statements whose
 * text comes in a few shapes may be prepared: no `IN (?, ?, …)` or `VALUES (…), (…)`
 * lists that grow with the input (pass arrays, `= ANY(?::uuid[])` or unnest, instead).
 *
 * A prepared statement's result columns are fixed when it is prepared: Postgres re-plans it
 * after a migration, but fails it ("cached plan must not change result type") if its
 * result gained a column. So a prepared statement never returns `table.*` or `RETURNING *`;
 * it names its columns.
 */
import { createHash } from "node:crypto";
import type { Knex } from "knex";

const names = new Map<string, string>();
/** Beyond this many distinct texts a caller is preparing statements of unbounded shapes: a bug. */
const MAX_NAMES = 500;

export function statementName(sql: string): string {
  let name = names.get(sql);
  if (name === undefined) {
    if (names.size >= MAX_NAMES) throw new Error(`more than ${MAX_NAMES} distinct prepared statements; one of them has an unbounded shape: ${sql.slice(0, 200)}`);
    name = `cirrus_${createHash("sha1").update(sql).digest("hex").slice(0, 20)}`;
    names.set(sql, name);
  }
  return name;
}

/** The query, to be run as a named prepared statement. */
export function prepared<Q extends Knex.Raw | Knex.QueryBuilder>(query: Q): Q {
  const { sql } = query.toSQL().toNative();
  return query.options({ name: statementName(sql) }) as Q;
}
