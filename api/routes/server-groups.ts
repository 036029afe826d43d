/**
 * Server groups at microversion 2.1 (pre-2.64 shapes: `policies: [..]`, no rules, no
 * project_id/user_id in the body). Create answers 200, delete 204. A server joins a
 * group with the `group` scheduler hint on boot; a deleted server leaves it (members
 * are the group's undeleted servers).
 */
import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Knex } from "knex";
import { badRequest, forbidden, notFound } from "../../common/errors.js";
import { isUuid, newId } from "../../common/ids.js";
import type { Db } from "../../common/db/knex.js";
import type { RouteDeps } from "../app.js";
import type { RequestContext } from "../context.js";
import { projectLimits } from "../quotas/quota.js";
import { NoBody, errors, IdParams } from "../schemas/common.js";

export const SERVER_GROUP_POLICIES = ["anti-affinity", "affinity", "soft-anti-affinity", "soft-affinity"] as const;
export type ServerGroupPolicy = (typeof SERVER_GROUP_POLICIES)[number];

export interface ServerGroupRow {
  id: string;
  name: string;
  project_id: string;
  user_id: string;
  policy: ServerGroupPolicy;
  created_at: Date;
}

const ServerGroup = Type.Object({
  id: Type.String(),
  name: Type.String(),
  policies: Type.Array(Type.String()),
  members: Type.Array(Type.String(), { description: "Ids of the group's undeleted servers" }),
  metadata: Type.Object({}, { description: "Always empty" }),
});

