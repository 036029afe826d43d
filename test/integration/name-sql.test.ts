/**
 * The SQL spellings of instance names and compute queue names (common/db/name-sql.ts)
 * give what the JavaScript gives: the delete job written in SQL must reach the queue the
 * agent consumes and name the domain it runs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { computeQueueSql, instanceNameSql } from "../../common/db/name-sql.js";
import { instanceNameFromSeq } from "../../common/instance-name.js";
import { computeQueueName } from "../../common/queues.js";
import { createTestDatabase, type TestDatabase } from "../support/services.js";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => t?.drop());

describe("names spelled in SQL", () => {
  it("instance-%08x for sequence numbers across the range", async () => {
    const seqs = [0, 1, 15, 16, 255, 0xabcdef, 0x0fffffff, 0x10000000, 0xfffffffe, 0xffffffff];
    const { rows } = await t.db.raw(`SELECT s, ${instanceNameSql("s")} AS name FROM unnest(?::bigint[]) AS s`, [seqs]);
    expect(rows.map((r: { name: string }) => r.name)).toEqual(seqs.map(instanceNameFromSeq));
  });

  it("compute.<host> with odd characters replaced", async () => {
    const hosts = ["node-1", "node_1.example.com", "Node 7", "nœud/ünïcode", "a:b@c", "rack-🚀-3", "x".repeat(200)];
    const { rows } = await t.db.raw(`SELECT ${computeQueueSql("h")} AS queue FROM unnest(?::text[]) WITH ORDINALITY AS u(h, n) ORDER BY n`, [hosts]);
    expect(rows.map((r: { queue: string }) => r.queue)).toEqual(hosts.map(computeQueueName));
  });
});
