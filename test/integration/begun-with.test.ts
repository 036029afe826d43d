/**
 * A transaction whose first statement carries its BEGIN (common/db/begun-with.ts), built on
 * knex's own transaction class with its BEGIN left out: the first statement and the rest run
 * in one transaction, the first statement's locks hold until COMMIT, a failure anywhere
 * rolls everything back, and the connection goes back to the pool clean.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { transactionBegunWith, transactionOnConnection } from "../../common/db/begun-with.js";
import { createDb, type Db } from "../../common/db/knex.js";
import { createTestDatabase, type TestDatabase } from "../support/services.js";

let t: TestDatabase;
let db: Db;
/** One connection: whatever a transaction leaves on it, the next statement meets. */
let one: Db;
beforeAll(async () => {
  t = await createTestDatabase();
  db = createDb(t.url, { min: 0, max: 3 });
  one = createDb(t.url, { min: 1, max: 1 });
  await db.raw("CREATE TABLE begun (id int PRIMARY KEY, note text NOT NULL)");
  await db("begun").insert([1, 2, 3].map((id) => ({ id, note: "a" })));
});
afterAll(async () => {
  await one?.destroy();
  await db?.destroy();
  await t?.drop();
});

/** Records the text of every query sent on the pool's one connection, until stop(). */
async function recordQueries(pool: Db): Promise<{ sent: string[]; stop: () => void }> {
  const conn = (await pool.client.acquireConnection()) as { query: (...args: unknown[]) => unknown };
  const sent: string[] = [];
  const query = conn.query;
  conn.query = function (this: unknown, ...args: unknown[]) {
    const q = args[0] as string | { text: string };
    sent.push(typeof q === "string" ? q : q.text);
    return query.apply(this, args);
  };
  pool.client.releaseConnection(conn);
  return {
    sent,
    stop: () => {
      conn.query = query;
    },
  };
}

const noteOf = async (id: number) => (await db("begun").where({ id }).first<{ note: string }>())!.note;

describe("transactionBegunWith", () => {
  it("runs the first statement and the rest in one transaction, and the first statement's locks hold until COMMIT", async () => {
    const out = await transactionBegunWith<{ id: number; xid: string }, string>(
      db,
      (trx) => trx("begun").where({ id: 1 }).forUpdate().select("id", trx.raw("pg_current_xact_id()::text AS xid")),
      async (trx, rows) => {
        expect(rows).toEqual([{ id: 1, xid: expect.any(String) }]);
        const { rows: again } = await trx.raw("SELECT pg_current_xact_id()::text AS xid");
        expect(again[0].xid).toBe(rows[0]!.xid);
        // Another connection cannot take the row while this transaction lives.
        await expect(db.raw("SELECT id FROM begun WHERE id = 1 FOR UPDATE NOWAIT")).rejects.toMatchObject({ code: "55P03" });
        await trx("begun").where({ id: 1 }).update({ note: "b" });
        expect(await noteOf(1)).toBe("a"); // not committed yet
        return "done";
      },
    );
    expect(out).toBe("done");
    expect(await noteOf(1)).toBe("b");
    expect((await db.raw("SELECT id FROM begun WHERE id = 1 FOR UPDATE NOWAIT")).rows).toEqual([{ id: 1 }]);
  });

  it("sends BEGIN with the first statement, in one query, and COMMIT after the rest: no BEGIN of knex's own", async () => {
    const { sent, stop } = await recordQueries(one);
    try {
      await transactionBegunWith(one, (trx) => trx("begun").where({ id: 3 }).forUpdate().select("id"), async (trx) => trx("begun").where({ id: 3 }).select("note"));
    } finally {
      stop();
    }
    expect(sent).toEqual(['BEGIN; select "id" from "begun" where "id" = 3 for update', 'select "note" from "begun" where "id" = $1', "COMMIT;"]);
  });

  it("with prepare, prepares the first statement once per connection and runs it by EXECUTE with its values", async () => {
    const { sent, stop } = await recordQueries(one);
    const notes: string[] = [];
    try {
      for (const id of [1, 2, 3]) {
        const rows = await transactionBegunWith<{ note: string }, { note: string }[]>(one, (trx) => trx("begun").where({ id }).forUpdate().select("note"), async (_trx, r) => r, { prepare: true });
        notes.push(rows[0]!.note);
      }
    } finally {
      stop();
    }
    expect(notes).toEqual([await noteOf(1), await noteOf(2), await noteOf(3)]);
    const prepares = sent.filter((q) => q.startsWith("PREPARE"));
    expect(prepares).toEqual([expect.stringMatching(/^PREPARE first_[0-9a-f]{20} AS select "note" from "begun" where "id" = \$1 for update$/)]);
    const name = /PREPARE (\S+)/.exec(prepares[0]!)![1];
    expect(sent.filter((q) => q.startsWith("BEGIN"))).toEqual([1, 2, 3].map((id) => `BEGIN; EXECUTE ${name}(${id})`));
  });

  it("rolls back the first statement's write and the rest's when the rest throws, and rejects with its error", async () => {
    const run = transactionBegunWith(
      one,
      (trx) => trx.raw("UPDATE begun SET note = ? WHERE id = 2 RETURNING id", ["x"]),
      async (trx) => {
        await trx("begun").where({ id: 3 }).update({ note: "x" });
        throw new Error("boom");
      },
    );
    await expect(run).rejects.toThrow("boom");
    expect([await noteOf(2), await noteOf(3)]).toEqual(["a", "a"]);
    // The one connection is out of the transaction: a statement on it commits on its own.
    await one("begun").where({ id: 2 }).update({ note: "c" });
    expect(await noteOf(2)).toBe("c");
  });

  it("rejects with Postgres' error when the first statement fails, and leaves the connection clean", async () => {
    await expect(transactionBegunWith(one, (trx) => trx.raw("SELECT 1 / (id - id) FROM begun"), async () => "never")).rejects.toMatchObject({ code: "22012" });
    expect((await one.raw("SELECT count(*)::int AS n FROM begun")).rows).toEqual([{ n: 3 }]);
    expect((await one.raw("SELECT pg_current_xact_id_if_assigned() IS NULL AS outside")).rows).toEqual([{ outside: true }]);
  });

  it("gives the first statement its values exactly, quotes, backslashes, question marks and arrays included", async () => {
    const text = "it's a \\ 'test' $1 ? ?? E'x'";
    const ids = ["7d4c7a2e-5a0f-4b8e-9d55-0b8a3c1c2f10", "0c2e7a55-94f4-4e1b-8a0e-2f8b9d3c4a11"];
    const rows = await transactionBegunWith<{ s: string; ids: string[]; n: number }, { s: string; ids: string[]; n: number }[]>(
      one,
      (trx) => trx.raw("SELECT ?::text AS s, ?::uuid[] AS ids, ?::int AS n", [text, ids, -5]),
      async (_trx, r) => r,
    );
    expect(rows).toEqual([{ s: text, ids, n: -5 }]);
  });
});