const ServerGroupCreateBody = Type.Object(
  {
    server_group: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 255 }),
        policies: Type.Array(Type.Union(SERVER_GROUP_POLICIES.map((p) => Type.Literal(p))), {
          minItems: 1,
          maxItems: 1,
          description: "Exactly one policy (the pre-2.64 list form); soft policies are accepted as from 2.15",
        }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

const ListQuery = Type.Object({
  all_projects: Type.Optional(Type.String({ description: "Admin: groups of every project" })),
  limit: Type.Optional(Type.Integer({ minimum: 0 })),
  offset: Type.Optional(Type.Integer({ minimum: 0 })),
});

const groupNotFound = (id: string) => notFound(`Instance group ${id} could not be found.`);

/** Members: undeleted servers of the group, oldest first. */
async function membersOf(db: Db, groupIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(groupIds.map((id) => [id, []]));
  if (groupIds.length === 0) return out;
  const rows: { group_id: string; instance_id: string }[] = await db("server_group_members as m")
    .join("instances as i", "i.id", "m.instance_id")
    .whereIn("m.group_id", groupIds)
    .whereNot("i.vm_state", "deleted")
    .orderBy([{ column: "m.created_at" }, { column: "m.instance_id" }])
    .select("m.group_id", "m.instance_id");
  for (const r of rows) out.get(r.group_id)!.push(r.instance_id);
  return out;
}

const view = (g: ServerGroupRow, members: string[]) => ({ id: g.id, name: g.name, policies: [g.policy], members, metadata: {} });

/** The group a boot names in its scheduler hints, checked before anything is written. */
export async function resolveGroupHint(
  db: Db,
  ctx: RequestContext,
  body: { "os:scheduler_hints"?: Record<string, unknown>; "OS-SCH-HNT:scheduler_hints"?: Record<string, unknown> },
): Promise<ServerGroupRow | null> {
  const hints = body["os:scheduler_hints"] ?? body["OS-SCH-HNT:scheduler_hints"];
  if (!hints || hints.group === undefined) return null;
  const group = hints.group;
  if (typeof group !== "string" || !isUuid(group)) {
    throw badRequest(`Invalid input for field/attribute group. Value: ${JSON.stringify(group)}. It is not a valid uuid.`);
  }
  const row = await db<ServerGroupRow>("server_groups").where({ id: group.toLowerCase() }).first();
  if (!row || row.project_id !== ctx.projectId) throw badRequest(`Instance group ${group} could not be found.`);
  return row;
}

/**
 * Records the new server as a member, inside the boot transaction. The group row is
 * locked so concurrent boots into one group count members one at a time.
 */
export async function joinServerGroup(trx: Knex.Transaction, group: ServerGroupRow, instanceId: string): Promise<void> {
  const locked = await trx("server_groups").where({ id: group.id }).forUpdate().first("id");
  if (!locked) throw badRequest(`Instance group ${group.id} could not be found.`);
  const limit = (await projectLimits(trx, group.project_id)).server_group_members;
  const [count] = await trx("server_group_members as m")
    .join("instances as i", "i.id", "m.instance_id")
    .where("m.group_id", group.id)
    .whereNot("i.vm_state", "deleted")
    .count<{ n: string }[]>("* as n");
  if (limit >= 0 && Number(count!.n) + 1 > limit) throw forbidden("Quota exceeded, too many servers in group");
  await trx("server_group_members").insert({ group_id: group.id, instance_id: instanceId });
}

export const serverGroupRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  const load = async (ctx: RequestContext, id: string): Promise<ServerGroupRow> => {
    const row = isUuid(id) ? await db<ServerGroupRow>("server_groups").where({ id: id.toLowerCase() }).first() : undefined;
    if (!row || (!ctx.isAdmin && row.project_id !== ctx.projectId)) throw groupNotFound(id);
    return row;
  };

  app.get(
    "/v2.1/os-server-groups",
    {
      schema: {
        summary: "List server groups",
        tags: ["server-groups"],
        querystring: ListQuery,
        response: { 200: Type.Object({ server_groups: Type.Array(ServerGroup) }), ...errors(400) },
      },
    },
    async (req) => {
      let q = db<ServerGroupRow>("server_groups").orderBy([{ column: "created_at" }, { column: "id" }]);
      if (!(req.query.all_projects !== undefined && req.ctx.isAdmin)) q = q.where({ project_id: req.ctx.projectId });
      if (req.query.offset !== undefined) q = q.offset(req.query.offset);
      q = q.limit(Math.min(req.query.limit ?? 1000, 1000));
      const rows = await q;
      const members = await membersOf(db, rows.map((r) => r.id));
      return { server_groups: rows.map((r) => view(r, members.get(r.id)!)) };
    },
  );

  app.post(
    "/v2.1/os-server-groups",
    {
      schema: {
        summary: "Create a server group",
        tags: ["server-groups"],
        body: ServerGroupCreateBody,
        response: { 200: Type.Object({ server_group: ServerGroup }), ...errors(400, 403) },
      },
    },
    async (req) => {
      const { name, policies } = req.body.server_group;
      if (name.trim() === "" || name.trim() !== name) {
        throw badRequest(`Invalid input for field/attribute name. Value: ${name}. Leading or trailing whitespace is not allowed.`);
      }
      const row: ServerGroupRow = {
        id: newId(),
        name,
        project_id: req.ctx.projectId,
        user_id: req.ctx.userId,
        policy: policies[0]!,
        created_at: new Date(),
      };
      await db.transaction(async (trx) => {
        await trx("quota_locks").insert({ project_id: req.ctx.projectId }).onConflict("project_id").ignore();
        await trx("quota_locks").where({ project_id: req.ctx.projectId }).forUpdate().first();
        const limit = (await projectLimits(trx, req.ctx.projectId)).server_groups;
        const [count] = await trx("server_groups").where({ project_id: req.ctx.projectId }).count<{ n: string }[]>("* as n");
        if (limit >= 0 && Number(count!.n) + 1 > limit) throw forbidden("Quota exceeded, too many server groups.");
        await trx("server_groups").insert({ id: row.id, name: row.name, project_id: row.project_id, user_id: row.user_id, policy: row.policy });
      });
      return { server_group: view(row, []) };
    },
  );

  app.get(
    "/v2.1/os-server-groups/:id",
    {
      schema: {
        summary: "Show a server group",
        tags: ["server-groups"],
        params: IdParams,
        response: { 200: Type.Object({ server_group: ServerGroup }), ...errors(404) },
      },
    },
    async (req) => {
      const row = await load(req.ctx, req.params.id);
      const members = await membersOf(db, [row.id]);
      return { server_group: view(row, members.get(row.id)!) };
    },
  );

  app.delete(
    "/v2.1/os-server-groups/:id",
    {
      schema: {
        summary: "Delete a server group",
        description: "Its servers stay; they are no longer in a group.",
        tags: ["server-groups"],
        params: IdParams,
        response: { 204: NoBody("Deleted"), ...errors(404) },
      },
    },
    async (req, reply) => {
      const row = await load(req.ctx, req.params.id);
      const deleted = await db("server_groups").where({ id: row.id }).delete();
      if (deleted === 0) throw groupNotFound(req.params.id);
      return reply.status(204).send();
    },
  );
};
