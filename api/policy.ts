/**
 * The policy of the API: one table of rules, Nova's secure-RBAC defaults ("scope
 * types" and "new defaults"), and one table naming the rule of every route.
 *
 * Roles imply one another as Keystone's default implied roles do: admin ⊃ member ⊃
 * reader. The service role (the compute agents) implies nothing and is allowed only
 * where a rule names it (image download and snapshot upload).
 *
 * A rule says who may call; whose resource is touched is the handler's business: a
 * resource of another project is answered 404 there, as if it did not exist.
 */
import type { FastifyRequest } from "fastify";
import { forbidden } from "../common/errors.js";
import type { RequestContext } from "./context.js";

export type Role = "admin" | "member" | "reader" | "service";

/** Who satisfies a rule: any authenticated caller, or any of the listed roles (after implication). */
export type Check = "any" | readonly Role[];

const ANY: Check = "any";
const READER: Check = ["reader"]; // project_reader_or_admin
const MEMBER: Check = ["member"]; // project_member_or_admin
const ADMIN: Check = ["admin"]; // admin_api
const READER_OR_SERVICE: Check = ["reader", "service"];
const MEMBER_OR_SERVICE: Check = ["member", "service"];

/** Every rule, by Nova's (or Glance's / Neutron's) policy name. */
export const RULES = {
  // servers
  "os_compute_api:servers:index": READER,
  "os_compute_api:servers:detail": READER,
  "os_compute_api:servers:show": READER,
  "os_compute_api:servers:create": MEMBER,
  "os_compute_api:servers:update": MEMBER,
  "os_compute_api:servers:delete": MEMBER,
  "os_compute_api:servers:action": MEMBER,
  "os_compute_api:servers:index:get_all_tenants": ADMIN,
  "os_compute_api:servers:detail:get_all_tenants": ADMIN,
  "os_compute_api:servers:allow_all_filters": ADMIN,
  /** The admin-only server fields (OS-EXT-SRV-ATTR:*, host ids, fault details of 500s). */
  "os_compute_api:os-extended-server-attributes": ADMIN,
  "os_compute_api:os-lock-server:unlock:unlock_override": ADMIN,
  "os_compute_api:server-metadata:index": READER,
  "os_compute_api:server-metadata:show": READER,
  "os_compute_api:server-metadata:create": MEMBER,
  "os_compute_api:server-metadata:update": MEMBER,
  "os_compute_api:server-metadata:update_all": MEMBER,
  "os_compute_api:server-metadata:delete": MEMBER,
  "os_compute_api:os-server-tags:index": READER,
  "os_compute_api:os-server-tags:show": READER,
  "os_compute_api:os-server-tags:update": MEMBER,
  "os_compute_api:os-server-tags:update_all": MEMBER,
  "os_compute_api:os-server-tags:delete": MEMBER,
  "os_compute_api:os-server-tags:delete_all": MEMBER,
  "os_compute_api:os-instance-actions:list": READER,
  "os_compute_api:os-instance-actions:show": READER,
  "os_compute_api:os-instance-actions:events:details": ADMIN,
  // flavors
  "os_compute_api:flavors:index": ANY,
  "os_compute_api:flavors:show": ANY,
  "os_compute_api:os-flavor-manage:create": ADMIN,
  "os_compute_api:os-flavor-manage:delete": ADMIN,
  "os_compute_api:os-flavor-extra-specs:index": READER,
  "os_compute_api:os-flavor-extra-specs:show": READER,
  "os_compute_api:os-flavor-extra-specs:create": ADMIN,
  "os_compute_api:os-flavor-extra-specs:update": ADMIN,
  "os_compute_api:os-flavor-extra-specs:delete": ADMIN,
  "os_compute_api:os-flavor-access": ADMIN,
  "os_compute_api:os-flavor-access:add_tenant_access": ADMIN,
  // keypairs and server groups
  "os_compute_api:os-keypairs:index": READER,
  "os_compute_api:os-keypairs:show": READER,
  "os_compute_api:os-keypairs:create": MEMBER,
  "os_compute_api:os-keypairs:delete": MEMBER,
  "os_compute_api:os-server-groups:index": READER,
  "os_compute_api:os-server-groups:index:all_projects": ADMIN,
  "os_compute_api:os-server-groups:show": READER,
  "os_compute_api:os-server-groups:create": MEMBER,
  "os_compute_api:os-server-groups:delete": MEMBER,
  // quotas and limits
  "os_compute_api:limits": ANY,
  "os_compute_api:os-quota-sets:show": READER,
  "os_compute_api:os-quota-sets:defaults": ANY,
  "os_compute_api:os-quota-sets:detail": READER,
  "os_compute_api:os-quota-sets:update": ADMIN,
  "os_compute_api:os-quota-sets:delete": ADMIN,
  // the cloud's own structure
  "os_compute_api:os-availability-zone:list": ANY,
  "os_compute_api:os-availability-zone:detail": ADMIN,
  "os_compute_api:os-hypervisors:list": ADMIN,
  "os_compute_api:os-hypervisors:list-detail": ADMIN,
  "os_compute_api:os-hypervisors:show": ADMIN,
  "os_compute_api:os-services:list": ADMIN,
  "os_compute_api:os-services:update": ADMIN,
  "os_compute_api:os-aggregates:index": ADMIN,
  "os_compute_api:os-aggregates:create": ADMIN,
  "os_compute_api:os-aggregates:show": ADMIN,
  "os_compute_api:os-aggregates:update": ADMIN,
  "os_compute_api:os-aggregates:delete": ADMIN,
  "os_compute_api:os-aggregates:action": ADMIN,
  // images (Glance's names)
  get_images: READER,
  get_image: READER,
  add_image: MEMBER,
  delete_image: MEMBER,
  publicize_image: ADMIN,
  upload_image: MEMBER_OR_SERVICE,
  download_image: READER_OR_SERVICE,
  // networks (Neutron's names)
  get_network: READER,
  create_network: MEMBER,
  delete_network: MEMBER,
  get_subnet: READER,
  create_subnet: MEMBER,
  delete_subnet: MEMBER,
  get_port: READER,
  /** A route that names no rule: admin only, so a forgotten rule fails closed. */
  default: ADMIN,
} as const satisfies Record<string, Check>;

