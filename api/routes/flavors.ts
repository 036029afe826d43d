import type { FastifyPluginAsync } from "fastify";
import { Type, type Static } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { conflict, notFound } from "../../common/errors.js";
import { newId } from "../../common/ids.js";
import type { RouteDeps } from "../app.js";
import { resourceLinks } from "../links.js";
import { nextLink, pageSize } from "../pagination.js";
import { requireAdmin } from "../policy.js";
import { NoBody, errors, IdParams, Links } from "../schemas/common.js";
import { Flavor, FlavorCreateBody, FlavorListQuery, FlavorSummary } from "../schemas/flavor.js";
import { visibleFlavor } from "./flavor-extras.js";

export interface FlavorRow {
  id: string;
  name: string;
  vcpus: number;
  ram: number;
  disk: number;
  ephemeral: number;
  swap: number;
  rxtx_factor: number;
  is_public: boolean;
  description: string | null;
  extra_specs: Record<string, string>;
}

export function flavorView(row: FlavorRow, publicUrl: string) {
  return {
    id: row.id,
    name: row.name,
    ram: row.ram,
    vcpus: row.vcpus,
    disk: row.disk,
    swap: row.swap === 0 ? ("" as const) : row.swap,
    "OS-FLV-EXT-DATA:ephemeral": row.ephemeral,
    "OS-FLV-DISABLED:disabled": false,
    "os-flavor-access:is_public": row.is_public,
    rxtx_factor: row.rxtx_factor,
    links: resourceLinks(publicUrl, "flavors", row.id),
  };
}

const toInt = (v: number | string | undefined, fallback = 0) => (v === undefined || v === "" ? fallback : Number(v));

export const flavorRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db, config }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  const listQuery = (query: Static<typeof FlavorListQuery>, isAdmin: boolean, projectId: string) => {
    let q = db<FlavorRow>("flavors").orderBy("id", "asc");
    const isPublic = (query.is_public ?? "true").toLowerCase();
    // Nova: admins may ask for every flavor (is_public=none); everyone else sees public ones.
    // (compute extras) ... and the private ones their project was given access to.
    if (!(isAdmin && (isPublic === "none" || isPublic === "false"))) {
      q = q.where((w) => w.where("is_public", true).orWhereIn("id", db("flavor_access").select("flavor_id").where({ project_id: projectId })));
    } else if (isPublic === "false") q = q.where("is_public", false);
    if (query.minRam !== undefined) q = q.where("ram", ">=", query.minRam);
    if (query.minDisk !== undefined) q = q.where("disk", ">=", query.minDisk);
    if (query.marker !== undefined) q = q.where("id", ">", query.marker);
    return q.limit(pageSize(query.limit));
  };

  const assertMarker = async (marker: string | undefined) => {
    if (marker !== undefined && !(await db("flavors").where({ id: marker }).first())) {
      throw Object.assign(new Error(`marker [${marker}] not found`), { statusCode: 400 });
    }
  };

  app.get(
    "/v2.1/flavors",
    {
      schema: {
        summary: "List flavors",
        tags: ["flavors"],
        querystring: FlavorListQuery,
        response: { 200: Type.Object({ flavors: Type.Array(FlavorSummary), flavors_links: Type.Optional(Links) }), ...errors(400) },
      },
    },
    async (req) => {
      await assertMarker(req.query.marker);
      const rows = await listQuery(req.query, req.ctx.isAdmin, req.ctx.projectId);
      const links = nextLink(`${config.publicUrl}/v2.1/flavors`, req.query, rows, pageSize(req.query.limit));
      return {
        flavors: rows.map((r) => ({ id: r.id, name: r.name, links: resourceLinks(config.publicUrl, "flavors", r.id) })),
        ...(links.length ? { flavors_links: links } : {}),
      };
    },
  );

  app.get(
    "/v2.1/flavors/detail",
    {
      schema: {
        summary: "List flavors with details",
        tags: ["flavors"],
        querystring: FlavorListQuery,
        response: { 200: Type.Object({ flavors: Type.Array(Flavor), flavors_links: Type.Optional(Links) }), ...errors(400) },
      },
    },
    async (req) => {
      await assertMarker(req.query.marker);
      const rows = await listQuery(req.query, req.ctx.isAdmin, req.ctx.projectId);
      const links = nextLink(`${config.publicUrl}/v2.1/flavors/detail`, req.query, rows, pageSize(req.query.limit));
      return { flavors: rows.map((r) => flavorView(r, config.publicUrl)), ...(links.length ? { flavors_links: links } : {}) };
    },
  );

  app.get(
    "/v2.1/flavors/:id",
    {
      schema: {
        summary: "Show a flavor",
        tags: ["flavors"],
        params: IdParams,
        response: { 200: Type.Object({ flavor: Flavor }), ...errors(404) },
      },
    },
    async (req) => {
      const row = await visibleFlavor(db, req.ctx, req.params.id); // compute extras: private flavors
      if (!row) throw notFound(`Flavor ${req.params.id} could not be found.`);
      return { flavor: flavorView(row, config.publicUrl) };
    },
  );

  app.post(
    "/v2.1/flavors",
    {
      schema: {
        summary: "Create a flavor (admin)",
        tags: ["flavors"],
        body: FlavorCreateBody,
        response: { 200: Type.Object({ flavor: Flavor }), ...errors(400, 403, 409) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-flavor-manage:create");
      const f = req.body.flavor;
      const row: FlavorRow = {
        id: f.id ?? newId(),
        name: f.name.trim(),
        ram: toInt(f.ram),
        vcpus: toInt(f.vcpus),
        disk: toInt(f.disk),
        swap: toInt(f.swap),
        ephemeral: toInt(f["OS-FLV-EXT-DATA:ephemeral"]),
        rxtx_factor: f.rxtx_factor ?? 1.0,
        is_public: f["os-flavor-access:is_public"] ?? true,
        description: f.description ?? null,
        extra_specs: {},
      };
      if (row.name === "") throw Object.assign(new Error("Invalid input for field/attribute name."), { statusCode: 400 });
      const inserted = await db("flavors")
        .insert({ ...row, extra_specs: JSON.stringify(row.extra_specs) })
        .onConflict()
        .ignore()
        .returning("id");
      if (inserted.length === 0) {
        const byId = await db("flavors").where({ id: row.id }).first();
        throw conflict(byId ? `Flavor with ID ${row.id} already exists.` : `Flavor with name ${row.name} already exists.`);
      }
      return { flavor: flavorView(row, config.publicUrl) };
    },
  );

  app.delete(
    "/v2.1/flavors/:id",
    {
      schema: {
        summary: "Delete a flavor (admin)",
        tags: ["flavors"],
        params: IdParams,
        response: { 202: NoBody("Accepted"), ...errors(403, 404) },
      },
    },
    async (req, reply) => {
      requireAdmin(req, "os_compute_api:os-flavor-manage:delete");
      // Servers keep their own snapshot of the flavor, so deleting one in use is safe (as in Nova).
      const deleted = await db("flavors").where({ id: req.params.id }).delete();
      if (deleted === 0) throw notFound(`Flavor ${req.params.id} could not be found.`);
      return reply.status(202).send();
    },
  );
};
