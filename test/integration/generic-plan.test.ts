/**
 * queryWithGenericPlan (common/db/generic-plan.ts): the statement runs by EXECUTE with its
 * generic plan, the setting does not outlive the query, and a failure leaves the connection
 * clean.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queryWithGenericPlan } from "../../common/db/generic-plan.js";
import { createDb, type Db } from "../../common/db/knex.js";
import { createTestDatabase, type TestDatabase } from "../support/services.js";

let t: TestDatabase;
/** One connection, so that its prepared statements and settings can be read back. */
let one: Db;
beforeAll(async () => {
  t = await createTestDatabase();
  one = createDb(t.url, { min: 1, max: 1 });
  await one.raw("CREATE TABLE marks (id int PRIMARY KEY, at bigint NOT NULL)");
  await one.raw("CREATE INDEX marks_at ON marks (at)");
  await one.raw("INSERT INTO marks SELECT g, g FROM generate_series(1, 5000) g");
  await one.raw("ANALYZE marks");
});
afterAll(async () => {
  await one?.destroy();
  await t?.drop();
});

describe("queryWithGenericPlan", () => {
  it("runs the statement with its generic plan every time, and the setting ends with the query", async () => {
    const read = (since: number) => queryWithGenericPlan<{ id: number; mode: string }>(one, one.raw("SELECT id, current_setting('plan_cache_mode') AS mode FROM marks WHERE at >= ? ORDER BY id", [since]));
    expect(await read(4999)).toEqual([{ id: 4999, mode: "force_generic_plan" }, { id: 5000, mode: "force_generic_plan" }]);
    for (let i = 0; i < 7; i++) expect(await read(5000 - i)).toHaveLength(i + 1);
    const { rows } = await one.raw("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'PREPARE % FROM marks WHERE at >= $1%'");
    expect(rows).toEqual([{ generic_plans: 8, custom_plans: 0 }]);
    expect((await one.raw("SELECT current_setting('plan_cache_mode') AS mode")).rows).toEqual([{ mode: "auto" }]);
  });

  it("rejects with Postgres' error and leaves the connection clean", async () => {
    await expect(queryWithGenericPlan(one, one.raw("SELECT 1 / (id - id) FROM marks WHERE id = ?", [1]))).rejects.toMatchObject({ code: "22012" });
    expect((await one.raw("SELECT current_setting('plan_cache_mode') AS mode, pg_current_xact_id_if_assigned() IS NULL AS outside")).rows).toEqual([{ mode: "auto", outside: true }]);
  });
});
