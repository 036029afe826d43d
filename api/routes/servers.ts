import type { FastifyPluginAsync } from "fastify";
import { Type, type Static } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Knex } from "knex";
import { badRequest, conflict, notFound } from "../../common/errors.js";
import { isUuid } from "../../common/ids.js";
import type { RouteDeps } from "../app.js";
import type { RequestContext } from "../context.js";
import { resourceLinks } from "../links.js";
import { nextLink, pageSize } from "../pagination.js";
import { NoBody, errors, Links } from "../schemas/common.js";
import { Server, ServerCreateBody, ServerCreated, ServerListQuery, ServerSummary, ServerUpdateBody } from "../schemas/server.js";
import { acceptBoot } from "../servers/create.js";
import { IdempotencyHeaders, idempotencyKeyOf, postGuard, withIdempotency, type StoredResponse } from "../idempotency.js";
import { requestDelete } from "../servers/delete.js";
import { liveServers, serverViewColumns, type ServerPageRow } from "../servers/load.js";
import { renderRows, renderServer } from "../servers/render.js";
import { afterMarkerSql, orderBySql, parseSort } from "../servers/sort.js";
import { conditionsForStatus } from "../servers/status-filter.js";
import { can } from "../policy.js";
import { plainJson } from "../plain-json.js";

const Params = Type.Object({ id: Type.String() });

function scopeOf(ctx: RequestContext, allTenants: string | undefined): { projectId: string | null } {
  const all = allTenants !== undefined && !/^(0|false|f|no|n|off)$/i.test(allTenants);
  return { projectId: all && can(ctx, "os_compute_api:servers:index:get_all_tenants") ? null : ctx.projectId };
}

