/**
 * Flavor extra specs (os-extra_specs) and access to private flavors
 * (os-flavor-access, addTenantAccess / removeTenantAccess), as at microversion 2.1.
 */
import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { badRequest, conflict, notFound } from "../../common/errors.js";
import type { Db } from "../../common/db/knex.js";
import type { RouteDeps } from "../app.js";
import type { RequestContext } from "../context.js";
import { requireAdmin } from "../policy.js";
import { errors, IdParams, NoBody } from "../schemas/common.js";
import type { FlavorRow } from "./flavors.js";

const SPEC_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$";
// Nova takes strings, numbers and booleans as values and stores them as text.
const SpecValue = Type.Union([Type.String({ maxLength: 255 }), Type.Number(), Type.Boolean()]);
const ExtraSpecs = Type.Record(Type.String(), Type.String());

const FlavorKeyParams = Type.Object({ id: Type.String({ maxLength: 255 }), key: Type.String({ maxLength: 255 }) });

const FlavorAccess = Type.Object({
  flavor_access: Type.Array(Type.Object({ flavor_id: Type.String(), tenant_id: Type.String() })),
});

const TenantRef = Type.Object({ tenant: Type.String({ minLength: 1, maxLength: 255 }) }, { additionalProperties: false });
const FlavorActionBody = Type.Union(
  [
    Type.Object({ addTenantAccess: TenantRef }, { additionalProperties: false }),
    Type.Object({ removeTenantAccess: TenantRef }, { additionalProperties: false }),
  ],
  { description: '{"addTenantAccess": {"tenant": "<project id>"}} or {"removeTenantAccess": {"tenant": "<project id>"}}' },
);

const flavorNotFound = (id: string) => notFound(`Flavor ${id} could not be found.`);
const asText = (v: string | number | boolean) => (typeof v === "string" ? v : String(v));

/** A flavor the caller may see: public ones, private ones their project was given, all for an admin. */
export async function visibleFlavor(db: Db, ctx: RequestContext, id: string): Promise<FlavorRow | undefined> {
  const row = await db<FlavorRow>("flavors").where({ id }).first();
  if (!row || row.is_public || ctx.isAdmin) return row;
  const access = await db("flavor_access").where({ flavor_id: id, project_id: ctx.projectId }).first();
  return access ? row : undefined;
}

