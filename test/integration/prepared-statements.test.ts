/**
 * Hot statements run as named prepared statements (common/db/prepared.ts): Postgres keeps
 * one per connection and reuses it with new parameters, and the answers stay right.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../../common/db/knex.js";
import { MAX_PREPARED, prepared, statementName } from "../../common/db/prepared.js";
import { createTestDatabase, type TestDatabase } from "../support/services.js";

let t: TestDatabase;
let one: Db;
beforeAll(async () => {
  t = await createTestDatabase();
  // One connection, so the statement and pg_prepared_statements are seen by the same session.
  one = createDb(t.url, { min: 1, max: 1 });
});
afterAll(async () => {
  await one?.destroy();
  await t?.drop();
});

const SQL = "SELECT x * ?::int AS y FROM unnest(?::int[]) AS x ORDER BY x";

describe("prepared statements", () => {
  it("are parsed once per connection and run again with other parameters", async () => {
    const answers: number[][] = [];
    for (const factor of [2, 3, 7]) {
      const { rows } = await prepared(one.raw(SQL, [factor, [1, 2, 3]]));
      answers.push(rows.map((r: { y: number }) => r.y));
    }
    expect(answers).toEqual([[2, 4, 6], [3, 6, 9], [7, 14, 21]]);
    const { rows } = await one.raw("SELECT name, generic_plans + custom_plans AS runs FROM pg_prepared_statements");
    expect(rows).toEqual([{ name: statementName("SELECT x * $1::int AS y FROM unnest($2::int[]) AS x ORDER BY x"), runs: 3 }]);
  });

  it("name a query builder's statement after its text", async () => {
    const q = prepared(one("instances").select("id").where({ vm_state: "active" }).limit(5));
    expect(q.toSQL().toNative().sql).toBe('select "id" from "instances" where "vm_state" = $1 limit $2');
    expect(await q).toEqual([]);
    const { rows } = await one.raw("SELECT name FROM pg_prepared_statements WHERE statement LIKE 'select \"id\" from \"instances\"%'");
    expect(rows).toEqual([{ name: statementName('select "id" from "instances" where "vm_state" = $1 limit $2') }]);
  });

  it("give two texts two names, and one text one name", () => {
    expect(statementName("SELECT 1")).toBe(statementName("SELECT 1"));
    expect(statementName("SELECT 1")).not.toBe(statementName("SELECT 2"));
  });

  // Last: it fills the module's names up to the cap.
  it("beyond MAX_PREPARED texts run unnamed, and still answer", async () => {
    for (let i = 0; i < MAX_PREPARED; i++) statementName(`SELECT ${i} AS filler`);
    const { rows } = await prepared(one.raw("SELECT ?::int + 1 AS n", [41]));
    expect(rows).toEqual([{ n: 42 }]);
    expect(statementName("SELECT $1::int + 1 AS n")).toBeNull();
    const named = await one.raw("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1::int + 1%'");
    expect(named.rows).toEqual([{ n: 0 }]);
  });
});
