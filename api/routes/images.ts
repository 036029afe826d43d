/**
 * The image API in Glance v2 shapes. Bytes are streamed to the image store as they
 * arrive (never held whole in memory), hashed on the way, and the image becomes
 * active only once the whole file is on disk.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { imageHasher } from "../../common/image-hasher.js";
import type { FastifyPluginAsync } from "fastify";
import { Type, type Static } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Knex } from "knex";
import { badRequest, conflict, NovaError, notFound } from "../../common/errors.js";
import { isUuid, newId } from "../../common/ids.js";
import type { RouteDeps } from "../app.js";
import type { RequestContext } from "../context.js";
import { pageSize } from "../pagination.js";
import { NoBody, errors } from "../schemas/common.js";
import { Image, ImageCreateBody, ImageListQuery, RESERVED_IMAGE_KEYS } from "../schemas/image.js";
import { isService } from "../policy.js";

export interface ImageRow {
  id: string;
  name: string | null;
  status: string;
  disk_format: string | null;
  container_format: string | null;
  size: number | null;
  virtual_size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  min_disk: number;
  min_ram: number;
  visibility: string;
  protected: boolean;
  owner: string | null;
  properties: Record<string, string>;
  tags: string[];
  location: string | null;
  created_at: Date;
  updated_at: Date;
}

export function imageView(row: ImageRow) {
  return {
    ...row.properties,
    id: row.id,
    name: row.name,
    status: row.status,
    visibility: row.visibility,
    protected: row.protected,
    checksum: row.checksum,
    os_hash_algo: row.os_hash_algo,
    os_hash_value: row.os_hash_value,
    owner: row.owner,
    size: row.size,
    virtual_size: row.virtual_size,
    min_ram: row.min_ram,
    min_disk: row.min_disk,
    disk_format: row.disk_format,
    container_format: row.container_format,
    created_at: row.created_at.toISOString().replace(/\.\d{3}Z$/, "Z"),
    updated_at: row.updated_at.toISOString().replace(/\.\d{3}Z$/, "Z"),
    tags: row.tags,
    self: `/v2/images/${row.id}`,
    file: `/v2/images/${row.id}/file`,
    schema: "/v2/schemas/image",
  };
}

/** Images a caller may see: public and community ones, and their project's own. */
export function visibleImages(q: Knex.QueryBuilder, ctx: RequestContext): Knex.QueryBuilder {
  // The compute agents (service role) fetch base images and upload snapshots of every project.
  if (ctx.isAdmin || isService(ctx)) return q;
  return q.where((w) => w.whereIn("visibility", ["public", "community"]).orWhere("owner", ctx.projectId));
}

const ImageParams = Type.Object({ id: Type.String() });

