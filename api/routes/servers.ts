import type { FastifyPluginAsync } from "fastify";
import { Type, type Static } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Knex } from "knex";
import { badRequest, notFound } from "../../common/errors.js";
import { isUuid } from "../../common/ids.js";
import type { RouteDeps } from "../app.js";
import type { RequestContext } from "../context.js";
import { resourceLinks } from "../links.js";
import { nextLink, pageSize } from "../pagination.js";
import { NoBody, errors, Links } from "../schemas/common.js";
import { Server, ServerCreateBody, ServerCreated, ServerListQuery, ServerSummary } from "../schemas/server.js";
import { acceptBoot } from "../servers/create.js";
import { requestDelete } from "../servers/delete.js";
import { liveServers, loadAddresses, loadFaults } from "../servers/load.js";
import { conditionsForStatus } from "../servers/status-filter.js";
import { serverView, type InstanceRow } from "../servers/view.js";

const Params = Type.Object({ id: Type.String() });

function scopeOf(ctx: RequestContext, allTenants: string | undefined): { projectId: string | null } {
  const all = allTenants !== undefined && !/^(0|false|f|no|n|off)$/i.test(allTenants);
  return { projectId: ctx.isAdmin && all ? null : ctx.projectId };
}

export const serverRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db, config }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  const render = async (rows: InstanceRow[], ctx: RequestContext) => {
    const [addresses, faults] = await Promise.all([loadAddresses(db, rows.map((r) => r.id)), loadFaults(db, rows)]);
    return rows.map((row) =>
      serverView(row, {
        publicUrl: config.publicUrl,
        isAdmin: ctx.isAdmin,
        addresses: addresses.get(row.id) ?? [],
        fault: faults.get(row.id) ?? null,
      }),
    );
  };

  const listPage = async (query: Static<typeof ServerListQuery>, ctx: RequestContext): Promise<InstanceRow[]> => {
    const scope = scopeOf(ctx, query.all_tenants);
    let q: Knex.QueryBuilder = liveServers(db, scope).orderBy([
      { column: "created_at", order: "desc" },
      { column: "id", order: "desc" },
    ]);
    if (query.name !== undefined) {
      try {
        new RegExp(query.name);
      } catch {
        throw badRequest(`Invalid regular expression for name: ${query.name}`);
      }
      q = q.whereRaw("name ~ ?", [query.name]);
    }
    if (query.status !== undefined) {
      const conditions = conditionsForStatus(query.status);
      if (conditions.length === 0) return [];
      q = q.where((w) => {
        for (const c of conditions) {
          w.orWhere((one) => {
            one.where("vm_state", c.vmState).where((t) => {
              const named = c.taskStates.filter((s): s is string => s !== null);
              if (named.length) t.orWhereIn("task_state", named);
              if (c.taskStates.includes(null)) t.orWhereNull("task_state");
            });
          });
        }
      });
    }
    if (query.marker !== undefined) {
      const marker = isUuid(query.marker) ? await db("instances").where({ id: query.marker }).first("id") : undefined;
      if (!marker) throw badRequest(`marker [${query.marker}] not found`);
      // Compared in SQL: a JavaScript Date would drop the microseconds and skip rows.
      q = q.whereRaw("(created_at, id) < (SELECT created_at, id FROM instances WHERE id = ?)", [marker.id]);
    }
    try {
      return await q.limit(pageSize(query.limit));
    } catch (err) {
      // Postgres is the judge of its own regular expressions (invalid_regular_expression).
      if ((err as { code?: string }).code === "2201B") throw badRequest(`Invalid regular expression for name: ${query.name}`);
      throw err;
    }
  };

  app.post(
    "/v2.1/servers",
    {
      schema: {
        summary: "Create (boot) a server",
        description: "Accepted at once (202); poll GET /servers/{id} until status is ACTIVE or ERROR.",
        tags: ["servers"],
        body: ServerCreateBody,
        response: { 202: ServerCreated, ...errors(400, 403, 409) },
      },
    },
    async (req, reply) => {
      const accepted = await acceptBoot(db, req.ctx, req.id, req.body);
      const links = resourceLinks(config.publicUrl, "servers", accepted.id);
      return reply
        .status(202)
        .header("location", links[0]!.href)
        .send({
          server: {
            id: accepted.id,
            links,
            "OS-DCF:diskConfig": "MANUAL",
            security_groups: [{ name: "default" }],
            adminPass: accepted.adminPass,
          },
        });
    },
  );

  app.get(
    "/v2.1/servers",
    {
      schema: {
        summary: "List servers",
        tags: ["servers"],
        querystring: ServerListQuery,
        response: { 200: Type.Object({ servers: Type.Array(ServerSummary), servers_links: Type.Optional(Links) }), ...errors(400) },
      },
    },
    async (req) => {
      const rows = await listPage(req.query, req.ctx);
      const links = nextLink(`${config.publicUrl}/v2.1/servers`, req.query, rows, pageSize(req.query.limit));
      return {
        servers: rows.map((r) => ({ id: r.id, name: r.name, links: resourceLinks(config.publicUrl, "servers", r.id) })),
        ...(links.length ? { servers_links: links } : {}),
      };
    },
  );

  app.get(
    "/v2.1/servers/detail",
    {
      schema: {
        summary: "List servers with details",
        tags: ["servers"],
        querystring: ServerListQuery,
        response: { 200: Type.Object({ servers: Type.Array(Server), servers_links: Type.Optional(Links) }), ...errors(400) },
      },
    },
    async (req) => {
      const rows = await listPage(req.query, req.ctx);
      const links = nextLink(`${config.publicUrl}/v2.1/servers/detail`, req.query, rows, pageSize(req.query.limit));
      return { servers: await render(rows, req.ctx), ...(links.length ? { servers_links: links } : {}) };
    },
  );

  app.get(
    "/v2.1/servers/:id",
    {
      schema: { summary: "Show a server", tags: ["servers"], params: Params, response: { 200: Type.Object({ server: Server }), ...errors(404) } },
    },
    async (req) => {
      const row: InstanceRow | undefined = isUuid(req.params.id)
        ? await liveServers(db, scopeOf(req.ctx, req.ctx.isAdmin ? "1" : undefined)).where({ id: req.params.id }).first()
        : undefined;
      if (!row) throw notFound(`Instance ${req.params.id} could not be found.`);
      const [server] = await render([row], req.ctx);
      return { server: server! };
    },
  );

  app.delete(
    "/v2.1/servers/:id",
    {
      schema: {
        summary: "Delete a server",
        tags: ["servers"],
        params: Params,
        response: { 204: NoBody("Accepted; the server disappears once its host has removed it"), ...errors(404) },
      },
    },
    async (req, reply) => {
      if (!isUuid(req.params.id)) throw notFound(`Instance ${req.params.id} could not be found.`);
      await requestDelete(db, req.ctx, req.id, req.params.id);
      return reply.status(204).send();
    },
  );
};
