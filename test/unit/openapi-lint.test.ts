/**
 * The OpenAPI document passes a linter (Redocly's recommended rules, less the ones about
 * style and metadata), describes what every route shares (request id and microversion
 * headers, the common error answers), generates SDK types offline (openapi-typescript,
 * committed as openapi/cirrus-api.d.ts) and is browsable at /docs with local assets.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createConfig, lintFromString } from "@redocly/openapi-core";
import { describe, expect, it } from "vitest";
import { buildApp } from "../../api/app.js";
import { devAuthenticator } from "../../api/auth/dev-auth.js";
import { createDb } from "../../common/db/knex.js";
import { generateClientTypes } from "../../openapi/document.js";

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../openapi");
const committed = () => readFile(path.join(dir, "openapi.json"), "utf8");

/** Recommended, less the rules that are about style or metadata rather than correctness. */
const LINT_RULES = {
  "info-license": "off", // metadata: which licence is the project's business, not the document's correctness
  "info-license-url": "off",
  "operation-summary": "error",
  "operation-operationId": "error",
  "operation-operationId-unique": "error",
  "no-empty-servers": "error",
  // Public routes (/, /healthz, /metrics) have no 4xx answer to describe.
  "operation-4xx-response": "warn",
} as const;

describe("the OpenAPI document, linted", () => {
  it("has no errors under Redocly's recommended rules", async () => {
    const source = await committed();
    const config = await createConfig({ extends: ["recommended"], rules: LINT_RULES });
    const problems = await lintFromString({ source, absoluteRef: path.join(dir, "openapi.json"), config });
    const errors = problems.filter((p) => p.severity === "error").map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`);
    expect(errors).toEqual([]);
    // The only warnings left: public routes without a 4xx answer.
    const warnings = problems.filter((p) => p.severity === "warn");
    for (const w of warnings) expect(w.ruleId).toBe("operation-4xx-response");
    expect(warnings.length).toBeLessThanOrEqual(8);
  });

  it("describes the shared headers and error answers on every operation", async () => {
    const doc = JSON.parse(await committed());
    expect(doc.servers?.[0]?.url).toMatch(/^http/);
    let ops = 0;
    for (const [p, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        if (!["get", "put", "post", "delete", "patch"].includes(method)) continue;
        ops++;
        const where = `${method.toUpperCase()} ${p}`;
        expect(op.operationId, where).toBeTruthy();
        const paramRefs = (op.parameters ?? []).map((x: any) => x.$ref ?? `${x.in}:${x.name}`);
        expect(paramRefs, where).toContain("#/components/parameters/XOpenStackRequestId");
        if (p.startsWith("/v2.1")) {
          expect(paramRefs, where).toContain("#/components/parameters/OpenStackApiVersion");
          expect(Object.keys(op.responses), where).toEqual(expect.arrayContaining(["400", "406"]));
        }
        expect(Object.keys(op.responses), where).toContain("500");
        const isPublic = Array.isArray(op.security) && op.security.length === 0;
        if (!isPublic) expect(Object.keys(op.responses), where).toEqual(expect.arrayContaining(["401", "403"]));
        for (const [status, r] of Object.entries<any>(op.responses)) {
          expect(r.headers?.["X-OpenStack-Request-Id"], `${where} ${status}`).toBeDefined();
          if (/^[45]/.test(status) && r.content?.["application/json"]) {
            expect(r.content["application/json"].example, `${where} ${status} example`).toBeDefined();
          }
        }
      }
    }
    expect(ops).toBeGreaterThan(80);
    expect(doc.paths["/v2.1/servers"].post.requestBody.content["application/json"].example.server.flavorRef).toBe("1");
    expect(doc.paths["/v2.1/servers/{id}"].get.responses["200"].content["application/json"].example.server.status).toBe("ACTIVE");
    for (const p of ["/healthz", "/readyz", "/metrics"]) expect(doc.paths, p).toHaveProperty([p]);
  });

  it("generates the committed SDK types offline (run `npm run openapi` after changing a route)", async () => {
    const types = await generateClientTypes(await committed());
    expect(types).toContain('"/v2.1/servers/{id}"');
    expect(await readFile(path.join(dir, "cirrus-api.d.ts"), "utf8")).toBe(types);
  });

  it("serves the interactive reference at /docs from the package's own assets, without a token", async () => {
    const db = createDb("postgres://openapi@127.0.0.1:1/none");
    const app = await buildApp({
      db,
      config: { publicUrl: "http://127.0.0.1:8774", imageStoreDir: "/nonexistent", serviceDownTimeSec: 60 },
      auth: devAuthenticator("unused"),
    });
    try {
      const page = await app.inject({ method: "GET", url: "/docs/" });
      expect(page.statusCode).toBe(200);
      expect(page.headers["content-type"]).toMatch(/text\/html/);
      expect(page.body).not.toMatch(/https?:\/\/(cdn|unpkg|cdnjs)/);
      const init = await app.inject({ method: "GET", url: "/docs/static/swagger-initializer.js" });
      expect(init.statusCode).toBe(200);
      const bundle = await app.inject({ method: "GET", url: "/docs/static/swagger-ui-bundle.js" });
      expect(bundle.statusCode).toBe(200);
      expect(bundle.body.length).toBeGreaterThan(100_000);
      const json = await app.inject({ method: "GET", url: "/docs/json" });
      expect(json.statusCode).toBe(200);
      expect(json.json().paths["/v2.1/servers"]).toBeDefined();
    } finally {
      await app.close();
      await db.destroy();
    }
  });
});
