import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { notFound } from "../../common/errors.js";
import { isUuid } from "../../common/ids.js";
import type { RouteDeps } from "../app.js";
import { errors } from "../schemas/common.js";
import { Server } from "../schemas/server.js";
import { ServerActionBody } from "../schemas/server-actions.js";
import { runAction } from "../servers/actions.js";
import { IdempotencyHeaders, idempotencyKeyOf, postGuard, withIdempotency, type StoredResponse } from "../idempotency.js";
import { renderServer } from "../servers/render.js";

export const serverActionRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db, config, rpc }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  app.post(
    "/v2.1/servers/:id/action",
    {
      schema: {
        summary: "Run an action on a server",
        description:
          "One action per request: os-start, os-stop, reboot, pause, unpause, suspend, resume, lock, unlock, rebuild, resize, " +
          "confirmResize, revertResize, createImage, os-getConsoleOutput. 202 when accepted (the agent carries it out; poll the " +
          "server), 204 for confirmResize, 200 for os-getConsoleOutput; 409 when the server's state does not allow it.",
        tags: ["servers"],
        params: Type.Object({ id: Type.String() }),
        headers: IdempotencyHeaders,
        body: ServerActionBody,
        response: {
          200: Type.Object({ output: Type.String() }, { description: "os-getConsoleOutput" }),
          202: Type.Union([Type.Object({ server: Server }), Type.Unsafe<undefined>({ description: "Accepted (no body)" })], {
            description: "Accepted; rebuild answers with the server",
          }),
          204: Type.Unsafe<undefined>({ description: "confirmResize done" }),
          ...errors(400, 403, 404, 409, 422, 503),
        },
      },
    },
    async (req, reply) => {
      if (!isUuid(req.params.id)) throw notFound(`Instance ${req.params.id} could not be found.`);
      // Idempotency-Key (api/idempotency.ts); a console read has nothing to repeat, so it takes none.
      const key = "os-getConsoleOutput" in req.body ? null : idempotencyKeyOf(req.headers);
      const guard = postGuard(req.ctx.projectId, key, `/v2.1/servers/${req.params.id}/action`, req.body);
      const { response, replayed } = await withIdempotency(db, guard, async (tx): Promise<StoredResponse> => {
        const outcome = await runAction(
          { db: tx, publicUrl: config.publicUrl, serviceDownTimeSec: config.serviceDownTimeSec, rpc: rpc ?? null },
          req.ctx,
          req.id,
          req.params.id,
          req.body,
        );
        const headers: Record<string, string> = outcome.location ? { location: outcome.location } : {};
        if (outcome.renderServer) {
          return { status: 202, body: { server: await renderServer(tx, config.publicUrl, req.ctx, req.params.id) }, headers };
        }
        return { status: outcome.status, body: outcome.body, headers };
      });
      if (replayed) reply.header("idempotent-replayed", "true");
      return reply.status(response.status as 202).headers(response.headers).send(response.body as never);
    },
  );
};
