/**
 * A row committed while the relay is publishing an earlier batch is published at once,
 * not at the next poll: its notification arrives while no wait is pending, and the relay
 * must not lose it. Before, it did, and such a row waited for the poll (1 s by default):
 * the last boots of a burst, or a lone boot that came in during another's publish.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { createLogger } from "../../common/logger.js";
import { enqueue, OutboxRelay } from "../../common/outbox.js";
import { QueueSet } from "../../common/queues.js";
import { createTestDatabase, TEST_REDIS_URL, uniqueName, type TestDatabase } from "../support/services.js";
import { waitFor } from "../support/stack.js";

let database: TestDatabase;
let queues: QueueSet;

beforeAll(async () => {
  database = await createTestDatabase();
  queues = new QueueSet(TEST_REDIS_URL, uniqueName("outbox-wakeup"));
});
afterAll(async () => {
  await queues?.close();
  await database?.drop();
});

/** The test's queues, with `beforePublish` run before each batch the relay publishes. */
function queuesPublishingAfter(beforePublish: () => void | Promise<void>): QueueSet {
  return {
    addToQueues: async (jobs: Parameters<QueueSet["addToQueues"]>[0]) => {
      await beforePublish();
      return queues.addToQueues(jobs);
    },
  } as unknown as QueueSet;
}

const job = (n: number) => ({ queue: "wakeup", name: "test", jobId: `wakeup-${n}`, payload: { n } });
const published = async (n: number) => (await database.db("outbox").where({ job_id: `wakeup-${n}` }).first("published_at"))?.published_at != null;

it("publishes a row committed during a publish without waiting for the poll", async () => {
  // The first publish is held until the second row has committed (and notified).
  let releaseFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
  let publishing!: () => void;
  const firstStarted = new Promise<void>((resolve) => (publishing = resolve));
  let calls = 0;
  const held = queuesPublishingAfter(async () => {
    if (calls++ === 0) {
      publishing();
      await firstHeld;
    }
  });
  const relay = new OutboxRelay({ db: database.db, databaseUrl: database.url, queues: held, log: createLogger("test", "silent"), pollIntervalMs: 30_000 });
  await relay.start();
  try {
    await database.db.transaction((trx) => enqueue(trx, job(1)));
    await firstStarted;
    await database.db.transaction((trx) => enqueue(trx, job(2)));
    // Let the notification reach the relay while its first publish still runs.
    await new Promise((r) => setTimeout(r, 200));
    releaseFirst();
    await waitFor("row 1 to be published", () => published(1), 5_000, 20);
    const since = Date.now();
    await waitFor("row 2 to be published", () => published(2), 5_000, 20);
    expect(Date.now() - since).toBeLessThan(2_000);
  } finally {
    await relay.stop();
  }
});

it("publishes the rows of a stream of writes in a few cycles, and a lone row at once", async () => {
  let cycles = 0;
  const counted = queuesPublishingAfter(() => {
    cycles++;
  });
  const relay = new OutboxRelay({ db: database.db, databaseUrl: database.url, queues: counted, log: createLogger("test", "silent"), pollIntervalMs: 30_000 });
  await relay.start();
  try {
    // 60 writes, one every 2 ms or so: cycling for each would be about 60 cycles.
    const started = Date.now();
    for (let n = 100; n < 160; n++) {
      await database.db.transaction((trx) => enqueue(trx, job(n)));
      await new Promise((r) => setTimeout(r, 1));
    }
    const elapsed = Date.now() - started;
    await waitFor("the stream's rows to be published", () => published(159), 5_000, 10);
    const all = await database.db("outbox").whereBetween("job_id", ["wakeup-100", "wakeup-159"]).whereNull("published_at").count("* as n").first();
    expect(all).toEqual({ n: 0 });
    // At most one cycle per 20 ms (MIN_CYCLE_MS), and one to finish.
    expect(cycles).toBeLessThanOrEqual(Math.ceil(elapsed / 20) + 2);
    // Idle again: a lone row goes at once.
    await new Promise((r) => setTimeout(r, 100));
    const since = Date.now();
    await database.db.transaction((trx) => enqueue(trx, job(200)));
    await waitFor("the lone row to be published", () => published(200), 5_000, 2);
    expect(Date.now() - since).toBeLessThan(100);
  } finally {
    await relay.stop();
  }
});
