/** Server metadata (`/servers/{id}/metadata`) and tags (`/servers/{id}/tags`) sub-resources. */
import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Knex } from "knex";
import { badRequest, conflict, NovaError, notFound } from "../../common/errors.js";
import { isUuid } from "../../common/ids.js";
import type { RouteDeps } from "../app.js";
import type { RequestContext } from "../context.js";
import { errors, NoBody } from "../schemas/common.js";

export const MAX_METADATA_ITEMS = 128;
export const MAX_TAGS = 50;

const Key = Type.String({ minLength: 1, maxLength: 255 });
const Metadata = Type.Record(Key, Type.String({ maxLength: 255 }));
const MetadataBody = Type.Object({ metadata: Metadata }, { additionalProperties: false });
const MetaBody = Type.Object({ meta: Type.Record(Key, Type.String({ maxLength: 255 }), { minProperties: 1, maxProperties: 1 }) }, { additionalProperties: false });
const Tag = Type.String({ minLength: 1, maxLength: 60, pattern: "^[^,/]*$" });
const Id = Type.Object({ id: Type.String() });
const IdKey = Type.Object({ id: Type.String(), key: Type.String() });
const IdTag = Type.Object({ id: Type.String(), tag: Type.String() });

interface Owned {
  id: string;
  project_id: string;
  metadata: Record<string, string>;
  locked: boolean;
}

async function findServer(q: Knex | Knex.Transaction, ctx: RequestContext, id: string, forUpdate = false): Promise<Owned> {
  let query = q("instances").where({ id: isUuid(id) ? id : "00000000-0000-0000-0000-000000000000" }).whereNot("vm_state", "deleted");
  if (forUpdate) query = query.forUpdate();
  const row: Owned | undefined = await query.first("id", "project_id", "metadata", "locked");
  if (!row || (!ctx.isAdmin && row.project_id !== ctx.projectId)) throw notFound(`Instance ${id} could not be found.`);
  return row;
}

function checkWritable(row: Owned, ctx: RequestContext): void {
  if (row.locked && !ctx.isAdmin) throw conflict(`Instance ${row.id} is locked`);
}

/** Nova's metadata rules: keys of 1 to 255 characters, string values of at most 255. */
export function checkMetadataItems(metadata: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(metadata)) {
    if (key.length === 0 || key.length > 255) throw badRequest("Invalid input for field/attribute metadata. Keys must be 1 to 255 characters long.");
    if (typeof value !== "string" || value.length > 255) {
      throw badRequest(`Invalid input for field/attribute metadata. The value of ${key} must be a string of at most 255 characters.`);
    }
  }
}

function checkCount(metadata: Record<string, string>): void {
  const n = Object.keys(metadata).length;
  if (n > MAX_METADATA_ITEMS) throw new NovaError(403, `Quota exceeded for metadata_items: Requested ${n}, but the limit is ${MAX_METADATA_ITEMS}`);
}