export const imageRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db, config }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  // The upload body is handed to the route as the raw stream.
  app.addContentTypeParser("application/octet-stream", (_req, payload, done) => done(null, payload));

  const findImage = async (id: string, ctx: RequestContext): Promise<ImageRow> => {
    if (!isUuid(id)) throw notFound(`No image found with ID ${id}`);
    const row: ImageRow | undefined = await visibleImages(db("images").where({ id }).whereNot("status", "deleted"), ctx).first();
    if (!row) throw notFound(`No image found with ID ${id}`);
    return row;
  };

  app.post(
    "/v2/images",
    {
      schema: {
        summary: "Create an image record (status queued)",
        tags: ["images"],
        body: ImageCreateBody,
        response: { 201: Image, ...errors(400, 403, 409) },
      },
    },
    async (req, reply) => {
      const body = req.body as Record<string, unknown> & Static<typeof ImageCreateBody>;
      const properties: Record<string, string> = {};
      for (const [key, value] of Object.entries(body)) {
        if (!(key in ImageCreateBody.properties)) {
          if (RESERVED_IMAGE_KEYS.has(key)) throw new NovaError(403, `Attribute '${key}' is reserved.`);
          properties[key] = String(value);
        }
      }
      const id = body.id ?? newId();
      const visibility = body.visibility ?? "shared";
      if (visibility === "public" && !req.ctx.isAdmin) throw new NovaError(403, "Only administrators may publicize images.");
      const row = {
        id,
        name: body.name ?? null,
        status: "queued",
        disk_format: body.disk_format ?? null,
        container_format: body.container_format ?? null,
        min_disk: body.min_disk ?? 0,
        min_ram: body.min_ram ?? 0,
        visibility,
        protected: body.protected ?? false,
        owner: req.ctx.projectId,
        properties: JSON.stringify(properties),
        tags: JSON.stringify(body.tags ?? []),
      };
      const inserted = await db("images").insert(row).onConflict("id").ignore().returning("*");
      if (inserted.length === 0) throw conflict(`Image with identifier ${id} already exists.`);
      return reply.status(201).header("location", `${config.publicUrl}/v2/images/${id}`).send(imageView(inserted[0] as ImageRow));
    },
  );

  app.get(
    "/v2/images",
    {
      schema: {
        summary: "List images",
        tags: ["images"],
        querystring: ImageListQuery,
        response: {
          200: Type.Object({ images: Type.Array(Image), first: Type.String(), schema: Type.String(), next: Type.Optional(Type.String()) }),
          ...errors(400),
        },
      },
    },
    async (req) => {
      const size = pageSize(req.query.limit);
      let q = visibleImages(db("images").whereNot("status", "deleted"), req.ctx).orderBy([
        { column: "created_at", order: "desc" },
        { column: "id", order: "desc" },
      ]);
      if (req.query.name !== undefined) q = q.where("name", req.query.name);
      if (req.query.status !== undefined) q = q.where("status", req.query.status);
      if (req.query.visibility !== undefined) q = q.where("visibility", req.query.visibility);
      if (req.query.marker !== undefined) {
        const marker = isUuid(req.query.marker) ? await db("images").where({ id: req.query.marker }).first() : undefined;
        if (!marker) throw badRequest(`marker [${req.query.marker}] not found`);
        q = q.whereRaw("(created_at, id) < (SELECT created_at, id FROM images WHERE id = ?)", [marker.id]);
      }
      const rows: ImageRow[] = await q.limit(size);
      const last = rows[rows.length - 1];
      return {
        images: rows.map(imageView),
        first: "/v2/images",
        schema: "/v2/schemas/images",
        ...(rows.length === size && last ? { next: `/v2/images?marker=${last.id}&limit=${size}` } : {}),
      };
    },
  );

  app.get(
    "/v2/images/:id",
    { schema: { summary: "Show an image", tags: ["images"], params: ImageParams, response: { 200: Image, ...errors(404) } } },
    async (req) => imageView(await findImage(req.params.id, req.ctx)),
  );

  app.put(
    "/v2/images/:id/file",
    {
      schema: {
        summary: "Upload the image's bytes (application/octet-stream)",
        tags: ["images"],
        params: ImageParams,
        consumes: ["application/octet-stream"],
        response: { 204: NoBody("Uploaded; the image is active"), ...errors(400, 404, 409, 415) },
      },
    },
    async (req, reply) => {
      const image = await findImage(req.params.id, req.ctx);
      if (image.owner !== req.ctx.projectId && !req.ctx.isAdmin && !isService(req.ctx)) {
        throw new NovaError(403, "You are not permitted to upload data for this image.");
      }
      if (!(req.body as Readable | undefined)?.pipe) throw new NovaError(415, "Upload needs Content-Type: application/octet-stream");
      // queued -> saving claims the upload; a second concurrent upload gets 409.
      const claimed = await db("images").where({ id: image.id, status: "queued" }).update({ status: "saving", updated_at: db.fn.now() });
      if (claimed === 0) throw conflict(`Image ${image.id} is not in a state that accepts data (status ${image.status}).`);
      await mkdir(config.imageStoreDir, { recursive: true });
      const finalPath = path.join(config.imageStoreDir, image.id);
      const partPath = `${finalPath}.part`;
      const hasher = imageHasher();
      try {
        await pipeline(req.body as Readable, hasher.stream, createWriteStream(partPath));
        if (hasher.size() === 0) throw badRequest("The uploaded image is empty.");
        await rename(partPath, finalPath);
      } catch (err) {
        await rm(partPath, { force: true });
        await db("images").where({ id: image.id }).update({ status: "queued", updated_at: db.fn.now() });
        if (err instanceof NovaError) throw err;
        throw badRequest(`The upload did not complete: ${(err as Error).message}`);
      }
      const digest = hasher.digest();
      await db("images").where({ id: image.id }).update({
        status: "active",
        size: digest.size,
        checksum: digest.md5,
        os_hash_algo: "sha256",
        os_hash_value: digest.sha256,
        location: finalPath,
        updated_at: db.fn.now(),
      });
      return reply.status(204).send();
    },
  );

  app.get(
    "/v2/images/:id/file",
    {
      schema: {
        summary: "Download the image's bytes (application/octet-stream); 204 while it has none",
        tags: ["images"],
        params: ImageParams,
        produces: ["application/octet-stream"],
        response: {
          200: Type.Unsafe<unknown>({ description: "The image data; Content-MD5 carries the md5 checksum as Glance sends it", type: "string", format: "binary" }),
          204: NoBody("The image has no data yet"),
          ...errors(404),
        },
      },
    },
    async (req, reply) => {
      const image = await findImage(req.params.id, req.ctx);
      if (image.status !== "active" || !image.location) return reply.status(204).send();
      let size: number;
      try {
        size = (await stat(image.location)).size;
      } catch {
        // The record says active but the store lost the file: that is the server's fault, not the caller's.
        throw new NovaError(500, `The data of image ${image.id} is missing from the image store.`);
      }
      reply.status(200).header("content-type", "application/octet-stream").header("content-length", String(size));
      if (image.checksum) reply.header("content-md5", image.checksum);
      return reply.send(createReadStream(image.location));
    },
  );

  app.delete(
    "/v2/images/:id",
    {
      schema: {
        summary: "Delete an image",
        tags: ["images"],
        params: ImageParams,
        response: { 204: NoBody("Deleted"), ...errors(403, 404) },
      },
    },
    async (req, reply) => {
      const image = await findImage(req.params.id, req.ctx);
      if (image.owner !== req.ctx.projectId && !req.ctx.isAdmin) throw new NovaError(403, "You are not permitted to delete this image.");
      if (image.protected) throw new NovaError(403, `Image ${image.id} is protected and cannot be deleted.`);
      await db("images").where({ id: image.id }).update({ status: "deleted", location: null, updated_at: db.fn.now() });
      if (image.location) await rm(image.location, { force: true });
      return reply.status(204).send();
    },
  );
};
