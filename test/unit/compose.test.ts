/**
 * docker-compose.yml, checked with a YAML parser (no Docker engine runs here): the
 * services, two api replicas behind the nginx "lb", health checks on /readyz, metrics
 * listeners, and every reference (depends_on, bind-mounted files) resolving.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

describe("docker-compose.yml", () => {
  const parsed = parseDocument(readFileSync(path.join(root, "docker-compose.yml"), "utf8"), { merge: true });
  const compose = parsed.toJS({ maxAliasCount: 100 }) as { services: Record<string, any>; volumes?: Record<string, unknown> };

  it("parses without errors or warnings", () => {
    expect(parsed.errors).toEqual([]);
    expect(parsed.warnings).toEqual([]);
  });

  it("runs postgres, redis, api (2 replicas behind lb), scheduler and a compute agent", () => {
    const s = compose.services;
    expect(Object.keys(s)).toEqual(expect.arrayContaining(["postgres", "redis", "init", "api", "lb", "scheduler", "compute-agent"]));
    expect(s.api.deploy.replicas).toBe(2);
    expect(s.api.ports).toBeUndefined(); // replicas cannot share a host port: lb publishes it
    expect(s.lb.ports).toEqual(["8774:8774"]);
    expect(s.api.healthcheck.test.join(" ")).toContain("/readyz");
    expect(s.scheduler.environment.CIRRUS_METRICS_PORT).toBe("9101");
    expect(s["compute-agent"].environment.CIRRUS_METRICS_PORT).toBe("9102");
    // The agent holds no database credentials.
    expect(s["compute-agent"].environment.DATABASE_URL).toBeUndefined();
    for (const name of ["api", "scheduler", "init"]) expect(s[name].environment.DATABASE_URL, name).toMatch(/^postgres:\/\//);
  });

  it("references only services, volumes and files that exist", () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      const deps = Array.isArray(svc.depends_on) ? svc.depends_on : Object.keys(svc.depends_on ?? {});
      for (const d of deps) expect(compose.services, `${name} depends on ${d}`).toHaveProperty([d]);
      for (const v of svc.volumes ?? []) {
        const source = String(v).split(":")[0]!;
        if (source.startsWith("./")) expect(existsSync(path.join(root, source)), `${name}: ${source}`).toBe(true);
        else if (!source.startsWith("/")) expect(compose.volumes ?? {}, `${name}: volume ${source}`).toHaveProperty([source]);
      }
      expect(svc.image ?? svc.build, `${name} has an image`).toBeTruthy();
    }
    const nginx = readFileSync(path.join(root, "deploy/nginx.conf"), "utf8");
    expect(nginx).toMatch(/server api:8774/);
  });
});
