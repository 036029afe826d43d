/**
 * The policy check each route names. Only the admin rule exists until the OIDC and
 * policy issue lands its full table.
 */
import type { FastifyRequest } from "fastify";
import { forbidden } from "../common/errors.js";

export function requireAdmin(req: FastifyRequest, rule: string): void {
  if (!req.ctx.isAdmin) throw forbidden(`Policy doesn't allow ${rule} to be performed.`);
}