describe("commitWith", () => {
  it("sends the last statement and COMMIT in one query, and knex sends no COMMIT of its own", async () => {
    const { sent, stop } = await recordQueries(one);
    let returned: { id: number }[] = [];
    try {
      for (const note of ["p", "q"]) {
        returned = await transactionBegunWith(one, (trx) => trx("begun").where({ id: 1 }).forUpdate().select("id"), async (trx, _rows, tx) => {
          await trx("begun").where({ id: 2 }).update({ note });
          return tx.commitWith<{ id: number }>(trx.raw("UPDATE begun SET note = ? WHERE id = 3 RETURNING id", [note]));
        });
      }
    } finally {
      stop();
    }
    expect(returned).toEqual([{ id: 3 }]);
    expect([await noteOf(2), await noteOf(3)]).toEqual(["q", "q"]);
    const prepares = sent.filter((q) => q.startsWith("PREPARE"));
    expect(prepares).toEqual([expect.stringMatching(/^PREPARE first_[0-9a-f]{20} AS UPDATE begun SET note = \$1 WHERE id = 3 RETURNING id$/)]);
    const name = /PREPARE (\S+)/.exec(prepares[0]!)![1];
    expect(sent.filter((q) => /COMMIT/.test(q))).toEqual([`EXECUTE ${name}('p'); COMMIT`, `EXECUTE ${name}('q'); COMMIT`]);
    // The one connection is out of the transaction and usable.
    expect((await one.raw("SELECT pg_current_xact_id_if_assigned() IS NULL AS outside")).rows).toEqual([{ outside: true }]);
  });

  it("rolls everything back when the last statement fails: its COMMIT is not run", async () => {
    const before = [await noteOf(1), await noteOf(2)];
    const run = transactionBegunWith(one, (trx) => trx.raw("UPDATE begun SET note = 'r' WHERE id = 1 RETURNING id"), async (trx, _rows, tx) => {
      await trx("begun").where({ id: 2 }).update({ note: "r" });
      return tx.commitWith(trx.raw("SELECT 1 / (id - id) FROM begun WHERE id = ?", [2]));
    });
    await expect(run).rejects.toMatchObject({ code: "22012" });
    expect([await noteOf(1), await noteOf(2)]).toEqual(before);
    expect((await one.raw("SELECT pg_current_xact_id_if_assigned() IS NULL AS outside")).rows).toEqual([{ outside: true }]);
  });
});

