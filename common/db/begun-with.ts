/**
 * A transaction whose BEGIN travels with its first statement: one round trip for both,
 * where knex sends BEGIN alone and waits for its answer. On these machines a round trip is
 * dear (a socket write and the wake-up it causes cost both processes CPU, more than most of
 * our statements cost Postgres), and the hot transactions that start with a locking read pay
 * one fewer: a placement (BEGIN and the lock, the claim, COMMIT), an outbox relay cycle
 * (BEGIN and the take-and-mark, publishing, COMMIT) and a conductor report batch.
 *
 * The pair goes as one simple-protocol query, `BEGIN; <statement>`, which cannot carry
 * parameters, so the statement's values are written into its text as literals
 * (common/db/simple-statement.ts). With `prepare`, the statement is prepared on the connection the first
 * time (a PREPARE of its own, before the transaction) and run as `BEGIN; EXECUTE name(…)`:
 * Postgres neither parses it again nor, if it settles on a generic plan, plans it. Without,
 * it is parsed and planned every time (the relay's statement, planned afresh on purpose:
 * common/outbox.ts).
 *
 * The last statement can carry the COMMIT in the same way (`commitWith`): `<statement>;
 * COMMIT` in one query, and knex's own COMMIT is then not sent. A placement of one boot is
 * then two round trips: BEGIN and the lock, the claim and COMMIT.
 *
 * knex cannot be told to skip its BEGIN, so the transaction is knex's own Postgres
 * transaction class with begin() left empty, and commit() sending nothing once commitWith
 * has committed (knex 3.3's lib/dialects/postgres/execution/pg-transaction.js and
 * lib/execution/transaction.js; test/integration/begun-with.test.ts checks it still behaves).
 */
import { createRequire } from "node:module";
import type { Knex } from "knex";
import type pg from "pg";
import { FORCE_GENERIC_PLAN } from "./generic-plan.js";
import { simpleStatement } from "./simple-statement.js";

interface KnexTransaction {
  begin(conn: unknown): Promise<unknown>;
  commit(conn: unknown, value: unknown): Promise<unknown>;
  /** knex's own: set when the transaction is over; resolves the transaction's promise. */
  _completed: boolean;
  _resolver(value: unknown): void;
}

interface KnexTransactionClass {
  new (client: unknown, container: (trx: Knex.Transaction) => Promise<unknown>, config: object): PromiseLike<unknown> & KnexTransaction;
}

const PgTransaction = createRequire(import.meta.url)("knex/lib/dialects/postgres/execution/pg-transaction.js") as KnexTransactionClass;

class BegunByFirstStatement extends PgTransaction {
  /** Set once commitWith's query has committed: there is nothing left for knex to send. */
  committedByStatement = false;

  override begin(): Promise<void> {
    return Promise.resolve();
  }

  override commit(conn: unknown, value: unknown): Promise<unknown> {
    if (!this.committedByStatement) return super.commit(conn, value);
    this._completed = true;
    this._resolver(value);
    return Promise.resolve();
  }
}

/** What `rest` can do besides running statements on trx. */
export interface BegunTransaction {
  /**
   * Runs `last` and COMMIT as one query and returns last's rows: the transaction is over
   * when it resolves, so nothing may run on trx after it. Prepared once per connection and
   * run by EXECUTE, as the first statement with `prepare`. If `last` fails, COMMIT is not
   * run (Postgres skips the rest of a query after an error) and the transaction rolls back.
   */
  commitWith<R>(last: Knex.QueryBuilder | Knex.Raw): Promise<R[]>;
  /**
   * A knex transaction on the same connection, for statements sent through knex; made on
   * first use (transactionOnConnection).
   */
  knex(): Promise<Knex.Transaction>;
}

export interface BegunWithOptions {
  /** Prepare `first` once per connection and run it by EXECUTE. */
  prepare?: boolean;
  /**
   * Commit without waiting for the WAL to reach the disk (`SET LOCAL synchronous_commit
   * TO off`, sent with BEGIN): only for a transaction whose loss in a crash of Postgres is
   * harmless, because what it wrote is done again (the outbox relay's marks).
   */
  asyncCommit?: boolean;
  /**
   * Run the prepared first statement with its generic plan (`SET LOCAL plan_cache_mode TO
   * force_generic_plan` before it, back to the default after it, in the same query): for a
   * statement whose plan does not depend on its values but which Postgres would plan on
   * every run, because its custom plans are estimated cheaper (common/db/generic-plan.ts).
   * With `prepare` only.
   */
  genericPlan?: boolean;
}

/**
 * Runs `rest` in a transaction that `first` begins: `BEGIN; <first>` in one round trip,
 * then `rest` with first's rows, then COMMIT (ROLLBACK if anything throws), as
 * `db.transaction` does.
 */
