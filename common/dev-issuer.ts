/**
 * A development OIDC issuer (oidc-provider) on loopback, for `npm start` without an
 * identity provider and for the tests. It knows a handful of "personas", each an
 * OAuth client with the client_credentials grant whose access tokens carry the
 * persona's project_id and roles claims:
 *
 *   cirrus-admin   project "admin", roles admin member reader  (OS_TOKEN in openrc)
 *   cirrus-member  project "demo",  roles member reader        (CIRRUS_MEMBER_TOKEN)
 *   cirrus-agent   roles service                                (the compute agents)
 *
 * plus the API's own client ("cirrus-api") for token introspection. Access tokens for
 * resource RESOURCE are RFC 9068 JWTs (RS256) with audience `audience`; for
 * OPAQUE_RESOURCE they are opaque (checked by introspection).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import Provider, { errors as oidcErrors } from "oidc-provider";

export const RESOURCE = "urn:cirrus:compute";
export const OPAQUE_RESOURCE = "urn:cirrus:compute:opaque";

export interface Persona {
  clientId: string;
  clientSecret: string;
  /** Omitted for a service persona (the agents). */
  projectId?: string;
  roles: string[];
}

export interface DevIssuerOptions {
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** The `aud` of the access tokens; Cirrus's CIRRUS_OIDC_AUDIENCE. */
  audience?: string;
  /** Private signing keys (JWK with kid); the first signs. Default: one fresh RSA key. */
  keys?: JWK[];
  /** Lifetime of issued access tokens (seconds). */
  tokenTtlSec?: number;
  /** Default: admin, member (project "demo") and agent with random secrets. */
  personas?: Persona[];
  /** The introspecting client (the API). Default: cirrus-api with a random secret. */
  apiClient?: { clientId: string; clientSecret: string };
}

export interface DevIssuer {
  url: string;
  audience: string;
  personas: Persona[];
  apiClient: { clientId: string; clientSecret: string };
  keys: JWK[];
  /** An access token for a persona through the real client_credentials grant. */
  token(clientId: string, opts?: { opaque?: boolean }): Promise<string>;
  close(): Promise<void>;
}

export async function rsaKey(kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, alg: "RS256", use: "sig" };
}

const secret = () => randomBytes(18).toString("base64url");

export function defaultPersonas(): Persona[] {
  return [
    { clientId: "cirrus-admin", clientSecret: secret(), projectId: "admin", roles: ["admin", "member", "reader"] },
    { clientId: "cirrus-member", clientSecret: secret(), projectId: "demo", roles: ["member", "reader"] },
    { clientId: "cirrus-agent", clientSecret: secret(), roles: ["service"] },
  ];
}

export async function startDevIssuer(opts: DevIssuerOptions = {}): Promise<DevIssuer> {
  const host = opts.host ?? "127.0.0.1";
  const audience = opts.audience ?? "cirrus";
  const ttl = opts.tokenTtlSec ?? 3600;
  const keys = opts.keys ?? [await rsaKey(`dev-${randomBytes(4).toString("hex")}`)];
  const personas = opts.personas ?? defaultPersonas();
  const apiClient = opts.apiClient ?? { clientId: "cirrus-api", clientSecret: secret() };
  const byClient = new Map(personas.map((p) => [p.clientId, p]));

  let handler: http.RequestListener = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = http.createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const url = `http://${host}:${(server.address() as AddressInfo).port}`;

  const provider = new Provider(url, {
    jwks: { keys: keys as never },
    clients: [
      ...personas.map((p) => ({
        client_id: p.clientId,
        client_secret: p.clientSecret,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
      })),
      { client_id: apiClient.clientId, client_secret: apiClient.clientSecret, grant_types: [], redirect_uris: [], response_types: [] },
    ],
    scopes: ["compute"],
    ttl: { ClientCredentials: () => ttl },
    extraTokenClaims: async (_ctx, token) => {
      const p = byClient.get(token.clientId!);
      if (!p) return undefined;
      return { roles: p.roles, ...(p.projectId !== undefined ? { project_id: p.projectId } : {}) };
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async (ctx) => ctx.oidc.client?.clientId === apiClient.clientId },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resource) => {
          if (resource === RESOURCE) {
            return { scope: "compute", audience, accessTokenTTL: ttl, accessTokenFormat: "jwt", jwt: { sign: { alg: "RS256" } } };
          }
          if (resource === OPAQUE_RESOURCE) return { scope: "compute", audience, accessTokenTTL: ttl, accessTokenFormat: "opaque" };
          throw new oidcErrors.InvalidTarget();
        },
      },
    },
  });
  handler = provider.callback();

  const token = async (clientId: string, tokenOpts: { opaque?: boolean } = {}): Promise<string> => {
    const p = byClient.get(clientId);
    if (!p) throw new Error(`the dev issuer has no persona ${clientId}`);
    const res = await fetch(`${url}/token`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(p.clientId)}:${encodeURIComponent(p.clientSecret)}`).toString("base64")}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: "compute", resource: tokenOpts.opaque ? OPAQUE_RESOURCE : RESOURCE }),
    });
    const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
    if (!res.ok || !body.access_token) throw new Error(`dev issuer token for ${clientId}: ${res.status} ${body.error ?? ""} ${body.error_description ?? ""}`);
    return body.access_token;
  };

  return {
    url,
    audience,
    personas,
    apiClient,
    keys,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