export const serverRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db, config }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  const render = (rows: ServerPageRow[], ctx: RequestContext) => renderRows(db, config.publicUrl, ctx, rows, { serviceDownTimeSec: config.serviceDownTimeSec });

  /** One page of the servers the query asks for, with the given columns. */
  const listPage = async <Row>(query: Static<typeof ServerListQuery>, ctx: RequestContext, columns: (string | Knex.Raw)[]): Promise<Row[]> => {
    const scope = scopeOf(ctx, query.all_tenants);
    const sort = parseSort(query.sort_key, query.sort_dir, ctx.isAdmin);
    let q: Knex.QueryBuilder = db("instances").select(columns);
    if (scope.projectId !== null) q = q.where("project_id", scope.projectId);
    const since = query["changes-since"];
    if (since !== undefined) {
      const t = new Date(since);
      if (Number.isNaN(t.getTime())) throw badRequest(`Invalid changes-since value: ${since}`);
      // Nova: changes-since also returns servers deleted since then.
      q = q.where("updated_at", ">=", t);
    } else {
      q = q.whereNot("vm_state", "deleted");
    }
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
    if (query.image !== undefined) q = q.where("image_id", isUuid(query.image) ? query.image : null);
    if (query.flavor !== undefined) q = q.whereRaw("flavor->>'id' = ?", [query.flavor]);
    for (const [param, version] of [["ip", 4], ["ip6", 6]] as const) {
      const pattern = query[param];
      if (pattern === undefined) continue;
      q = q.whereExists(function () {
        this.select(db.raw("1"))
          .from("ports as p")
          .join("ip_allocations as a", "a.port_id", "p.id")
          .whereRaw("p.device_id = instances.id")
          .whereRaw(version === 4 ? "position(':' in a.ip_address) = 0" : "position(':' in a.ip_address) > 0")
          .whereRaw("a.ip_address ~ ?", [pattern]);
      });
    }
    const tagsOf = (v: string | undefined) => (v === undefined ? [] : v.split(",").map((x) => x.trim()).filter(Boolean));
    const hasTag = (tag: string) => db("instance_tags").whereRaw("instance_tags.instance_id = instances.id").where("tag", tag).select(db.raw("1"));
    for (const tag of tagsOf(query.tags)) q = q.whereExists(hasTag(tag));
    const any = tagsOf(query["tags-any"]);
    if (any.length) q = q.whereExists(db("instance_tags").whereRaw("instance_tags.instance_id = instances.id").whereIn("tag", any).select(db.raw("1")));
    const notAll = tagsOf(query["not-tags"]);
    if (notAll.length) q = q.whereNot((w) => { for (const tag of notAll) w.whereExists(hasTag(tag)); });
    const notAny = tagsOf(query["not-tags-any"]);
    if (notAny.length) q = q.whereNotExists(db("instance_tags").whereRaw("instance_tags.instance_id = instances.id").whereIn("tag", notAny).select(db.raw("1")));
    if (query.locked !== undefined) {
      if (!/^(true|false|1|0|t|f|yes|no)$/i.test(query.locked)) throw badRequest(`Invalid value for locked: ${query.locked}`);
      q = q.where("locked", /^(true|1|t|yes)$/i.test(query.locked));
    }
    if (query.reservation_id !== undefined) q = q.where("reservation_id", query.reservation_id);
    if (query.availability_zone !== undefined) q = q.where("availability_zone", query.availability_zone);
    // Admin-only filters are ignored for everyone else, as Nova ignores filters outside its whitelist.
    if (query.host !== undefined && can(ctx, "os_compute_api:servers:allow_all_filters")) q = q.where("host", query.host);
    if (query.marker !== undefined) {
      const marker = isUuid(query.marker) ? await db("instances").where({ id: query.marker }).first("id") : undefined;
      if (!marker) throw badRequest(`marker [${query.marker}] not found`);
      q = q.whereRaw(afterMarkerSql(sort), { marker: marker.id });
    }
    q = q.orderByRaw(orderBySql(sort)).limit(pageSize(query.limit));
    try {
      return await q;
    } catch (err) {
      // Postgres is the judge of its own regular expressions (invalid_regular_expression).
      if ((err as { code?: string }).code === "2201B") throw badRequest("Invalid regular expression in a name or ip filter");
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
        headers: IdempotencyHeaders,
        body: ServerCreateBody,
        response: {
          202: Type.Union([ServerCreated, Type.Object({ reservation_id: Type.String() })], {
            description: "The (first) server; only the reservation id when return_reservation_id is true",
          }),
          ...errors(400, 403, 409, 422),
        },
      },
    },
    async (req, reply) => {
      // Idempotency-Key (api/idempotency.ts): the boot and the key commit together.
      const guard = postGuard(req.ctx.projectId, idempotencyKeyOf(req.headers), "/v2.1/servers", req.body);
      const { response, replayed } = await withIdempotency(db, guard, async (trx): Promise<StoredResponse> => {
        const accepted = await acceptBoot(trx, req.ctx, req.id, req.body, { enforceQuotas: config.enforceQuotas ?? true });
        if (req.body.server.return_reservation_id) return { status: 202, body: { reservation_id: accepted.reservationId }, headers: {} };
        const links = resourceLinks(config.publicUrl, "servers", accepted.id);
        const body = {
          server: { id: accepted.id, links, "OS-DCF:diskConfig": "MANUAL", security_groups: [{ name: "default" }], adminPass: accepted.adminPass },
        };
        return { status: 202, body, headers: { location: links[0]!.href } };
      });
      if (replayed) reply.header("idempotent-replayed", "true");
      return reply.status(response.status as 202).headers(response.headers).send(response.body as never);
    },
  );

  app.get(
    "/v2.1/servers",
    {
      serializerCompiler: plainJson,
      schema: {
        summary: "List servers",
        tags: ["servers"],
        querystring: ServerListQuery,
        response: { 200: Type.Object({ servers: Type.Array(ServerSummary), servers_links: Type.Optional(Links) }), ...errors(400) },
      },
    },
    async (req) => {
      const rows = await listPage<{ id: string; name: string }>(req.query, req.ctx, ["instances.id", "instances.name"]);
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
      serializerCompiler: plainJson,
      schema: {
        summary: "List servers with details",
        tags: ["servers"],
        querystring: ServerListQuery,
        response: { 200: Type.Object({ servers: Type.Array(Server), servers_links: Type.Optional(Links) }), ...errors(400) },
      },
    },
    async (req) => {
      const rows = await listPage<ServerPageRow>(req.query, req.ctx, serverViewColumns(db));
      const links = nextLink(`${config.publicUrl}/v2.1/servers/detail`, req.query, rows, pageSize(req.query.limit));
      return { servers: await render(rows, req.ctx), ...(links.length ? { servers_links: links } : {}) };
    },
  );

  app.get(
    "/v2.1/servers/:id",
    {
      serializerCompiler: plainJson,
      schema: { summary: "Show a server", tags: ["servers"], params: Params, response: { 200: Type.Object({ server: Server }), ...errors(404) } },
    },
    async (req) => {
      const row: ServerPageRow | undefined = isUuid(req.params.id)
        ? await liveServers(db, scopeOf(req.ctx, req.ctx.isAdmin ? "1" : undefined)).where({ id: req.params.id }).first(serverViewColumns(db))
        : undefined;
      if (!row) throw notFound(`Instance ${req.params.id} could not be found.`);
      const [server] = await render([row], req.ctx);
      return { server: server! };
    },
  );

  app.put(
    "/v2.1/servers/:id",
    {
      schema: {
        summary: "Update a server (name, description, access IPs)",
        tags: ["servers"],
        params: Params,
        body: ServerUpdateBody,
        response: { 200: Type.Object({ server: Server }), ...errors(400, 404, 409) },
      },
    },
    async (req) => {
      const u = req.body.server;
      if (u.name !== undefined && u.name.trim() === "") throw badRequest("Invalid input for field/attribute name. Value: must not be blank.");
      await db.transaction(async (trx) => {
        const row = isUuid(req.params.id) ? await trx("instances").where({ id: req.params.id }).whereNot("vm_state", "deleted").forUpdate().first() : undefined;
        if (!row || (!req.ctx.isAdmin && row.project_id !== req.ctx.projectId)) throw notFound(`Instance ${req.params.id} could not be found.`);
        if (row.locked && !req.ctx.isAdmin) throw conflict(`Instance ${row.id} is locked`);
        await trx("instances")
          .where({ id: row.id })
          .update({
            ...(u.name !== undefined ? { name: u.name } : {}),
            ...(u.description !== undefined ? { description: u.description } : {}),
            ...(u.accessIPv4 !== undefined ? { access_ip_v4: u.accessIPv4 } : {}),
            ...(u.accessIPv6 !== undefined ? { access_ip_v6: u.accessIPv6 } : {}),
            updated_at: trx.fn.now(),
          });
      });
      return { server: await renderServer(db, config.publicUrl, req.ctx, req.params.id) };
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
      await requestDelete(db, req.ctx, req.id, req.params.id, { serviceDownTimeSec: config.serviceDownTimeSec });
      return reply.status(204).send();
    },
  );
};
