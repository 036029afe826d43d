/**
 * The transactional outbox. A write that must be followed by a job inserts the job
 * into `outbox` in the same transaction; the relay publishes committed rows to
 * BullMQ under the row's deterministic job id, so a crash between commit and
 * publish, or a Redis outage, loses nothing, and a row published again (a crash after
 * publishing, before the mark is durable) adds no second job while BullMQ holds the first.
 */
import pg from "pg";
import type { Knex } from "knex";
import { nonNegative } from "./config.js";
import type { Db } from "./db/knex.js";
import { transactionOnConnection } from "./db/begun-with.js";
import { prepared } from "./db/prepared.js";
import type { Logger } from "./logger.js";
import type { QueueSet } from "./queues.js";

const CHANNEL = "cirrus_outbox";
/** How long the relay waits for another notification after one came while it published. */
const NOTIFIED_WAIT_MS = 5;
/**
 * The shortest time from one cycle's start to the next one's, however soon a notification
 * comes. Under load the rows of several writes then go in one cycle, instead of one cycle
 * (two round trips to Postgres, one to Redis, a knex transaction) per write batch; at idle
 * a row is published at once as before. In B1 (no scheduler, about 190 write batches a
 * second) the relay cost the API 0.09 ms of CPU per boot and Postgres 0.05 when it cycled
 * for each (against a relay stopped); CIRRUS_OUTBOX_MIN_CYCLE_MS overrides it.
 */
const MIN_CYCLE_MS = nonNegative(process.env, "CIRRUS_OUTBOX_MIN_CYCLE_MS", 20);
/** The channel enqueue notifies, for a writer that inserts outbox rows in a statement of its own. */
export const OUTBOX_CHANNEL = CHANNEL;

export interface OutboxJob {
  queue: string;
  name: string;
  /** Deterministic: the same logical job always gets the same id. */
  jobId: string;
  payload: object;
}

export async function enqueue(trx: Knex | Knex.Transaction, job: OutboxJob): Promise<void> {
  // The notification is delivered at commit, so the relay wakes only for rows it can see;
  // sent by the insert's own statement, which saves a round trip per job.
  await prepared(
    trx.raw(
      `WITH job AS (INSERT INTO outbox (queue, job_name, job_id, payload) VALUES (?, ?, ?, ?) RETURNING id)
       SELECT pg_notify(?, '') FROM job`,
      [job.queue, job.name, job.jobId, JSON.stringify(job.payload), CHANNEL],
    ),
  );
}

/** Several jobs in one statement, with one wake-up. */
export async function enqueueMany(trx: Knex | Knex.Transaction, jobs: OutboxJob[]): Promise<void> {
  if (jobs.length === 0) return;
  await prepared(
    trx.raw(
      `WITH job AS (INSERT INTO outbox (queue, job_name, job_id, payload)
                    SELECT j.queue, j.job_name, j.job_id, j.payload
                      FROM ROWS FROM (json_to_recordset(?::json) AS (queue text, job_name text, job_id text, payload jsonb))
                           WITH ORDINALITY AS j(queue, job_name, job_id, payload, ord)
                     ORDER BY j.ord
                    RETURNING id)
       SELECT pg_notify(?, '') FROM (SELECT 1 FROM job LIMIT 1) AS any_job`,
      [JSON.stringify(jobs.map((j) => ({ queue: j.queue, job_name: j.name, job_id: j.jobId, payload: j.payload }))), CHANNEL],
    ),
  );
}

export interface RelayOptions {
  db: Db;
  databaseUrl: string;
  queues: QueueSet;
  log: Logger;
  batchSize?: number;
  pollIntervalMs?: number;
  publishTimeoutMs?: number;
}

export class OutboxRelay {
  private running = false;
  private wake: (() => void) | null = null;
  /**
   * A notification came since the current cycle began. One that arrives while the relay
   * publishes finds no wait to end; without this it was lost, and the row it announced
   * (committed too late for the cycle's take) waited for the next poll.
   */
  private notified = false;
  private listener: pg.Client | null = null;
  private loop: Promise<void> | null = null;
  private lastCleanup = 0;

  constructor(private readonly opts: RelayOptions) {}

  async start(): Promise<void> {
    this.running = true;
    await this.listen();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.listener?.end().catch(() => {});
  }

