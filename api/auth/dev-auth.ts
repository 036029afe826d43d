/**
 * The development auth mode: one static admin token, sent as X-Auth-Token (what the
 * OpenStack clients send) or as a Bearer token. It stands in until OIDC lands and is
 * never silently on: CIRRUS_AUTH_MODE says "dev".
 */
import { timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import type { RequestContext } from "../context.js";

export type Authenticator = (req: FastifyRequest) => Promise<RequestContext | null>;

export function tokenFrom(req: FastifyRequest): string | null {
  const xAuth = req.headers["x-auth-token"];
  if (typeof xAuth === "string" && xAuth !== "") return xAuth;
  const authz = req.headers.authorization;
  if (typeof authz === "string") {
    const m = /^Bearer\s+(\S+)$/i.exec(authz);
    if (m) return m[1]!;
  }
  return null;
}

export function devAuthenticator(devToken: string): Authenticator {
  const expected = Buffer.from(devToken);
  return async (req) => {
    const token = tokenFrom(req);
    if (token === null) return null;
    const given = Buffer.from(token);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    return { projectId: "admin", userId: "admin", roles: ["admin", "member", "reader"], isAdmin: true };
  };
}

/** CIRRUS_AUTH_MODE=none: no authentication at all; every caller is an admin of project "admin". */
export function noAuthenticator(): Authenticator {
  return async () => ({ projectId: "admin", userId: "anonymous", roles: ["admin", "member", "reader"], isAdmin: true });
}
