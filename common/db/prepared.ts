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
/**
 * More distinct texts than this means some caller prepares statements of unbounded
 * shapes (a bug): the statements beyond it run unnamed, as they would without this module,
 * rather than filling every connection's memory.
 */
export const MAX_PREPARED = 500;

/** The statement's name, or null once MAX_PREPARED texts have names. */
export function statementName(sql: string): string | null {
  let name = names.get(sql);
  if (name === undefined) {
    if (names.size >= MAX_PREPARED) return null;
    name = hashedName("cirrus", sql);
    names.set(sql, name);
  }
  return name;
}

/** A statement name derived from its text: the same text, the same name. */
export function hashedName(prefix: string, sql: string): string {
  return `${prefix}_${createHash("sha1").update(sql).digest("hex").slice(0, 20)}`;
}

/** The query, to be run as a named prepared statement. */
export function prepared<Q extends Knex.Raw | Knex.QueryBuilder>(query: Q): Q {
  const name = statementName(query.toSQL().toNative().sql);
  return name === null ? query : (query.options({ name }) as Q);
}