  private async listen(): Promise<void> {
    try {
      const client = new pg.Client({ connectionString: this.opts.databaseUrl });
      client.on("error", () => {
        this.listener = null;
      });
      client.on("notification", () => {
        this.notified = true;
        this.wake?.();
      });
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      this.listener = client;
    } catch (err) {
      // Polling still delivers everything; LISTEN only makes it prompt.
      this.opts.log.warn({ err }, "outbox relay: LISTEN failed, polling only");
    }
  }

  private async run(): Promise<void> {
    const poll = this.opts.pollIntervalMs ?? 1000;
    let backoff = 0;
    while (this.running) {
      let published = 0;
      this.notified = false;
      const started = Date.now();
      try {
        published = await this.drainOnce();
        backoff = 0;
      } catch (err) {
        backoff = Math.min(backoff ? backoff * 2 : 200, 5000);
        this.opts.log.warn({ err: String(err), retryInMs: backoff }, "outbox relay: publish failed, will retry");
      }
      if (!this.running) break;
      if (published === (this.opts.batchSize ?? 200) && backoff === 0) continue;
      if (!this.listener && this.running) await this.listen();
      // Notified while publishing: a row may wait that this cycle did not see. The next
      // notification still wakes the relay at once, as it did; without one, it is not the
      // poll's second that ends the wait but NOTIFIED_WAIT_MS. Going again at once instead
      // cost 12 % more write commits per boot (B0, in turns), smaller batches of rows.
      const wait = backoff || (this.notified ? NOTIFIED_WAIT_MS : poll);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
      // Not sooner than MIN_CYCLE_MS after this cycle began (a stream of notifications).
      const early = started + MIN_CYCLE_MS - Date.now();
      if (early > 0 && this.running) await new Promise((resolve) => setTimeout(resolve, early));
    }
  }

  /** Publishes one batch of committed, unpublished rows; returns how many. */
  async drainOnce(): Promise<number> {
    const { db, queues } = this.opts;
    const batch = this.opts.batchSize ?? 200;
    const timeoutMs = this.opts.publishTimeoutMs ?? 5000;
    type Row = { id: number; queue: string; job_name: string; job_id: string; payload: object };
    // The statement carries the transaction's BEGIN (common/db/begun-with.ts): a cycle is two
    // round trips to Postgres, not three. Its COMMIT does not wait for the disk: a mark lost
    // in a crash of Postgres publishes its rows again, under the same job ids, as a relay
    // that dies between publishing and COMMIT always could (BullMQ adds no job whose id it
    // still holds, and every handler is idempotent). Each placement's spawn job is one relay
    // cycle, and its flush queued with the placements' own on this disk. No knex statement
    // follows, so no knex transaction is made (transactionOnConnection).
    const count = await transactionOnConnection<Row, number>(db, (q) =>
      // Taken and marked in one statement; the marks commit only if publishing succeeded
      // (a failure rolls them back), and the rows stay locked until then. `= ANY(ARRAY(…))`,
      // not `IN (…)`: as a semi-join the planner scanned the whole outbox, every published
      // row of the last day included (6.7 ms at 20,100 rows, against 1.0 ms by the primary key).
      // Planned afresh each time, not prepared: a prepared statement settles on the generic
      // plan it made after five runs, and a relay that starts on a near-empty outbox (a new
      // deployment, every bench) planned a sequential scan and kept it while the table grew,
      // until autovacuum's next analyze: in B4, 730 scans of the whole outbox every 5 s, 4,700
      // rows each, a third of Postgres' CPU. Planned now, the plan sees the table's current size.
      q.raw(
        `UPDATE outbox SET published_at = now()
          WHERE id = ANY(ARRAY(SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED))
          RETURNING id, queue, job_name, job_id, payload`,
        [batch],
      ),
    async (rows) => {
      if (rows.length === 0) return 0;
      rows.sort((a, b) => a.id - b.id); // RETURNING has no order of its own
      await withTimeout(queues.addToQueues(rows.map((r) => ({ queue: r.queue, name: r.job_name, jobId: r.job_id, data: r.payload }))), timeoutMs);
      return rows.length;
    }, { asyncCommit: true });
    if (Date.now() - this.lastCleanup > 60_000) {
      this.lastCleanup = Date.now();
      await db("outbox").whereNotNull("published_at").where("published_at", "<", db.raw("now() - interval '1 day'")).delete();
    }
    return count;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`queue publish timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