describe("transactionOnConnection", () => {
  it("without knex: sends COMMIT (or nothing after commitWith), or ROLLBACK when rest throws, and leaves the connection clean", async () => {
    const { sent, stop } = await recordQueries(one);
    try {
      await transactionOnConnection(one, (db) => db.raw("UPDATE begun SET note = 'u' WHERE id = 1 RETURNING id"), async () => "done");
      const failed = transactionOnConnection(one, (db) => db.raw("UPDATE begun SET note = 'v' WHERE id = 1 RETURNING id"), async () => {
        throw new Error("boom");
      });
      await expect(failed).rejects.toThrow("boom");
      await transactionOnConnection(one, (db) => db.raw("UPDATE begun SET note = 'w' WHERE id = 2 RETURNING id"), async (_rows, tx) =>
        tx.commitWith(one.raw("UPDATE begun SET note = 'w' WHERE id = 3 RETURNING id")),
      );
    } finally {
      stop();
    }
    expect([await noteOf(1), await noteOf(2), await noteOf(3)]).toEqual(["u", "w", "w"]);
    expect(sent.filter((q) => /^(COMMIT|ROLLBACK)/.test(q))).toEqual(["COMMIT", "ROLLBACK"]);
    expect((await one.raw("SELECT pg_current_xact_id_if_assigned() IS NULL AS outside")).rows).toEqual([{ outside: true }]);
  });

  it("makes a knex transaction on the same connection when asked, in the same transaction, rolled back together", async () => {
    const before = [await noteOf(1), await noteOf(2)];
    const failed = transactionOnConnection(one, (db) => db.raw("UPDATE begun SET note = 'k' WHERE id = 1 RETURNING id"), async (_rows, tx) => {
      const trx = await tx.knex();
      expect(await tx.knex()).toBe(trx);
      await trx("begun").where({ id: 2 }).update({ note: "k" });
      // The knex statement sees the first statement's uncommitted write: one transaction.
      expect((await trx("begun").where({ id: 1 }).first("note"))!.note).toBe("k");
      throw new Error("after both");
    });
    await expect(failed).rejects.toThrow("after both");
    expect([await noteOf(1), await noteOf(2)]).toEqual(before);
    await transactionOnConnection(one, (db) => db.raw("UPDATE begun SET note = 'm' WHERE id = 1 RETURNING id"), async (_rows, tx) => {
      await (await tx.knex())("begun").where({ id: 2 }).update({ note: "m" });
      return tx.commitWith(one.raw("UPDATE begun SET note = 'm' WHERE id = 3 RETURNING id"));
    });
    expect([await noteOf(1), await noteOf(2), await noteOf(3)]).toEqual(["m", "m", "m"]);
    expect((await one.raw("SELECT pg_current_xact_id_if_assigned() IS NULL AS outside")).rows).toEqual([{ outside: true }]);
  });
});

describe("asyncCommit", () => {
  it("commits that transaction without waiting for the disk, and only that one", async () => {
    const { sent, stop } = await recordQueries(one);
    let inside = "";
    try {
      const rows = await transactionBegunWith<{ id: number }, { id: number }[]>(
        one,
        (trx) => trx.raw("UPDATE begun SET note = 's' WHERE id = 1 RETURNING id"),
        async (trx, r) => {
          inside = (await trx.raw("SELECT current_setting('synchronous_commit') AS s")).rows[0].s;
          return r;
        },
        { asyncCommit: true },
      );
      expect(rows).toEqual([{ id: 1 }]);
    } finally {
      stop();
    }
    expect(inside).toBe("off");
    expect(sent[0]).toBe("BEGIN; SET LOCAL synchronous_commit TO off; UPDATE begun SET note = 's' WHERE id = 1 RETURNING id");
    expect(await noteOf(1)).toBe("s");
    expect((await one.raw("SELECT current_setting('synchronous_commit') AS s")).rows).toEqual([{ s: "on" }]);
  });
});

describe("genericPlan", () => {
  it("runs the prepared first statement with its generic plan, and leaves the rest of the transaction planning as usual", async () => {
    // Prepared statements are the connection's: read them on it (an earlier test may have run this one).
    const plansOf = async (name: string) =>
      (await one.raw("SELECT generic_plans::int AS generic, custom_plans::int AS custom FROM pg_prepared_statements WHERE name = ?", [name])).rows[0] ?? { generic: 0, custom: 0 };
    const before = (await one.raw("SELECT name, generic_plans::int AS generic, custom_plans::int AS custom FROM pg_prepared_statements")).rows as { name: string; generic: number; custom: number }[];
    const { sent, stop } = await recordQueries(one);
    const settings: string[] = [];
    try {
      for (const id of [1, 2, 3]) {
        const rows = await transactionBegunWith<{ note: string }, { note: string }[]>(
          one,
          (trx) => trx("begun").where({ id }).forUpdate().select("note"),
          async (trx, r) => {
            settings.push((await trx.raw("SELECT current_setting('plan_cache_mode') AS m")).rows[0].m);
            return r;
          },
          { prepare: true, genericPlan: true },
        );
        expect(rows).toHaveLength(1);
      }
    } finally {
      stop();
    }
    expect(settings).toEqual(["auto", "auto", "auto"]);
    const begun = sent.filter((q) => q.startsWith("BEGIN"));
    expect(begun).toHaveLength(3);
    expect(begun[0]).toMatch(/^BEGIN; SET LOCAL plan_cache_mode TO force_generic_plan; EXECUTE (first_[0-9a-f]{20})\(1\); SET LOCAL plan_cache_mode TO DEFAULT$/);
    const name = /EXECUTE (\S+)\(/.exec(begun[0]!)![1];
    const was = before.find((p) => p.name === name) ?? { generic: 0, custom: 0 };
    const now = await plansOf(name!);
    expect({ generic: now.generic - was.generic, custom: now.custom - was.custom }).toEqual({ generic: 3, custom: 0 });
  });
});
