/**
 * The real app behind a real OIDC issuer (oidc-provider, common/dev-issuer.ts) started by
 * the test: personas for admin, members and a reader of projects "pa" and "pb", the
 * agents' service persona, and the API's introspection client.
 */
import request from "supertest";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { buildApp } from "../../api/app.js";
import { createOidcAuthenticator, type OidcAuthenticatorOptions } from "../../api/auth/oidc.js";
import { rsaKey, startDevIssuer, type DevIssuer, type Persona } from "../../common/dev-issuer.js";
import { PUBLIC_URL, createTestDatabase, type TestDatabase } from "../support/services.js";

export const AUDIENCE = "cirrus-test";

export const PERSONAS: Persona[] = [
  { clientId: "admin", clientSecret: "admin-secret", projectId: "admin", roles: ["admin", "member", "reader"] },
  { clientId: "member-a", clientSecret: "member-a-secret", projectId: "pa", roles: ["member", "reader"] },
  { clientId: "reader-a", clientSecret: "reader-a-secret", projectId: "pa", roles: ["reader"] },
  { clientId: "member-b", clientSecret: "member-b-secret", projectId: "pb", roles: ["member", "reader"] },
  { clientId: "agent", clientSecret: "agent-secret", roles: ["service"] },
];
export const API_CLIENT = { clientId: "cirrus-api", clientSecret: "api-secret" };

export interface AuthApp {
  app: Awaited<ReturnType<typeof buildApp>>;
  issuer: DevIssuer;
  database: TestDatabase;
  /** Access tokens from the issuer, by persona. */
  tokens: Record<string, string>;
  close(): Promise<void>;
}

export async function startIssuer(opts: { port?: number; keys?: Awaited<ReturnType<typeof rsaKey>>[] } = {}): Promise<DevIssuer> {
  return startDevIssuer({
    audience: AUDIENCE,
    personas: PERSONAS,
    apiClient: API_CLIENT,
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(opts.keys ? { keys: opts.keys } : {}),
  });
}

export function oidcOptions(issuer: DevIssuer, over: Partial<OidcAuthenticatorOptions> = {}): OidcAuthenticatorOptions {
  return {
    issuerUrl: issuer.url,
    audience: AUDIENCE,
    clientId: API_CLIENT.clientId,
    clientSecret: API_CLIENT.clientSecret,
    projectClaim: "project_id",
    rolesClaim: "roles",
    userClaim: "sub",
    clockToleranceSec: 5,
    jwksCooldownMs: 300,
    introspectionCacheSec: 60,
    ...over,
  };
}

export async function createAuthApp(opts: { enforceQuotas?: boolean } = {}): Promise<AuthApp> {
  const issuer = await startIssuer({ keys: [await rsaKey("k1")] });
  const database = await createTestDatabase();
  const imageStoreDir = await mkdtemp(path.join(os.tmpdir(), "cirrus-auth-"));
  const oidc = createOidcAuthenticator(oidcOptions(issuer));
  const app = await buildApp({
    db: database.db,
    config: { publicUrl: PUBLIC_URL, imageStoreDir, serviceDownTimeSec: 60, enforceQuotas: opts.enforceQuotas ?? true },
    auth: oidc.authenticate,
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const tokens: Record<string, string> = {};
  for (const p of PERSONAS) tokens[p.clientId] = await issuer.token(p.clientId);
  return {
    app,
    issuer,
    database,
    tokens,
    close: async () => {
      await app.close();
      await issuer.close();
      await database.drop();
      await rm(imageStoreDir, { recursive: true, force: true });
    },
  };
}

export function as(t: AuthApp, token: string) {
  const h = { "X-Auth-Token": token };
  return {
    get: (p: string) => request(t.app.server).get(p).set(h),
    post: (p: string, body?: unknown) => request(t.app.server).post(p).set(h).send(body as object),
    put: (p: string, body?: unknown) => request(t.app.server).put(p).set(h).send(body as object),
    del: (p: string) => request(t.app.server).delete(p).set(h),
    call: (method: string, p: string, body?: unknown) => {
      const r = request(t.app.server)[method.toLowerCase() as "get" | "post" | "put" | "delete"](p).set(h);
      return body === undefined ? r : r.send(body as object);
    },
  };
}
