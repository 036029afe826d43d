/**
 * The common boot's writes as one statement: the instance rows, their ports, the ports'
 * IPv4 addresses, the `create` instance actions and the outbox rows with their NOTIFY,
 * all set-based (a multi-create of N is still one statement, and so are the boots of
 * several concurrent requests that the group commit, boot-batch.ts, writes together). A
 * single statement is atomic, so it needs no BEGIN/COMMIT.
 *
 * The rows are the ones the transactional path writes (api/servers/create.ts), which
 * stays for what this one does not cover: fixed IPs, IPv6 subnets, server groups, and
 * enforced quotas for a multi-create. An enforced quota for one server is checked in a
 * short transaction with this statement (api/servers/create.ts).
 *
 * IP claims (api/ports.ts ipv4CandidatesSql): every insert is gated on each subnet having
 * offered as many addresses as it has ports to fill, so a full pool writes nothing and
 * the statement reports which subnet ran short. A candidate committed by another boot
 * after this statement's snapshot fails it on the (subnet, address) primary key, and a
 * MAC collision on the ports' unique index; both are retried with a fresh statement.
 *
 * A boot judged on a remembered look-up (lookup-cache.ts) carries that look-up's
 * fingerprint; the statement re-reads every such fingerprint in its snapshot and writes
 * nothing unless all still match, and then StaleLookup sends the boot back to be judged
 * on a fresh look-up (create.ts).
 */
import type { Knex } from "knex";
import type pg from "pg";
import { statementName } from "../../common/db/prepared.js";
import { conflict } from "../../common/errors.js";
import { newId, newMacAddress } from "../../common/ids.js";
import { OUTBOX_CHANNEL } from "../../common/outbox.js";
import { SCHEDULE_QUEUE } from "../../common/queues.js";
import type { InstanceState } from "../../common/state-machine.js";
import { ipv4CandidatesSql, type SubnetRow } from "../ports.js";
import { lookupFingerprintSql } from "./boot-lookup.js";

type Tx = Knex | Knex.Transaction;

export interface BootNic {
  networkId: string;
  /** The network's subnets, all IPv4 here; a port gets one address from each. */
  subnets: SubnetRow[];
}

export interface BootRows {
  ids: string[];
  names: string[];
  requestId: string;
  projectId: string;
  userId: string;
  nics: BootNic[];
  /**
   * Set when judged on a remembered look-up: written only if its fingerprint still holds.
   * The look-up's key and fingerprint as one JSON object (boot-lookup.ts fingerprintCheck).
   */
  verify?: string;
  /** Columns every instance of the request shares (JSON columns already serialised). */
  instance: InstanceState & {
    description: string | null;
    availability_zone: string | null;
    flavor: string;
    image_id: string;
    image: string;
    requested_networks: string;
    metadata: string;
    config_drive: boolean;
    user_data: string | null;
    reservation_id: string;
    access_ip_v4: string | null;
    access_ip_v6: string | null;
    key_name: string | null;
    scheduler_hints: string;
  };
}

/**
 * The statement's text grows with the subnets its boots draw addresses from; up to this
 * many it is a prepared statement (common/db/prepared.ts), a bounded number of shapes.
 */
const PREPARED_MAX_SUBNETS = 2;

/** A lost race costs one statement; this many are plenty (as CLAIM_ATTEMPTS in api/ports.ts). */
const ATTEMPTS = 10;

interface Port {
  id: string;
  networkId: string;
  projectId: string;
  mac: string;
  deviceId: string;
  deviceIndex: number;
}

/**
 * One subnet's claims: its ports in (boot, instance, NIC) order, which is the order
 * addresses are handed out. Boots of one statement that share a subnet share its claim,
 * so they get distinct addresses from one candidate list.
 */
interface Claim {
  subnet: SubnetRow;
  networkId: string;
  portIds: string[];
}

