/**
 * A knex statement as the text of a simple-protocol query, to be sent with others in one
 * round trip (common/db/begun-with.ts, generic-plan.ts): the simple protocol carries no
 * parameters, so the values are written in as literals, either into the statement itself
 * or into an `EXECUTE name(…)` of it prepared once per connection.
 */
import type { Knex } from "knex";
import type pg from "pg";
import { hashedName } from "./prepared.js";

/** The statement as simple-protocol text: `EXECUTE name(values)` of it prepared on conn, or with its values written in. */
export async function simpleStatement(conn: pg.Client, builder: Knex.QueryBuilder | Knex.Raw, prepare: boolean): Promise<string> {
  const { sql, bindings } = builder.toSQL().toNative();
  if (!prepare) return inlineParameters(sql, bindings);
  const name = await preparedOn(conn, sql);
  return bindings.length > 0 ? `EXECUTE ${name}(${bindings.map(literal).join(", ")})` : `EXECUTE ${name}`;
}

const preparedByConnection = new WeakMap<pg.Client, Map<string, string>>();

/**
 * The name of `sql` prepared on this connection, preparing it now if it is not yet: before
 * a transaction, or inside one (a prepared statement is the session's, kept when the
 * transaction rolls back). Named apart from common/db/prepared.ts's statements, which
 * node-postgres prepares through the protocol and would find taken.
 */
async function preparedOn(conn: pg.Client, sql: string): Promise<string> {
  let names = preparedByConnection.get(conn);
  if (!names) preparedByConnection.set(conn, (names = new Map()));
  let name = names.get(sql);
  if (name === undefined) {
    name = hashedName("first", sql);
    try {
      await conn.query(`PREPARE ${name} AS ${sql}`);
    } catch (err) {
      if ((err as { code?: string }).code !== "42P05") throw err; // prepared already (duplicate_prepared_statement)
    }
    names.set(sql, name);
  }
  return name;
}

/**
 * The statement with each `$n` outside quotes replaced by its value as a literal. Values
 * are what knex binds here: numbers, strings, booleans, null, and arrays of strings or
 * numbers (written as Postgres array literals; the statement casts them).
 */
export function inlineParameters(sql: string, bindings: readonly unknown[]): string {
  let out = "";
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      // A quoted literal or identifier, its doubled quotes included, is copied as it is.
      let j = i + 1;
      while (j < sql.length && !(sql[j] === c && sql[j + 1] !== c)) j += sql[j] === c ? 2 : 1;
      out += sql.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const m = c === "$" ? /^\$(\d+)/.exec(sql.slice(i, i + 8)) : null;
    if (m) {
      const n = Number(m[1]);
      if (n < 1 || n > bindings.length) throw new Error(`inlineParameters: no value for $${n}`);
      out += literal(bindings[n - 1]);
      i += m[0].length;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

export function literal(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`inlineParameters: ${v} is not a finite number`);
    return v < 0 ? `(${v})` : String(v);
  }
  if (typeof v === "bigint") return v < 0n ? `(${v})` : String(v);
  if (typeof v === "boolean") return v ? "TRUE" : "FALSE";
  if (typeof v === "string") return quoteLiteral(v);
  if (v instanceof Date) return quoteLiteral(v.toISOString());
  if (Array.isArray(v)) return quoteLiteral(arrayLiteral(v));
  throw new Error(`inlineParameters: cannot write a ${typeof v} as a literal`);
}

/**
 * node-postgres' escapeLiteral, the same text (quotes doubled; with a backslash, both doubled
 * in an E'' literal), made by two regular-expression replaces instead of appending one
 * character at a time: for the placement claim's JSON parameters that was 70 KB of
 * garbage strings per decision in B4's process, a fifth of all it allocated.
 */
export function quoteLiteral(s: string): string {
  const quotesDoubled = s.includes("'") ? s.replace(/'/g, "''") : s;
  return s.includes("\\") ? ` E'${quotesDoubled.replace(/\\/g, "\\\\")}'` : `'${quotesDoubled}'`;
}

function arrayLiteral(items: readonly unknown[]): string {
  const elements = items.map((e) => {
    if (e === null || e === undefined) return "NULL";
    if (typeof e === "number" && Number.isFinite(e)) return String(e);
    if (typeof e === "string") return `"${e.replace(/["\\]/g, "\\$&")}"`;
    throw new Error(`inlineParameters: cannot write an array element of type ${typeof e}`);
  });
  return `{${elements.join(",")}}`;
}