export function transactionBegunWith<R, T>(
  db: Knex,
  first: (db: Knex) => Knex.QueryBuilder | Knex.Raw,
  rest: (trx: Knex.Transaction, rows: R[], tx: BegunTransaction) => Promise<T>,
  opts: BegunWithOptions = {},
): Promise<T> {
  return transactionOnConnection<R, T>(db, first, async (rows, tx) => rest(await tx.knex(), rows, tx), opts);
}

/**
 * transactionBegunWith without a knex transaction unless `rest` asks for one (tx.knex()):
 * the statements go to one pooled connection through node-postgres, and COMMIT or ROLLBACK
 * is sent here. A knex transaction costs about 25 KB of objects (a whole knex instance per
 * transaction) and 0.27 ms of CPU here; made for every placement, they were 44 % of what
 * survived young-generation collections in B4's scheduler process, and its collection
 * pauses (6 to 11 ms) were what set B4's p99 (docs/scheduler.md).
 */
export async function transactionOnConnection<R, T>(
  db: Knex,
  first: (db: Knex) => Knex.QueryBuilder | Knex.Raw,
  rest: (rows: R[], tx: BegunTransaction) => Promise<T>,
  opts: BegunWithOptions = {},
): Promise<T> {
  const conn = (await db.client.acquireConnection()) as pg.Client;
  const lazy = new LazyKnexTransaction(db, conn);
  let committed = false;
  try {
    const generic = opts.genericPlan === true && opts.prepare === true;
    // Sent to node-postgres directly: through knex, every `?` of the text, literals
    // included, would be taken for a placeholder.
    const parts = [
      "BEGIN",
      ...(opts.asyncCommit ? ["SET LOCAL synchronous_commit TO off"] : []),
      ...(generic ? [FORCE_GENERIC_PLAN] : []),
      await simpleStatement(conn, first(db), opts.prepare ?? false),
    ];
    const firstAt = parts.length - 1;
    if (generic) parts.push("SET LOCAL plan_cache_mode TO DEFAULT");
    const begun = conn.query(parts.join("; ")) as unknown as Promise<pg.QueryResult[]>;
    const tx: BegunTransaction = {
      commitWith: async <L>(last: Knex.QueryBuilder | Knex.Raw) => {
        const ended = (await conn.query(`${await simpleStatement(conn, last, true)}; COMMIT`)) as unknown as pg.QueryResult[];
        committed = true;
        return ended[0]!.rows as L[];
      },
      knex: () => lazy.get(),
    };
    const results = await begun;
    const value = await rest(results[firstAt]!.rows as R[], tx);
    if (lazy.made) await lazy.end(committed, value);
    else if (!committed) await conn.query("COMMIT");
    return value;
  } catch (err) {
    if (lazy.made) await lazy.end(committed, undefined, err);
    else if (!committed) await conn.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    db.client.releaseConnection(conn);
  }
}

/**
 * knex's transaction over a connection this module has begun a transaction on: made on
 * first use, its BEGIN left out, its end (COMMIT, or none after commitWith, or ROLLBACK)
 * left to knex when end() is called.
 */
class LazyKnexTransaction {
  private trx: Promise<Knex.Transaction> | null = null;
  private transaction: BegunByFirstStatement | null = null;
  private settle: { resolve(v: unknown): void; reject(e: unknown): void } | null = null;

  constructor(
    private readonly db: Knex,
    private readonly conn: pg.Client,
  ) {}

  get made(): boolean {
    return this.trx !== null;
  }

  get(): Promise<Knex.Transaction> {
    return (this.trx ??= new Promise<Knex.Transaction>((resolve) => {
      // What db.transaction() passes (knex/lib/knex-builder/make-knex.js), with the
      // connection: knex then neither acquires nor releases one.
      this.transaction = new BegunByFirstStatement(
        this.db.client,
        (trx) => {
          resolve(trx);
          return new Promise((done, failed) => (this.settle = { resolve: done, reject: failed }));
        },
        { userParams: {}, doNotRejectOnRollback: true, connection: this.conn },
      );
      // Its outcome is awaited in end(); this only keeps a rejection from counting as unhandled before then.
      Promise.resolve(this.transaction).catch(() => {});
    }));
  }

  /** Ends knex's transaction: COMMIT (none if already committed by a statement), or ROLLBACK after `error`. */
  async end(committed: boolean, value: unknown, error?: unknown): Promise<void> {
    await this.trx;
    const transaction = this.transaction!;
    transaction.committedByStatement = committed;
    if (error === undefined) {
      this.settle!.resolve(value);
      await transaction;
    } else {
      this.settle!.reject(error);
      await Promise.resolve(transaction).catch(() => {}); // the caller rethrows `error` itself
    }
  }
}