function portsOf(rows: BootRows): Port[] {
  return rows.ids.flatMap((deviceId) =>
    rows.nics.map((nic, deviceIndex) => ({ id: newId(), networkId: nic.networkId, projectId: rows.projectId, mac: newMacAddress(), deviceId, deviceIndex })),
  );
}

function claimsOf(boots: BootRows[], portsPerBoot: Port[][]): Claim[] {
  const claims = new Map<string, Claim>();
  boots.forEach((rows, b) => {
    for (const nic of rows.nics) {
      for (const subnet of nic.subnets) if (!claims.has(subnet.id)) claims.set(subnet.id, { subnet, networkId: nic.networkId, portIds: [] });
    }
    for (const port of portsPerBoot[b]!) {
      for (const subnet of rows.nics[port.deviceIndex]!.subnets) claims.get(subnet.id)!.portIds.push(port.id);
    }
  });
  return [...claims.values()];
}

/** The columns every instance of one boot request shares, one JSON object per boot. */
export const SHARED = [
  ["description", "text"], ["project_id", "text"], ["user_id", "text"], ["vm_state", "text"], ["task_state", "text"], ["power_state", "int"],
  ["availability_zone", "text"], ["flavor", "jsonb"], ["image_id", "uuid"], ["image", "jsonb"], ["requested_networks", "jsonb"],
  ["metadata", "jsonb"], ["config_drive", "boolean"], ["user_data", "text"], ["reservation_id", "text"], ["access_ip_v4", "text"],
  ["access_ip_v6", "text"], ["key_name", "text"], ["scheduler_hints", "jsonb"],
] as const;


/**
 * One boot's shared columns as a JSON object (the keys are SHARED's columns, which a unit
 * test checks). The JSON columns, already serialised (and, for the flavor and image, shared
 * by every boot judged on the same look-up), are spliced in as they are; the rest is one
 * JSON.stringify of an object of one shape. As one text parameter for the whole statement
 * this costs a fraction of what 19 Postgres array literals did: node-postgres escapes every
 * element of those with two regular expressions, the serialised flavor and image included
 * (perf, 27 November).
 */
export function bootJson(rows: BootRows, boot: number): string {
  const i = rows.instance;
  const scalars = JSON.stringify({
    boot,
    description: i.description,
    project_id: rows.projectId,
    user_id: rows.userId,
    vm_state: i.vm_state,
    task_state: i.task_state,
    power_state: i.power_state,
    availability_zone: i.availability_zone,
    image_id: i.image_id,
    config_drive: i.config_drive,
    user_data: i.user_data,
    reservation_id: i.reservation_id,
    access_ip_v4: i.access_ip_v4,
    access_ip_v6: i.access_ip_v6,
    key_name: i.key_name,
  });
  return `${scalars.slice(0, -1)},"flavor":${i.flavor},"image":${i.image},"requested_networks":${i.requested_networks},"metadata":${i.metadata},"scheduler_hints":${i.scheduler_hints}}`;
}

function bootsJson(boots: BootRows[]): string {
  return `[${boots.map((rows, k) => bootJson(rows, k + 1)).join(",")}]`;
}

/** A Postgres array literal of values that need no quoting (uuids). */
const uuidArray = (ids: string[]) => `{${ids.join(",")}}`;

interface Statement {
  /** What decides the text: the allocation pools of each claimed subnet, and whether there are ports. */
  shape: string;
  values: unknown[];
  /** The text, with $n placeholders; built only for a shape not seen before. */
  text(): string;
}

/**
 * The statement for one or more boot requests (a group commit of concurrent requests,
 * api/servers/boot-batch.ts): every row of every boot, set-based. All or nothing: one
 * subnet short of addresses writes nothing for any of them. Its text depends only on its
 * shape, so it is built once per shape and kept as a prepared statement; what varies is in
 * its values (counts included: a text that changed with the batch's size would be a
 * prepared statement per size, each planned afresh on its first five runs per connection).
 */
