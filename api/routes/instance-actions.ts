/**
 * os-instance-actions at microversion 2.1: what was asked of a server, by whom, and
 * (for admins) the events each request went through, keyed by request id.
 */
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { notFound } from "../../common/errors.js";
import { isUuid } from "../../common/ids.js";
import type { RouteDeps } from "../app.js";
import { errors, Nullable } from "../schemas/common.js";
import { novaTime } from "./keypairs.js";

interface ActionRow {
  id: number;
  instance_id: string;
  action: string;
  request_id: string;
  project_id: string;
  user_id: string;
  message: string | null;
  start_time: Date;
}

interface EventRow {
  event: string;
  result: string | null;
  traceback: string | null;
  start_time: Date;
  finish_time: Date | null;
}

const ActionFields = {
  action: Type.String(),
  instance_uuid: Type.String(),
  message: Nullable(Type.String()),
  project_id: Type.String(),
  request_id: Type.String(),
  start_time: Type.String(),
  user_id: Type.String(),
};
const InstanceAction = Type.Object(ActionFields);
const Event = Type.Object({
  event: Type.String(),
  start_time: Type.String(),
  finish_time: Nullable(Type.String()),
  result: Nullable(Type.String()),
  traceback: Nullable(Type.String()),
});
const InstanceActionDetail = Type.Object({
  ...ActionFields,
  events: Type.Optional(Type.Array(Event, { description: "Admin only at 2.1" })),
});

const ServerParams = Type.Object({ id: Type.String() });
const ActionParams = Type.Object({ id: Type.String(), request_id: Type.String() });

const actionView = (a: ActionRow) => ({
  action: a.action,
  instance_uuid: a.instance_id,
  message: a.message,
  project_id: a.project_id,
  request_id: a.request_id,
  start_time: novaTime(a.start_time)!,
  user_id: a.user_id,
});

export const instanceActionRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  /** The server, if the caller may see it; 404 as if it did not exist otherwise. */
  const serverOr404 = async (req: FastifyRequest, id: string) => {
    const row: { id: string; project_id: string } | undefined = isUuid(id)
      ? await db("instances").where({ id }).whereNot("vm_state", "deleted").first("id", "project_id")
      : undefined;
    if (!row || (!req.ctx.isAdmin && row.project_id !== req.ctx.projectId)) throw notFound(`Instance ${id} could not be found.`);
    return row;
  };

  app.get(
    "/v2.1/servers/:id/os-instance-actions",
    {
      schema: {
        summary: "List a server's actions, newest first",
        tags: ["servers"],
        params: ServerParams,
        response: { 200: Type.Object({ instanceActions: Type.Array(InstanceAction) }), ...errors(404) },
      },
    },
    async (req) => {
      const server = await serverOr404(req, req.params.id);
      const rows: ActionRow[] = await db("instance_actions")
        .where({ instance_id: server.id })
        .orderBy([{ column: "start_time", order: "desc" }, { column: "id", order: "desc" }]);
      return { instanceActions: rows.map(actionView) };
    },
  );

  app.get(
    "/v2.1/servers/:id/os-instance-actions/:request_id",
    {
      schema: {
        summary: "Show one action of a server with its events",
        tags: ["servers"],
        params: ActionParams,
        response: { 200: Type.Object({ instanceAction: InstanceActionDetail }), ...errors(404) },
      },
    },
    async (req) => {
      const server = await serverOr404(req, req.params.id);
      const action: ActionRow | undefined = await db("instance_actions").where({ instance_id: server.id, request_id: req.params.request_id }).first();
      if (!action) throw notFound(`Action ${req.params.request_id} not found`);
      if (!req.ctx.isAdmin) return { instanceAction: actionView(action) };
      const events: EventRow[] = await db("instance_action_events")
        .where({ action_id: action.id })
        .orderBy([{ column: "start_time" }, { column: "id" }]);
      return {
        instanceAction: {
          ...actionView(action),
          events: events.map((e) => ({
            event: e.event,
            start_time: novaTime(e.start_time)!,
            finish_time: novaTime(e.finish_time),
            result: e.result,
            traceback: e.traceback,
          })),
        },
      };
    },
  );
};
