/**
 * Host aggregates (admin), microversion 2.1 shapes: integer ids, no uuid in the body,
 * zone-less timestamps, create answering 200 without hosts and metadata, delete 200.
 * An aggregate with an availability_zone puts its hosts in that zone (metadata key
 * "availability_zone", as Nova keeps it); a host is in at most one zone.
 */
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Knex } from "knex";
import { NovaError, badRequest, conflict, notFound } from "../../common/errors.js";
import { newId } from "../../common/ids.js";
import type { Db } from "../../common/db/knex.js";
import type { RouteDeps } from "../app.js";
import { requireAdmin } from "../policy.js";
import { errors, IdParams, Nullable } from "../schemas/common.js";
import { novaTime } from "./keypairs.js";

interface AggregateRow {
  id: number;
  uuid: string;
  name: string;
  availability_zone: string | null;
  metadata: Record<string, string>;
  created_at: Date;
  updated_at: Date | null;
}

const AggregateCore = {
  id: Type.Integer(),
  name: Type.String(),
  availability_zone: Nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Nullable(Type.String()),
  deleted: Type.Boolean(),
  deleted_at: Type.Null(),
};
const Aggregate = Type.Object({
  ...AggregateCore,
  hosts: Type.Array(Type.String()),
  metadata: Type.Record(Type.String(), Type.String()),
});
const AggregateCreated = Type.Object(AggregateCore);

const Name = Type.String({ minLength: 1, maxLength: 255 });
const Zone = Type.String({ minLength: 1, maxLength: 255, pattern: "^[^:]*$", description: "A zone name without ':'" });

const CreateBody = Type.Object(
  { aggregate: Type.Object({ name: Name, availability_zone: Type.Optional(Nullable(Zone)) }, { additionalProperties: false }) },
  { additionalProperties: false },
);
const UpdateBody = Type.Object(
  {
    aggregate: Type.Object(
      { name: Type.Optional(Name), availability_zone: Type.Optional(Nullable(Zone)) },
      { additionalProperties: false, minProperties: 1 },
    ),
  },
  { additionalProperties: false },
);
const HostRef = Type.Object({ host: Type.String({ minLength: 1, maxLength: 255 }) }, { additionalProperties: false });
const ActionBody = Type.Union(
  [
    Type.Object({ add_host: HostRef }, { additionalProperties: false }),
    Type.Object({ remove_host: HostRef }, { additionalProperties: false }),
    Type.Object(
      {
        set_metadata: Type.Object(
          {
            metadata: Type.Record(Type.String({ minLength: 1, maxLength: 255 }), Nullable(Type.String({ maxLength: 255 })), {
              description: "Keys set to null are removed; availability_zone moves the aggregate's hosts to that zone",
            }),
          },
          { additionalProperties: false },
        ),
      },
      { additionalProperties: false },
    ),
  ],
  { description: '{"add_host": {"host"}}, {"remove_host": {"host"}} or {"set_metadata": {"metadata": {...}}}' },
);

const aggregateNotFound = (id: string | number) => notFound(`Aggregate ${id} could not be found.`);

/** Nova's normalize_name: surrounding whitespace removed. */
const normalize = (s: string) => s.trim();

async function loadAggregate(db: Db | Knex.Transaction, id: string, lock = false): Promise<AggregateRow> {
  if (!/^[0-9]{1,9}$/.test(id)) throw aggregateNotFound(id);
  const q = db<AggregateRow>("aggregates").where({ id: Number(id) });
  const row = await (lock ? q.forUpdate().first() : q.first());
  if (!row) throw aggregateNotFound(id);
  return row;
}

async function hostsOf(db: Db | Knex.Transaction, ids: number[]): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>(ids.map((id) => [id, []]));
  if (ids.length === 0) return out;
  const rows: { aggregate_id: number; host: string }[] = await db("aggregate_hosts").whereIn("aggregate_id", ids).orderBy(["aggregate_id", "created_at", "host"]);
  for (const r of rows) out.get(r.aggregate_id)!.push(r.host);
  return out;
}

function view(row: AggregateRow, hosts: string[]) {
  return {
    id: row.id,
    name: row.name,
    availability_zone: row.availability_zone,
    created_at: novaTime(row.created_at)!,
    updated_at: novaTime(row.updated_at),
    deleted: false,
    deleted_at: null,
    hosts,
    metadata: row.metadata,
  };
}

/** The zones (other than `zone`) that aggregates other than `aggregateId` give these hosts. */
async function otherZones(db: Knex.Transaction, aggregateId: number, hosts: string[], zone: string): Promise<string[]> {
  if (hosts.length === 0) return [];
  const rows: { availability_zone: string }[] = await db("aggregates as a")
    .join("aggregate_hosts as ah", "ah.aggregate_id", "a.id")
    .whereIn("ah.host", hosts)
    .whereNot("a.id", aggregateId)
    .whereNotNull("a.availability_zone")
    .whereNot("a.availability_zone", zone)
    .distinct("a.availability_zone")
    .orderBy("a.availability_zone");
  return rows.map((r) => r.availability_zone);
}

