/** The policy table, rule by rule: who may, who may not (no I/O). */
import { describe, expect, it } from "vitest";
import { can, effectiveRoles, enforce, ROUTE_RULES, RULES, ruleOfRoute, type RuleName } from "../../api/policy.js";
import type { RequestContext } from "../../api/context.js";

const ctx = (roles: string[]): RequestContext => ({ projectId: "p", userId: "u", roles, isAdmin: roles.includes("admin") });
const PERSONAS = {
  admin: ctx(["admin"]),
  member: ctx(["member"]),
  reader: ctx(["reader"]),
  service: ctx(["service"]),
  none: ctx([]),
} as const;
type Persona = keyof typeof PERSONAS;

/** The expected table, written out independently of RULES: who passes each rule. */
const WHO: Record<string, Persona[]> = {
  any: ["admin", "member", "reader", "service", "none"],
  reader: ["admin", "member", "reader"],
  member: ["admin", "member"],
  admin: ["admin"],
  readerOrService: ["admin", "member", "reader", "service"],
  memberOrService: ["admin", "member", "service"],
};

const EXPECTED: Record<RuleName, keyof typeof WHO> = {
  "os_compute_api:servers:index": "reader",
  "os_compute_api:servers:detail": "reader",
  "os_compute_api:servers:show": "reader",
  "os_compute_api:servers:create": "member",
  "os_compute_api:servers:update": "member",
  "os_compute_api:servers:delete": "member",
  "os_compute_api:servers:action": "member",
  "os_compute_api:servers:index:get_all_tenants": "admin",
  "os_compute_api:servers:detail:get_all_tenants": "admin",
  "os_compute_api:servers:allow_all_filters": "admin",
  "os_compute_api:os-extended-server-attributes": "admin",
  "os_compute_api:os-lock-server:unlock:unlock_override": "admin",
  "os_compute_api:server-metadata:index": "reader",
  "os_compute_api:server-metadata:show": "reader",
  "os_compute_api:server-metadata:create": "member",
  "os_compute_api:server-metadata:update": "member",
  "os_compute_api:server-metadata:update_all": "member",
  "os_compute_api:server-metadata:delete": "member",
  "os_compute_api:os-server-tags:index": "reader",
  "os_compute_api:os-server-tags:show": "reader",
  "os_compute_api:os-server-tags:update": "member",
  "os_compute_api:os-server-tags:update_all": "member",
  "os_compute_api:os-server-tags:delete": "member",
  "os_compute_api:os-server-tags:delete_all": "member",
  "os_compute_api:os-instance-actions:list": "reader",
  "os_compute_api:os-instance-actions:show": "reader",
  "os_compute_api:os-instance-actions:events:details": "admin",
  "os_compute_api:flavors:index": "any",
  "os_compute_api:flavors:show": "any",
  "os_compute_api:os-flavor-manage:create": "admin",
  "os_compute_api:os-flavor-manage:delete": "admin",
  "os_compute_api:os-flavor-extra-specs:index": "reader",
  "os_compute_api:os-flavor-extra-specs:show": "reader",
  "os_compute_api:os-flavor-extra-specs:create": "admin",
  "os_compute_api:os-flavor-extra-specs:update": "admin",
  "os_compute_api:os-flavor-extra-specs:delete": "admin",
  "os_compute_api:os-flavor-access": "admin",
  "os_compute_api:os-flavor-access:add_tenant_access": "admin",
  "os_compute_api:os-keypairs:index": "reader",
  "os_compute_api:os-keypairs:show": "reader",
  "os_compute_api:os-keypairs:create": "member",
  "os_compute_api:os-keypairs:delete": "member",
  "os_compute_api:os-server-groups:index": "reader",
  "os_compute_api:os-server-groups:index:all_projects": "admin",
  "os_compute_api:os-server-groups:show": "reader",
  "os_compute_api:os-server-groups:create": "member",
  "os_compute_api:os-server-groups:delete": "member",
  "os_compute_api:limits": "any",
  "os_compute_api:os-quota-sets:show": "reader",
  "os_compute_api:os-quota-sets:defaults": "any",
  "os_compute_api:os-quota-sets:detail": "reader",
  "os_compute_api:os-quota-sets:update": "admin",
  "os_compute_api:os-quota-sets:delete": "admin",
  "os_compute_api:os-availability-zone:list": "any",
  "os_compute_api:os-availability-zone:detail": "admin",
  "os_compute_api:os-hypervisors:list": "admin",
  "os_compute_api:os-hypervisors:list-detail": "admin",
  "os_compute_api:os-hypervisors:show": "admin",
  "os_compute_api:os-services:list": "admin",
  "os_compute_api:os-services:update": "admin",
  "os_compute_api:os-aggregates:index": "admin",
  "os_compute_api:os-aggregates:create": "admin",
  "os_compute_api:os-aggregates:show": "admin",
  "os_compute_api:os-aggregates:update": "admin",
  "os_compute_api:os-aggregates:delete": "admin",
  "os_compute_api:os-aggregates:action": "admin",
  get_images: "reader",
  get_image: "reader",
  add_image: "member",
  delete_image: "member",
  publicize_image: "admin",
  upload_image: "memberOrService",
  download_image: "readerOrService",
  get_network: "reader",
  create_network: "member",
  delete_network: "member",
  get_subnet: "reader",
  create_subnet: "member",
  delete_subnet: "member",
  get_port: "reader",
  default: "admin",
};

describe("policy rules", () => {
  it("the expected table covers exactly the rules", () => {
    expect(Object.keys(EXPECTED).sort()).toEqual(Object.keys(RULES).sort());
  });

  for (const [rule, group] of Object.entries(EXPECTED) as [RuleName, keyof typeof WHO][]) {
    it(`${rule}: ${WHO[group]!.join(", ")}`, () => {
      for (const persona of Object.keys(PERSONAS) as Persona[]) {
        const allowed = WHO[group]!.includes(persona);
        expect(can(PERSONAS[persona], rule), `${persona} on ${rule}`).toBe(allowed);
        if (allowed) expect(() => enforce(PERSONAS[persona], rule)).not.toThrow();
        else expect(() => enforce(PERSONAS[persona], rule)).toThrow(`Policy doesn't allow ${rule} to be performed.`);
      }
    });
  }
});

describe("roles", () => {
  it("imply one another as Keystone's defaults do; service implies nothing", () => {
    expect([...effectiveRoles(ctx(["admin"]))].sort()).toEqual(["admin", "member", "reader"]);
    expect([...effectiveRoles(ctx(["member"]))].sort()).toEqual(["member", "reader"]);
    expect([...effectiveRoles(ctx(["reader"]))]).toEqual(["reader"]);
    expect([...effectiveRoles(ctx(["service"]))]).toEqual(["service"]);
    expect([...effectiveRoles(ctx(["Member", "foo"]))]).toEqual([]);
  });
});

describe("route rules", () => {
  it("every route names a rule that exists, and read-only methods never need more than reader for project resources", () => {
    for (const [route, rule] of Object.entries(ROUTE_RULES)) {
      expect(RULES[rule], route).toBeDefined();
      if (/^(POST|PUT|DELETE|PATCH) /.test(route)) expect(can(PERSONAS.reader, rule), `reader must not ${route}`).toBe(false);
    }
  });

  it("a route that names no rule falls back to admin only", () => {
    expect(ruleOfRoute("GET", "/v2.1/os-something-new")).toBe("default");
    expect(can(PERSONAS.member, ruleOfRoute("GET", "/v2.1/os-something-new"))).toBe(false);
  });
});
