/**
 * Version documents of the image and network APIs, for clients configured with
 * per-service endpoints (`image_endpoint_override: <url>/image`,
 * `network_endpoint_override: <url>/networking`, as devstack lays them out). The
 * resources themselves are served by the image and network routes; rewriteServicePaths
 * maps the prefixed and compute-relative paths the clients use onto them.
 */
import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { RouteDeps } from "../app.js";

const VersionList = Type.Object({
  versions: Type.Array(
    Type.Object({ id: Type.String(), status: Type.String(), links: Type.Array(Type.Object({ rel: Type.String(), href: Type.String() })) }),
  ),
});

/**
 * Without Keystone the OpenStack clients send image and network look-ups to the compute
 * endpoint itself (<base>/images, <base>/v2/images, <base>/v2.0/networks); with
 * per-service endpoints they use <root>/image/v2/... and <root>/networking/v2.0/....
 */
export function rewriteServicePaths(url: string): string {
  return url
    .replace(/^\/v2\.1\/images(?=\/|\?|$)/, "/v2/images")
    .replace(/^\/v2\.1\/v2\//, "/v2/")
    .replace(/^\/v2\.1\/v2\.0\//, "/v2.0/")
    .replace(/^\/image\/v2\//, "/v2/")
    .replace(/^\/networking\/v2\.0\//, "/v2.0/");
}

export const serviceRootRoutes: FastifyPluginAsync<RouteDeps> = async (app, { config }) => {
  app.get(
    "/image",
    {
      config: { public: true },
      schema: { summary: "Image API versions (Glance shape)", tags: ["versions"], security: [], response: { 200: VersionList } },
    },
    async () => ({ versions: [{ id: "v2.9", status: "CURRENT", links: [{ rel: "self", href: `${config.publicUrl}/image/v2/` }] }] }),
  );

  app.get(
    "/networking",
    {
      config: { public: true },
      schema: { summary: "Network API versions (Neutron shape)", tags: ["versions"], security: [], response: { 200: VersionList } },
    },
    async () => ({ versions: [{ id: "v2.0", status: "CURRENT", links: [{ rel: "self", href: `${config.publicUrl}/networking/v2.0/` }] }] }),
  );
};