function statement(boots: BootRows[], portsPerBoot: Port[][], claims: Claim[]): Statement {
  const values: unknown[] = [];
  /** Adds a value; its placeholder. */
  const $ = (value: unknown) => `$${values.push(value)}`;
  const ctes: (() => string)[] = [];

  claims.forEach((c, j) => {
    const cand = ipv4CandidatesSql(c.subnet, c.portIds.length);
    const before = values.push(...cand.bindings) - cand.bindings.length;
    const sql = () => {
      let n = before;
      return cand.sql.replace(/\?/g, () => `$${++n}`);
    };
    ctes.push(() => `cand${j} AS (SELECT ip, row_number() OVER () AS k FROM (${sql()}) c)`);
  });
  // Every remembered look-up still holds (true when there is none to check).
  const verify = $(lookupsToVerify(boots));
  ctes.push(() => `fresh AS (
    SELECT coalesce(bool_and(${lookupFingerprintSql("v")} = v.fingerprint), true) AS fresh
      FROM json_to_recordset(${verify}::json) AS v(flavor text, image uuid, net_ids uuid[], project text, fingerprint text))`);
  const enough = claims.map((c, j) => `(SELECT count(*) FROM cand${j}) = ${$(c.portIds.length)}::bigint`);
  ctes.push(() => `ok AS (SELECT fresh.fresh${enough.length ? ` AND ${enough.join(" AND ")}` : ""} AS ok FROM fresh)`);

  // Per boot its shared columns; per instance its id, name, launch index, boot (1-based) and request.
  const perBoot = $(bootsJson(boots));
  let ord = 0;
  const perInstance = $(JSON.stringify(boots.flatMap((r, k) => r.ids.map((id, idx) => ({ ord: ord++, id, name: r.names[idx], idx, boot: k + 1, req: r.requestId })))));
  ctes.push(() => `b AS (SELECT * FROM jsonb_to_recordset(${perBoot}::jsonb) AS s(boot int, ${SHARED.map(([c, t]) => `${c} ${t}`).join(", ")}))`);
  ctes.push(() => `u AS (SELECT * FROM jsonb_to_recordset(${perInstance}::jsonb) AS u(ord int, id uuid, name text, idx int, boot int, req text))`);
  ctes.push(() => `inst AS (
    INSERT INTO instances (id, name, launch_index, ${SHARED.map(([c]) => c).join(", ")})
    SELECT u.id, u.name, u.idx, ${SHARED.map(([c]) => `b.${c}`).join(", ")}
      FROM u JOIN b USING (boot), ok
     WHERE ok.ok ORDER BY u.ord)`);

  const ports = portsPerBoot.flat();
  if (ports.length > 0) {
    const perPort = $(JSON.stringify(ports.map((p, ord) => ({ ord, id: p.id, net: p.networkId, proj: p.projectId, mac: p.mac, dev: p.deviceId, idx: p.deviceIndex }))));
    ctes.push(() => `port AS (
      INSERT INTO ports (id, network_id, project_id, mac_address, device_id, device_owner, device_index, status)
      SELECT p.id, p.net, p.proj, p.mac, p.dev, 'compute:nova', p.idx, 'DOWN'
        FROM jsonb_to_recordset(${perPort}::jsonb) AS p(ord int, id uuid, net uuid, proj text, mac text, dev uuid, idx int), ok
       WHERE ok.ok ORDER BY p.ord)`);
  }
  if (claims.length > 0) {
    const selects = claims.map(
      (c, j) =>
        `SELECT ${$(c.subnet.id)}::uuid, c.ip, p.port FROM cand${j} c JOIN unnest(${$(uuidArray(c.portIds))}::uuid[]) WITH ORDINALITY AS p(port, k) USING (k), ok WHERE ok.ok`,
    );
    // Plain INSERT: a duplicate address must fail the whole statement (see the header).
    ctes.push(() => `ip AS (INSERT INTO ip_allocations (subnet_id, ip_address, port_id) ${selects.join(" UNION ALL ")})`);
  }

  // As startAction (common/db/instance-records.ts) writes it, but without its ON CONFLICT DO
  // NOTHING: these instances are new in this statement, so no action of theirs exists, and a
  // speculative insertion per row made this the statement's costliest insert (EXPLAIN ANALYZE,
  // 16 boots: 0.8 to 1.1 ms, more than the instances themselves with their 8 indexes).
  ctes.push(() => `act AS (
    INSERT INTO instance_actions (instance_id, action, request_id, project_id, user_id)
    SELECT u.id, 'create', u.req, b.project_id, b.user_id FROM u JOIN b USING (boot), ok
     WHERE ok.ok ORDER BY u.ord)`);

  // As enqueue (common/outbox.ts) writes it: ONE schedule job for the whole statement,
  // named after its first instance. A schedule job is a wake-up: the scheduler's batch
  // takes that boot first, its whole reservation, and then keeps taking whatever else is
  // waiting until nothing is (scheduler/main.ts), so the other boots of the statement,
  // committed with it, need no job of their own.
  const first = boots[0]!;
  const [queue, firstId, requestId, count] = [$(SCHEDULE_QUEUE), $(first.ids[0]!), $(first.requestId), $(boots.reduce((n, r) => n + r.ids.length, 0))];
  ctes.push(() => `job AS (
    INSERT INTO outbox (queue, job_name, job_id, payload)
    SELECT ${queue}::text, 'schedule', 'schedule-' || ${firstId}::text, jsonb_build_object('instance_id', ${firstId}::text, 'request_id', ${requestId}::text, 'boots', ${count}::int)
      FROM ok WHERE ok.ok
    RETURNING id)`);

  const channel = $(OUTBOX_CHANNEL);
  const counts = claims.map((_, j) => `(SELECT count(*) FROM cand${j})`);
  return {
    shape: `${claims.map((c) => c.subnet.allocation_pools.length).join(",")}${ports.length > 0 ? "+ports" : ""}`,
    values,
    text: () => `WITH ${ctes.map((cte) => cte()).join(",\n")}
    SELECT (SELECT ok FROM ok) AS ok, (SELECT fresh FROM fresh) AS fresh,
           ARRAY[${counts.join(", ")}]::bigint[] AS offered,
           (SELECT pg_notify(${channel}, '') FROM (SELECT 1 FROM job LIMIT 1) AS any_job) AS notified`,
  };
}