export type RuleName = keyof typeof RULES;

/** The rule each route names, by "METHOD /path" as registered. */
export const ROUTE_RULES: Record<string, RuleName> = {
  "POST /v2.1/servers": "os_compute_api:servers:create",
  "GET /v2.1/servers": "os_compute_api:servers:index",
  "GET /v2.1/servers/detail": "os_compute_api:servers:detail",
  "GET /v2.1/servers/:id": "os_compute_api:servers:show",
  "PUT /v2.1/servers/:id": "os_compute_api:servers:update",
  "DELETE /v2.1/servers/:id": "os_compute_api:servers:delete",
  "POST /v2.1/servers/:id/action": "os_compute_api:servers:action",
  "GET /v2.1/servers/:id/metadata": "os_compute_api:server-metadata:index",
  "POST /v2.1/servers/:id/metadata": "os_compute_api:server-metadata:create",
  "PUT /v2.1/servers/:id/metadata": "os_compute_api:server-metadata:update_all",
  "GET /v2.1/servers/:id/metadata/:key": "os_compute_api:server-metadata:show",
  "PUT /v2.1/servers/:id/metadata/:key": "os_compute_api:server-metadata:update",
  "DELETE /v2.1/servers/:id/metadata/:key": "os_compute_api:server-metadata:delete",
  "GET /v2.1/servers/:id/tags": "os_compute_api:os-server-tags:index",
  "PUT /v2.1/servers/:id/tags": "os_compute_api:os-server-tags:update_all",
  "DELETE /v2.1/servers/:id/tags": "os_compute_api:os-server-tags:delete_all",
  "GET /v2.1/servers/:id/tags/:tag": "os_compute_api:os-server-tags:show",
  "PUT /v2.1/servers/:id/tags/:tag": "os_compute_api:os-server-tags:update",
  "DELETE /v2.1/servers/:id/tags/:tag": "os_compute_api:os-server-tags:delete",
  "GET /v2.1/servers/:id/os-instance-actions": "os_compute_api:os-instance-actions:list",
  "GET /v2.1/servers/:id/os-instance-actions/:request_id": "os_compute_api:os-instance-actions:show",
  "GET /v2.1/flavors": "os_compute_api:flavors:index",
  "GET /v2.1/flavors/detail": "os_compute_api:flavors:index",
  "GET /v2.1/flavors/:id": "os_compute_api:flavors:show",
  "POST /v2.1/flavors": "os_compute_api:os-flavor-manage:create",
  "DELETE /v2.1/flavors/:id": "os_compute_api:os-flavor-manage:delete",
  "GET /v2.1/flavors/:id/os-extra_specs": "os_compute_api:os-flavor-extra-specs:index",
  "POST /v2.1/flavors/:id/os-extra_specs": "os_compute_api:os-flavor-extra-specs:create",
  "GET /v2.1/flavors/:id/os-extra_specs/:key": "os_compute_api:os-flavor-extra-specs:show",
  "PUT /v2.1/flavors/:id/os-extra_specs/:key": "os_compute_api:os-flavor-extra-specs:update",
  "DELETE /v2.1/flavors/:id/os-extra_specs/:key": "os_compute_api:os-flavor-extra-specs:delete",
  "GET /v2.1/flavors/:id/os-flavor-access": "os_compute_api:os-flavor-access",
  "POST /v2.1/flavors/:id/action": "os_compute_api:os-flavor-access:add_tenant_access",
  "GET /v2.1/os-keypairs": "os_compute_api:os-keypairs:index",
  "POST /v2.1/os-keypairs": "os_compute_api:os-keypairs:create",
  "GET /v2.1/os-keypairs/:name": "os_compute_api:os-keypairs:show",
  "DELETE /v2.1/os-keypairs/:name": "os_compute_api:os-keypairs:delete",
  "GET /v2.1/os-server-groups": "os_compute_api:os-server-groups:index",
  "POST /v2.1/os-server-groups": "os_compute_api:os-server-groups:create",
  "GET /v2.1/os-server-groups/:id": "os_compute_api:os-server-groups:show",
  "DELETE /v2.1/os-server-groups/:id": "os_compute_api:os-server-groups:delete",
  "GET /v2.1/limits": "os_compute_api:limits",
  "GET /v2.1/os-quota-sets/:project_id": "os_compute_api:os-quota-sets:show",
  "GET /v2.1/os-quota-sets/:project_id/defaults": "os_compute_api:os-quota-sets:defaults",
  "GET /v2.1/os-quota-sets/:project_id/detail": "os_compute_api:os-quota-sets:detail",
  "PUT /v2.1/os-quota-sets/:project_id": "os_compute_api:os-quota-sets:update",
  "DELETE /v2.1/os-quota-sets/:project_id": "os_compute_api:os-quota-sets:delete",
  "GET /v2.1/os-availability-zone": "os_compute_api:os-availability-zone:list",
  "GET /v2.1/os-availability-zone/detail": "os_compute_api:os-availability-zone:detail",
  "GET /v2.1/os-hypervisors": "os_compute_api:os-hypervisors:list",
  "GET /v2.1/os-hypervisors/detail": "os_compute_api:os-hypervisors:list-detail",
  "GET /v2.1/os-hypervisors/:id": "os_compute_api:os-hypervisors:show",
  "GET /v2.1/os-services": "os_compute_api:os-services:list",
  "PUT /v2.1/os-services/:id": "os_compute_api:os-services:update",
  "PUT /v2.1/os-services/enable": "os_compute_api:os-services:update",
  "PUT /v2.1/os-services/disable": "os_compute_api:os-services:update",
  "PUT /v2.1/os-services/disable-log-reason": "os_compute_api:os-services:update",
  "PUT /v2.1/os-services/force-down": "os_compute_api:os-services:update",
  "GET /v2.1/os-aggregates": "os_compute_api:os-aggregates:index",
  "POST /v2.1/os-aggregates": "os_compute_api:os-aggregates:create",
  "GET /v2.1/os-aggregates/:id": "os_compute_api:os-aggregates:show",
  "PUT /v2.1/os-aggregates/:id": "os_compute_api:os-aggregates:update",
  "DELETE /v2.1/os-aggregates/:id": "os_compute_api:os-aggregates:delete",
  "POST /v2.1/os-aggregates/:id/action": "os_compute_api:os-aggregates:action",
  "GET /v2/images": "get_images",
  "POST /v2/images": "add_image",
  "GET /v2/images/:id": "get_image",
  "DELETE /v2/images/:id": "delete_image",
  "PUT /v2/images/:id/file": "upload_image",
  "GET /v2/images/:id/file": "download_image",
  "GET /v2.0/networks": "get_network",
  "POST /v2.0/networks": "create_network",
  "GET /v2.0/networks/:id": "get_network",
  "DELETE /v2.0/networks/:id": "delete_network",
  "GET /v2.0/subnets": "get_subnet",
  "POST /v2.0/subnets": "create_subnet",
  "GET /v2.0/subnets/:id": "get_subnet",
  "DELETE /v2.0/subnets/:id": "delete_subnet",
  "GET /v2.0/ports": "get_port",
  "GET /v2.0/ports/:id": "get_port",
};