const pyList = (items: string[]) => `[${items.map((z) => `'${z}'`).join(", ")}]`;

export const aggregateRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  const admin = (req: FastifyRequest, action: string) => requireAdmin(req, `os_compute_api:os-aggregates:${action}`);

  const show = async (id: number) => {
    const row = (await db<AggregateRow>("aggregates").where({ id }).first())!;
    return { aggregate: view(row, (await hostsOf(db, [id])).get(id)!) };
  };

  /** Writes a new zone for the aggregate, refusing one that would put a host in two zones. */
  const changeZone = async (trx: Knex.Transaction, row: AggregateRow, zone: string | null, fail: (reason: string) => NovaError) => {
    if (zone !== null) {
      const hosts = (await hostsOf(trx, [row.id])).get(row.id)!;
      const others = await otherZones(trx, row.id, hosts, zone);
      if (others.length) throw fail(`One or more hosts already in availability zone(s) ${pyList(others)}`);
    }
    const metadata = { ...row.metadata };
    if (zone === null) delete metadata.availability_zone;
    else metadata.availability_zone = zone;
    return { availability_zone: zone, metadata: JSON.stringify(metadata) };
  };

  const nameTaken = async (trx: Knex.Transaction, name: string, exceptId?: number) => {
    const q = trx("aggregates").where({ name });
    if (exceptId !== undefined) q.whereNot({ id: exceptId });
    return (await q.first("id")) !== undefined;
  };

  app.get(
    "/v2.1/os-aggregates",
    {
      schema: {
        summary: "List aggregates (admin)",
        tags: ["aggregates"],
        response: { 200: Type.Object({ aggregates: Type.Array(Aggregate) }), ...errors(403) },
      },
    },
    async (req) => {
      admin(req, "index");
      const rows = await db<AggregateRow>("aggregates").orderBy("id");
      const hosts = await hostsOf(db, rows.map((r) => r.id));
      return { aggregates: rows.map((r) => view(r, hosts.get(r.id)!)) };
    },
  );

  app.post(
    "/v2.1/os-aggregates",
    {
      schema: {
        summary: "Create an aggregate (admin)",
        tags: ["aggregates"],
        body: CreateBody,
        response: { 200: Type.Object({ aggregate: AggregateCreated }), ...errors(400, 403, 409) },
      },
    },
    async (req) => {
      admin(req, "create");
      const name = normalize(req.body.aggregate.name);
      const zone = req.body.aggregate.availability_zone ? normalize(req.body.aggregate.availability_zone) : null;
      if (name === "") throw badRequest("Invalid input for field/attribute name. Value: must not be blank.");
      if (zone === "") throw badRequest("Invalid input for field/attribute availability_zone. Value: must not be blank.");
      const row = await db.transaction(async (trx) => {
        if (await nameTaken(trx, name)) throw conflict(`Aggregate ${name} already exists.`);
        const inserted = await trx("aggregates")
          .insert({ uuid: newId(), name, availability_zone: zone, metadata: JSON.stringify(zone ? { availability_zone: zone } : {}) })
          .onConflict("name")
          .ignore()
          .returning("*");
        if (inserted.length === 0) throw conflict(`Aggregate ${name} already exists.`);
        return inserted[0] as AggregateRow;
      });
      const { hosts: _h, metadata: _m, ...created } = view(row, []);
      return { aggregate: created };
    },
  );

  app.get(
    "/v2.1/os-aggregates/:id",
    {
      schema: {
        summary: "Show an aggregate (admin)",
        tags: ["aggregates"],
        params: IdParams,
        response: { 200: Type.Object({ aggregate: Aggregate }), ...errors(403, 404) },
      },
    },
    async (req) => {
      admin(req, "show");
      const row = await loadAggregate(db, req.params.id);
      return show(row.id);
    },
  );

  app.put(
    "/v2.1/os-aggregates/:id",
    {
      schema: {
        summary: "Rename an aggregate or change its availability zone (admin)",
        tags: ["aggregates"],
        params: IdParams,
        body: UpdateBody,
        response: { 200: Type.Object({ aggregate: Aggregate }), ...errors(400, 403, 404, 409) },
      },
    },
    async (req) => {
      admin(req, "update");
      const id = await db.transaction(async (trx) => {
        const row = await loadAggregate(trx, req.params.id, true);
        const u = req.body.aggregate;
        const updates: Record<string, unknown> = { updated_at: trx.fn.now() };
        if (u.name !== undefined) {
          const name = normalize(u.name);
          if (name === "") throw badRequest("Invalid input for field/attribute name. Value: must not be blank.");
          if (await nameTaken(trx, name, row.id)) throw conflict(`Aggregate ${name} already exists.`);
          updates.name = name;
        }
        if (u.availability_zone !== undefined) {
          const zone = u.availability_zone === null ? null : normalize(u.availability_zone);
          if (zone === "") throw badRequest("Invalid input for field/attribute availability_zone. Value: must not be blank.");
          Object.assign(
            updates,
            await changeZone(trx, row, zone, (reason) => badRequest(`Cannot update aggregate ${row.id}. Reason: ${reason}.`)),
          );
        }
        await trx("aggregates").where({ id: row.id }).update(updates);
        return row.id;
      });
      return show(id);
    },
  );

  app.delete(
    "/v2.1/os-aggregates/:id",
    {
      schema: {
        summary: "Delete an empty aggregate (admin)",
        tags: ["aggregates"],
        params: IdParams,
        response: { 200: Type.Unsafe<undefined>({ description: "Deleted (no body)" }), ...errors(400, 403, 404) },
      },
    },
    async (req, reply) => {
      admin(req, "delete");
      await db.transaction(async (trx) => {
        const row = await loadAggregate(trx, req.params.id, true);
        if ((await hostsOf(trx, [row.id])).get(row.id)!.length > 0) {
          throw badRequest(`Cannot remove aggregate ${row.id}. Reason: Host aggregate is not empty.`);
        }
        await trx("aggregates").where({ id: row.id }).delete();
      });
      return reply.status(200).send();
    },
  );

  app.post(
    "/v2.1/os-aggregates/:id/action",
    {
      schema: {
        summary: "add_host, remove_host or set_metadata (admin)",
        tags: ["aggregates"],
        params: IdParams,
        body: ActionBody,
        response: { 200: Type.Object({ aggregate: Aggregate }), ...errors(400, 403, 404, 409) },
      },
    },
    async (req) => {
      const body = req.body as {
        add_host?: { host: string };
        remove_host?: { host: string };
        set_metadata?: { metadata: Record<string, string | null> };
      };
      if (body.add_host) {
        admin(req, "add_host");
        const host = body.add_host.host;
        const id = await db.transaction(async (trx) => {
          const row = await loadAggregate(trx, req.params.id, true);
          if (!(await trx("compute_services").where({ host }).first("id"))) throw notFound(`Compute host ${host} could not be found.`);
          if (await trx("aggregate_hosts").where({ aggregate_id: row.id, host }).first()) {
            throw conflict(`Aggregate ${row.id} already has host ${host}.`);
          }
          if (row.availability_zone !== null) {
            const others = await otherZones(trx, row.id, [host], row.availability_zone);
            if (others.length) {
              throw conflict(`Cannot add host to aggregate ${row.id}. Reason: One or more hosts already in availability zone(s) ${pyList(others)}.`);
            }
          }
          await trx("aggregate_hosts").insert({ aggregate_id: row.id, host });
          await trx("aggregates").where({ id: row.id }).update({ updated_at: trx.fn.now() });
          return row.id;
        });
        return show(id);
      }
      if (body.remove_host) {
        admin(req, "remove_host");
        const host = body.remove_host.host;
        const id = await db.transaction(async (trx) => {
          const fail = () => notFound(`Cannot remove host ${host} in aggregate ${req.params.id}`);
          const row = await loadAggregate(trx, req.params.id, true).catch(() => {
            throw fail();
          });
          const removed = await trx("aggregate_hosts").where({ aggregate_id: row.id, host }).delete();
          if (removed === 0) throw fail();
          await trx("aggregates").where({ id: row.id }).update({ updated_at: trx.fn.now() });
          return row.id;
        });
        return show(id);
      }
      admin(req, "set_metadata");
      const given = body.set_metadata!.metadata;
      const id = await db.transaction(async (trx) => {
        const row = await loadAggregate(trx, req.params.id, true);
        const metadata: Record<string, string> = { ...row.metadata };
        for (const [k, v] of Object.entries(given)) {
          if (v === null) delete metadata[k];
          else metadata[k] = v;
        }
        let updates: Record<string, unknown> = { metadata: JSON.stringify(metadata) };
        if ("availability_zone" in given) {
          const zone = given.availability_zone === null ? null : normalize(given.availability_zone!);
          if (zone === "" || (zone !== null && zone.includes(":"))) {
            throw badRequest(`Cannot update metadata of aggregate ${row.id}. Reason: Invalid availability zone name.`);
          }
          const changed = await changeZone(trx, { ...row, metadata }, zone, (reason) =>
            badRequest(`Cannot update metadata of aggregate ${row.id}. Reason: ${reason}.`),
          );
          updates = changed;
        }
        await trx("aggregates").where({ id: row.id }).update({ ...updates, updated_at: trx.fn.now() });
        return row.id;
      });
      return show(id);
    },
  );
};