/** The write found a remembered look-up changed and wrote nothing; judge the boot again. */
export class StaleLookup extends Error {
  constructor() {
    super("a remembered boot look-up no longer holds");
  }
}

/** The distinct look-ups the boots were judged on that must still hold, as rows of a JSON array. */
function lookupsToVerify(boots: BootRows[]): string {
  const distinct = new Set<string>();
  for (const { verify } of boots) if (verify !== undefined) distinct.add(verify);
  return `[${[...distinct].join(",")}]`;
}

const violated = (err: unknown): { constraint?: string; detail?: string } | null =>
  (err as { code?: string }).code === "23505" ? (err as { constraint?: string; detail?: string }) : null;

type Outcome = { ok: boolean; fresh: boolean; offered: number[] };

/** Nova's 409 for the first subnet that offered fewer addresses than it has ports to fill. */
function poolFull(claims: Claim[], outcome: Outcome): Error {
  const short = claims.find((c, j) => Number(outcome.offered[j]) < c.portIds.length)!;
  return conflict(`No more IP addresses available on network ${short.networkId} (subnet ${short.subnet.id}, ${short.subnet.cidr}).`);
}

// Per shape, the statement's text and prepared-statement name (common/db/prepared.ts).
const texts = new Map<string, { text: string; name: string | null }>();