/** The roles a caller holds, with the implied ones added (admin ⊃ member ⊃ reader). */
export function effectiveRoles(ctx: Pick<RequestContext, "roles" | "isAdmin">): Set<Role> {
  const out = new Set<Role>();
  const has = (r: string) => ctx.roles.includes(r);
  if (ctx.isAdmin || has("admin")) out.add("admin").add("member").add("reader");
  if (has("member")) out.add("member").add("reader");
  if (has("reader")) out.add("reader");
  if (has("service")) out.add("service");
  return out;
}

/** Whether the caller satisfies the rule. */
export function can(ctx: Pick<RequestContext, "roles" | "isAdmin">, rule: RuleName): boolean {
  const check: Check = RULES[rule];
  if (check === "any") return true;
  const roles = effectiveRoles(ctx);
  return check.some((r) => roles.has(r));
}

/** Throws Nova's 403 when the caller does not satisfy the rule. */
export function enforce(ctx: Pick<RequestContext, "roles" | "isAdmin">, rule: RuleName): void {
  if (!can(ctx, rule)) throw forbidden(`Policy doesn't allow ${rule} to be performed.`);
}

/** The compute agents' role: reads and writes image data of any project, nothing else. */
export function isService(ctx: Pick<RequestContext, "roles">): boolean {
  return ctx.roles.includes("service");
}

/** The rule a route names, or the fail-closed default. */
export function ruleOfRoute(method: string, url: string): RuleName {
  return ROUTE_RULES[`${method.toUpperCase()} ${url}`] ?? "default";
}

/** Kept for the handlers that check an admin rule inline; the route's own rule runs first. */
export function requireAdmin(req: FastifyRequest, rule: string): void {
  if (!req.ctx.isAdmin) throw forbidden(`Policy doesn't allow ${rule} to be performed.`);
}
