import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { RouteDeps } from "../app.js";
import { Links } from "../schemas/common.js";
import { MAX_VERSION, MIN_VERSION } from "../microversion.js";

const Version = Type.Object({
  id: Type.String(),
  status: Type.String(),
  version: Type.String(),
  min_version: Type.String(),
  updated: Type.String(),
  links: Links,
  "media-types": Type.Optional(Type.Array(Type.Object({ base: Type.String(), type: Type.String() }))),
});

const UPDATED = "2013-07-23T11:33:21Z";

export const versionRoutes: FastifyPluginAsync<RouteDeps> = async (app, { config }) => {
  const v21 = (withMedia: boolean) => ({
    id: "v2.1",
    status: "CURRENT",
    version: MAX_VERSION,
    min_version: MIN_VERSION,
    updated: UPDATED,
    links: [
      { rel: "self", href: `${config.publicUrl}/v2.1/` },
      ...(withMedia ? [{ rel: "describedby", type: "text/html", href: "https://docs.openstack.org/" }] : []),
    ],
    ...(withMedia
      ? { "media-types": [{ base: "application/json", type: "application/vnd.openstack.compute+json;version=2.1" }] }
      : {}),
  });

  app.get(
    "/",
    {
      config: { public: true },
      schema: {
        summary: "List API versions",
        tags: ["versions"],
        security: [],
        response: { 200: Type.Object({ versions: Type.Array(Version) }) },
      },
    },
    async () => ({ versions: [v21(false)] }),
  );

  app.get(
    "/v2.1",
    {
      config: { public: true },
      schema: {
        summary: "Show the v2.1 version document",
        tags: ["versions"],
        security: [],
        response: { 200: Type.Object({ version: Version }) },
      },
    },
    async () => ({ version: v21(true) }),
  );
};