function textOf(st: Statement, claims: Claim[]): { text: string; name: string | null } {
  // A subnet more is a shape more; past a few, the text runs unnamed and is not kept.
  if (claims.length > PREPARED_MAX_SUBNETS) return { text: st.text(), name: null };
  let t = texts.get(st.shape);
  if (!t) {
    const text = st.text();
    texts.set(st.shape, (t = { text, name: statementName(text) }));
  }
  return t;
}

/**
 * Runs the statement on `q`'s connection (the pool's, or the transaction's), straight
 * through node-postgres: knex would re-scan the long text for placeholders and convert
 * every value on each run. Knex's "query" event is still emitted, as for its own queries.
 */
async function execute(q: Tx, st: Statement, claims: Claim[]): Promise<Outcome> {
  const { text, name } = textOf(st, claims);
  const client = q.client;
  const conn = (await client.acquireConnection()) as pg.Client & { __knexUid?: string; __knexTxId?: string };
  try {
    client.emit("query", { method: "raw", sql: text, bindings: st.values, __knexUid: conn.__knexUid, __knexTxId: conn.__knexTxId });
    const result = await conn.query<Outcome>(name === null ? { text, values: st.values } : { name, text, values: st.values });
    return result.rows[0]!;
  } finally {
    client.releaseConnection(conn);
  }
}

/**
 * One attempt. With `before` (statements that must share the write's transaction: the
 * quota check), the two run in a short transaction; inside a caller's transaction
 * (Idempotency-Key) the attempt gets a savepoint, so a lost race undoes only itself.
 * A full pool is thrown from inside, so `before`'s writes are undone with it.
 */
async function attempt(db: Tx, claims: Claim[], st: Statement, before?: (trx: Knex.Transaction) => Promise<void>): Promise<void> {
  const run = async (q: Tx) => {
    const outcome = await execute(q, st, claims);
    if (!outcome.fresh) throw new StaleLookup();
    if (!outcome.ok) throw poolFull(claims, outcome);
  };
  if (before) {
    return db.transaction(async (trx) => {
      await before(trx);
      await run(trx);
    });
  }
  return (db as Knex.Transaction).isTransaction ? db.transaction((trx) => run(trx)) : run(db);
}

/**
 * Writes the boot (after `before`, in one transaction with it, when given); throws Nova's
 * 409 when a subnet has no address left for a port.
 */
export async function writeBoot(db: Tx, rows: BootRows, before?: (trx: Knex.Transaction) => Promise<void>): Promise<void> {
  return writeBoots(db, [rows], before);
}

/**
 * Writes several boot requests in one statement, all or nothing: the 409 of a subnet that
 * ran short (for one boot alone, exactly writeBoot's error) or of too many lost races.
 * The group commit (boot-batch.ts) then writes each boot alone, so each gets its own answer.
 */
export async function writeBoots(db: Tx, boots: BootRows[], before?: (trx: Knex.Transaction) => Promise<void>): Promise<void> {
  let raced: string | null = null;
  for (let n = 0; n < ATTEMPTS; n++) {
    const portsPerBoot = boots.map(portsOf);
    const claims = claimsOf(boots, portsPerBoot);
    const st = statement(boots, portsPerBoot, claims);
    try {
      return await attempt(db, claims, st, before);
    } catch (err) {
      const v = violated(err);
      if (v?.constraint === "ip_allocations_pkey") {
        raced = /\(subnet_id, ip_address\)=\(([0-9a-f-]+),/.exec(v.detail ?? "")?.[1] ?? claims[0]?.subnet.id ?? null;
        continue;
      }
      if (v?.constraint === "ports_mac_address_unique") continue; // new MACs next time
      throw err;
    }
  }
  const subnet = boots.flatMap((r) => r.nics.flatMap((n) => n.subnets)).find((s) => s.id === raced);
  throw conflict(`Could not allocate an IP address on subnet ${raced} (${subnet?.cidr ?? "?"}): too many concurrent requests; retry.`);
}