export const serverMetadataRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();
  const tags = ["servers"];

  const writeMetadata = (req: { ctx: RequestContext }, id: string, change: (current: Record<string, string>) => Record<string, string>) =>
    db.transaction(async (trx) => {
      const row = await findServer(trx, req.ctx, id, true);
      checkWritable(row, req.ctx);
      const next = change(row.metadata);
      checkMetadataItems(next);
      checkCount(next);
      await trx("instances").where({ id: row.id }).update({ metadata: JSON.stringify(next), updated_at: trx.fn.now() });
      return next;
    });

  app.get(
    "/v2.1/servers/:id/metadata",
    { schema: { summary: "List server metadata", tags, params: Id, response: { 200: MetadataBody, ...errors(404) } } },
    async (req) => ({ metadata: (await findServer(db, req.ctx, req.params.id)).metadata }),
  );

  app.post(
    "/v2.1/servers/:id/metadata",
    {
      schema: { summary: "Create or update metadata items (merge)", tags, params: Id, body: MetadataBody, response: { 200: MetadataBody, ...errors(400, 403, 404, 409) } },
    },
    async (req) => ({ metadata: await writeMetadata(req, req.params.id, (cur) => ({ ...cur, ...req.body.metadata })) }),
  );

  app.put(
    "/v2.1/servers/:id/metadata",
    {
      schema: { summary: "Replace all metadata", tags, params: Id, body: MetadataBody, response: { 200: MetadataBody, ...errors(400, 403, 404, 409) } },
    },
    async (req) => ({ metadata: await writeMetadata(req, req.params.id, () => ({ ...req.body.metadata })) }),
  );

  app.get(
    "/v2.1/servers/:id/metadata/:key",
    { schema: { summary: "Show one metadata item", tags, params: IdKey, response: { 200: MetaBody, ...errors(404) } } },
    async (req) => {
      const row = await findServer(db, req.ctx, req.params.id);
      if (!Object.hasOwn(row.metadata, req.params.key)) throw notFound("Metadata item was not found");
      return { meta: { [req.params.key]: row.metadata[req.params.key]! } };
    },
  );

  app.put(
    "/v2.1/servers/:id/metadata/:key",
    {
      schema: { summary: "Create or replace one metadata item", tags, params: IdKey, body: MetaBody, response: { 200: MetaBody, ...errors(400, 403, 404, 409) } },
    },
    async (req) => {
      const [key, value] = Object.entries(req.body.meta)[0]!;
      if (key !== req.params.key) throw badRequest("Request body and URI mismatch");
      await writeMetadata(req, req.params.id, (cur) => ({ ...cur, [key]: value }));
      return { meta: { [key]: value } };
    },
  );

  app.delete(
    "/v2.1/servers/:id/metadata/:key",
    { schema: { summary: "Delete one metadata item", tags, params: IdKey, response: { 204: NoBody("Deleted"), ...errors(404, 409) } } },
    async (req, reply) => {
      await writeMetadata(req, req.params.id, (cur) => {
        if (!Object.hasOwn(cur, req.params.key)) throw notFound("Metadata item was not found");
        const { [req.params.key]: _gone, ...rest } = cur;
        return rest;
      });
      return reply.status(204).send();
    },
  );

  const tagList = async (q: Knex | Knex.Transaction, id: string) =>
    ((await q("instance_tags").where({ instance_id: id }).orderBy("tag").select("tag")) as { tag: string }[]).map((t) => t.tag);

  app.get(
    "/v2.1/servers/:id/tags",
    { schema: { summary: "List server tags", tags, params: Id, response: { 200: Type.Object({ tags: Type.Array(Type.String()) }), ...errors(404) } } },
    async (req) => ({ tags: await tagList(db, (await findServer(db, req.ctx, req.params.id)).id) }),
  );

  app.put(
    "/v2.1/servers/:id/tags",
    {
      schema: {
        summary: "Replace all tags",
        tags,
        params: Id,
        body: Type.Object({ tags: Type.Array(Tag) }, { additionalProperties: false }),
        response: { 200: Type.Object({ tags: Type.Array(Type.String()) }), ...errors(400, 404, 409) },
      },
    },
    async (req) => {
      const wanted = [...new Set(req.body.tags)];
      if (wanted.length > MAX_TAGS) throw badRequest(`The number of tags exceeded the per-server limit ${MAX_TAGS}`);
      return db.transaction(async (trx) => {
        const row = await findServer(trx, req.ctx, req.params.id, true);
        checkWritable(row, req.ctx);
        await trx("instance_tags").where({ instance_id: row.id }).delete();
        if (wanted.length) await trx("instance_tags").insert(wanted.map((tag) => ({ instance_id: row.id, tag })));
        return { tags: await tagList(trx, row.id) };
      });
    },
  );

  app.delete(
    "/v2.1/servers/:id/tags",
    { schema: { summary: "Delete all tags", tags, params: Id, response: { 204: NoBody("Deleted"), ...errors(404, 409) } } },
    async (req, reply) => {
      await db.transaction(async (trx) => {
        const row = await findServer(trx, req.ctx, req.params.id, true);
        checkWritable(row, req.ctx);
        await trx("instance_tags").where({ instance_id: row.id }).delete();
      });
      return reply.status(204).send();
    },
  );

  app.get(
    "/v2.1/servers/:id/tags/:tag",
    { schema: { summary: "Check a tag", tags, params: IdTag, response: { 204: NoBody("The server has the tag"), ...errors(404) } } },
    async (req, reply) => {
      const row = await findServer(db, req.ctx, req.params.id);
      const found = await db("instance_tags").where({ instance_id: row.id, tag: req.params.tag }).first();
      if (!found) throw notFound(`Tag ${req.params.tag} could not be found.`);
      return reply.status(204).send();
    },
  );

  app.put(
    "/v2.1/servers/:id/tags/:tag",
    {
      schema: {
        summary: "Add a tag",
        tags,
        params: IdTag,
        response: { 201: NoBody("Added"), 204: NoBody("Already there"), ...errors(400, 404, 409) },
      },
    },
    async (req, reply) => {
      const tag = req.params.tag;
      if (tag.length === 0 || tag.length > 60 || /[,/]/.test(tag)) throw badRequest(`Invalid tag: ${tag}`);
      const created = await db.transaction(async (trx) => {
        const row = await findServer(trx, req.ctx, req.params.id, true);
        checkWritable(row, req.ctx);
        const current = await tagList(trx, row.id);
        if (current.includes(tag)) return false;
        if (current.length >= MAX_TAGS) throw badRequest(`The number of tags exceeded the per-server limit ${MAX_TAGS}`);
        await trx("instance_tags").insert({ instance_id: row.id, tag });
        return true;
      });
      if (!created) return reply.status(204).send();
      return reply.status(201).header("location", `/v2.1/servers/${req.params.id}/tags/${encodeURIComponent(tag)}`).send();
    },
  );

  app.delete(
    "/v2.1/servers/:id/tags/:tag",
    { schema: { summary: "Remove a tag", tags, params: IdTag, response: { 204: NoBody("Removed"), ...errors(404, 409) } } },
    async (req, reply) => {
      await db.transaction(async (trx) => {
        const row = await findServer(trx, req.ctx, req.params.id, true);
        checkWritable(row, req.ctx);
        const n = await trx("instance_tags").where({ instance_id: row.id, tag: req.params.tag }).delete();
        if (n === 0) throw notFound(`Tag ${req.params.tag} could not be found.`);
      });
      return reply.status(204).send();
    },
  );
};
