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
        body: ServerActionBody,
        response: {
          200: Type.Object({ output: Type.String() }, { description: "os-getConsoleOutput" }),
          202: Type.Union([Type.Object({ server: Server }), Type.Unsafe<undefined>({ description: "Accepted (no body)" })], {
            description: "Accepted; rebuild answers with the server",
          }),
          204: Type.Unsafe<undefined>({ description: "confirmResize done" }),
          ...errors(400, 403, 404, 409, 503),
        },
      },
    },
    async (req, reply) => {
      if (!isUuid(req.params.id)) throw notFound(`Instance ${req.params.id} could not be found.`);
      const outcome = await runAction(
        { db, publicUrl: config.publicUrl, serviceDownTimeSec: config.serviceDownTimeSec, rpc: rpc ?? null },
        req.ctx,
        req.id,
        req.params.id,
        req.body,
      );
      if (outcome.location) reply.header("location", outcome.location);
      if (outcome.renderServer) {
        return reply.status(202).send({ server: await renderServer(db, config.publicUrl, req.ctx, req.params.id) });
      }
      return reply.status(outcome.status).send(outcome.body as never);
    },
  );
};