export const flavorExtraRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  const flavorOr404 = async (ctx: RequestContext, id: string) => {
    const row = await visibleFlavor(db, ctx, id);
    if (!row) throw flavorNotFound(id);
    return row;
  };

  const accessList = async (flavorId: string) => {
    const rows: { project_id: string }[] = await db("flavor_access").where({ flavor_id: flavorId }).orderBy("project_id");
    return { flavor_access: rows.map((r) => ({ flavor_id: flavorId, tenant_id: r.project_id })) };
  };

  app.get(
    "/v2.1/flavors/:id/os-extra_specs",
    {
      schema: {
        summary: "List a flavor's extra specs",
        tags: ["flavors"],
        params: IdParams,
        response: { 200: Type.Object({ extra_specs: ExtraSpecs }), ...errors(404) },
      },
    },
    async (req) => ({ extra_specs: (await flavorOr404(req.ctx, req.params.id)).extra_specs }),
  );

  app.post(
    "/v2.1/flavors/:id/os-extra_specs",
    {
      schema: {
        summary: "Create or update extra specs (admin)",
        description: "Merges the given keys into the flavor's extra specs and answers with the given keys.",
        tags: ["flavors"],
        params: IdParams,
        body: Type.Object(
          { extra_specs: Type.Record(Type.String({ pattern: SPEC_KEY }), SpecValue, { additionalProperties: false }) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ extra_specs: ExtraSpecs }), ...errors(400, 403, 404) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-flavor-extra-specs:create");
      const given = Object.fromEntries(Object.entries(req.body.extra_specs).map(([k, v]) => [k, asText(v)]));
      await db.transaction(async (trx) => {
        const row = await trx<FlavorRow>("flavors").where({ id: req.params.id }).forUpdate().first();
        if (!row) throw flavorNotFound(req.params.id);
        await trx("flavors").where({ id: row.id }).update({ extra_specs: JSON.stringify({ ...row.extra_specs, ...given }) });
      });
      return { extra_specs: given };
    },
  );

  app.get(
    "/v2.1/flavors/:id/os-extra_specs/:key",
    {
      schema: {
        summary: "Show one extra spec",
        tags: ["flavors"],
        params: FlavorKeyParams,
        response: { 200: Type.Record(Type.String(), Type.String(), { description: "{<key>: <value>}" }), ...errors(404) },
      },
    },
    async (req) => {
      const row = await flavorOr404(req.ctx, req.params.id);
      const value = row.extra_specs[req.params.key];
      if (value === undefined) throw notFound(`Flavor ${row.id} has no extra specs with key ${req.params.key}.`);
      return { [req.params.key]: value };
    },
  );

  app.put(
    "/v2.1/flavors/:id/os-extra_specs/:key",
    {
      schema: {
        summary: "Update one extra spec (admin)",
        description: "The body holds exactly the key named in the path.",
        tags: ["flavors"],
        params: FlavorKeyParams,
        body: Type.Record(Type.String({ pattern: SPEC_KEY }), SpecValue, { minProperties: 1, additionalProperties: false }),
        response: { 200: Type.Record(Type.String(), Type.String(), { description: "{<key>: <value>}" }), ...errors(400, 403, 404) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-flavor-extra-specs:update");
      const entries = Object.entries(req.body);
      if (entries.length > 1) throw badRequest("Request body contains too many items");
      const [key, value] = entries[0]!;
      if (key !== req.params.key) throw badRequest("Request body and URI mismatch");
      const text = asText(value);
      await db.transaction(async (trx) => {
        const row = await trx<FlavorRow>("flavors").where({ id: req.params.id }).forUpdate().first();
        if (!row) throw flavorNotFound(req.params.id);
        await trx("flavors").where({ id: row.id }).update({ extra_specs: JSON.stringify({ ...row.extra_specs, [key]: text }) });
      });
      return { [key]: text };
    },
  );

  app.delete(
    "/v2.1/flavors/:id/os-extra_specs/:key",
    {
      schema: {
        summary: "Delete one extra spec (admin)",
        tags: ["flavors"],
        params: FlavorKeyParams,
        response: { 200: NoBody("Deleted"), ...errors(403, 404) },
      },
    },
    async (req, reply) => {
      requireAdmin(req, "os_compute_api:os-flavor-extra-specs:delete");
      await db.transaction(async (trx) => {
        const row = await trx<FlavorRow>("flavors").where({ id: req.params.id }).forUpdate().first();
        if (!row) throw flavorNotFound(req.params.id);
        if (row.extra_specs[req.params.key] === undefined) {
          throw notFound(`Flavor ${row.id} has no extra specs with key ${req.params.key}.`);
        }
        const { [req.params.key]: _gone, ...rest } = row.extra_specs;
        await trx("flavors").where({ id: row.id }).update({ extra_specs: JSON.stringify(rest) });
      });
      return reply.status(200).send();
    },
  );

  app.get(
    "/v2.1/flavors/:id/os-flavor-access",
    {
      schema: {
        summary: "List the projects with access to a private flavor (admin)",
        tags: ["flavors"],
        params: IdParams,
        response: { 200: FlavorAccess, ...errors(403, 404) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-flavor-access");
      const row = await flavorOr404(req.ctx, req.params.id);
      if (row.is_public) throw notFound("Access list not available for public flavors.");
      return accessList(row.id);
    },
  );

  app.post(
    "/v2.1/flavors/:id/action",
    {
      schema: {
        summary: "Add or remove a project's access to a private flavor (admin)",
        tags: ["flavors"],
        params: IdParams,
        body: FlavorActionBody,
        response: { 200: FlavorAccess, ...errors(400, 403, 404, 409) },
      },
    },
    async (req) => {
      const body = req.body as { addTenantAccess?: { tenant: string }; removeTenantAccess?: { tenant: string } };
      if (body.addTenantAccess) {
        requireAdmin(req, "os_compute_api:os-flavor-access:add_tenant_access");
        const tenant = body.addTenantAccess.tenant;
        const row = await db<FlavorRow>("flavors").where({ id: req.params.id }).first();
        if (!row) throw flavorNotFound(req.params.id);
        if (row.is_public) throw conflict("Can not add access to a public flavor.");
        const inserted = await db("flavor_access")
          .insert({ flavor_id: row.id, project_id: tenant })
          .onConflict(["flavor_id", "project_id"])
          .ignore()
          .returning("flavor_id");
        if (inserted.length === 0) {
          throw conflict(`Flavor access already exists for flavor ${row.id} and project ${tenant} combination.`);
        }
        return accessList(row.id);
      }
      requireAdmin(req, "os_compute_api:os-flavor-access:remove_tenant_access");
      const tenant = body.removeTenantAccess!.tenant;
      const row = await db<FlavorRow>("flavors").where({ id: req.params.id }).first();
      if (!row) throw flavorNotFound(req.params.id);
      const deleted = await db("flavor_access").where({ flavor_id: row.id, project_id: tenant }).delete();
      if (deleted === 0) throw notFound(`Flavor access not found for ${row.id} / ${tenant} combination.`);
      return accessList(row.id);
    },
  );
};
