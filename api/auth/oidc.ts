/**
 * OIDC authentication: access tokens from the issuer at CIRRUS_OIDC_ISSUER_URL, sent
 * in `X-Auth-Token` (what the OpenStack clients send) or `Authorization: Bearer`.
 *
 * - The issuer is discovered with openid-client (lazily, retried until it answers).
 * - JWT access tokens (RFC 9068) are verified with jose against the issuer's JWKS
 *   (createRemoteJWKSet: cached, refetched when a token names an unknown key id, at
 *   most once per jwksCooldownMs): issuer, audience, exp/nbf with a small clock
 *   tolerance, and an allow-list of asymmetric algorithms (never `none`, never HS*).
 * - Anything else is an opaque token, checked by token introspection when the issuer
 *   offers it and the API has client credentials for it.
 * - A result is cached per token, never beyond the token's own expiry.
 * - Claims map to the request context through configuration (project, roles, user).
 */
import { createHash } from "node:crypto";
import * as client from "openid-client";
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from "jose";
import { NovaError } from "../../common/errors.js";
import type { OidcConfig } from "../../common/config.js";
import type { RequestContext } from "../context.js";
import { tokenFrom, type Authenticator } from "./dev-auth.js";
import { AuthFailure } from "./failure.js";

/** Asymmetric algorithms only: an HMAC "key" made from a public key can never verify. */
export const ALLOWED_ALGORITHMS = ["RS256", "ES256", "PS256", "EdDSA"] as const;

const MAX_CACHE_ENTRIES = 10_000;

export interface OidcAuthenticatorOptions extends Omit<OidcConfig, "issuerUrl"> {
  issuerUrl: string;
  /** Clock for the cache (tests). */
  now?: () => number;
}

export interface OidcAuthenticator {
  authenticate: Authenticator;
  /** Discovers the issuer now (else the first request does); rejects when it does not answer. */
  discover(): Promise<void>;
}

interface Discovered {
  issuer: string;
  jwks: ReturnType<typeof createRemoteJWKSet>;
  introspection: client.Configuration | null;
}

/** The value at a claim path ("project_id", or "realm_access.roles" for Keycloak). */
function claimAt(claims: Record<string, unknown>, path: string): unknown {
  if (path in claims) return claims[path];
  let cur: unknown = claims;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function rolesFrom(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  if (typeof value === "string") return value.split(/[\s,]+/).filter(Boolean);
  return [];
}

/** The request context a token's claims describe, as configured. */
export function contextFromClaims(claims: Record<string, unknown>, opts: Pick<OidcConfig, "projectClaim" | "rolesClaim" | "userClaim">): RequestContext {
  const roles = rolesFrom(claimAt(claims, opts.rolesClaim));
  const projectRaw = claimAt(claims, opts.projectClaim);
  const user = claimAt(claims, opts.userClaim) ?? claims.client_id;
  if (typeof user !== "string" || user === "") throw new AuthFailure(`The token has no ${opts.userClaim} claim.`);
  let projectId: string;
  if (typeof projectRaw === "string" && projectRaw !== "") projectId = projectRaw;
  else if (roles.includes("service")) projectId = "service";
  else throw new AuthFailure(`The token has no ${opts.projectClaim} claim: it is not scoped to a project.`);
  return { projectId, userId: user, roles, isAdmin: roles.includes("admin") };
}

function describe(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return "The token has expired.";
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === "nbf") return "The token is not yet valid (nbf).";
    if (err.claim === "iss") return "The token was not issued by the trusted issuer.";
    if (err.claim === "aud") return "The token is not meant for this service (audience).";
    return `The token's ${err.claim} claim is not valid: ${err.reason}.`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return `The token's signing algorithm is not allowed (allowed: ${ALLOWED_ALGORITHMS.join(", ")}).`;
  if (err instanceof joseErrors.JWKSNoMatchingKey) return "The token is signed with a key the issuer does not publish.";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return "The token's signature is not valid.";
  if (err instanceof joseErrors.JWKSTimeout) return "The issuer's key set could not be fetched in time.";
  if (err instanceof joseErrors.JOSEError) return `The token is not valid (${err.code}).`;
  return "The token is not valid.";
}

/** A JWS in compact form: three base64url parts whose header decodes. */
function looksLikeJwt(token: string): boolean {
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/.test(token)) return false;
  try {
    decodeProtectedHeader(token);
    return true;
  } catch {
    return false;
  }
}

export function createOidcAuthenticator(opts: OidcAuthenticatorOptions): OidcAuthenticator {
  const now = opts.now ?? Date.now;
  const issuerUrl = new URL(opts.issuerUrl);
  const insecure = issuerUrl.protocol === "http:";
  const cache = new Map<string, { ctx: RequestContext; until: number }>();
  let discovered: Promise<Discovered> | null = null;

  const discoverOnce = async (): Promise<Discovered> => {
    const execute = insecure ? [client.allowInsecureRequests] : [];
    const clientId = opts.clientId ?? "cirrus-api";
    const auth = opts.clientSecret ? client.ClientSecretBasic(opts.clientSecret) : client.None();
    const cfg = await client.discovery(issuerUrl, clientId, undefined, auth, { execute });
    const meta = cfg.serverMetadata();
    if (!meta.jwks_uri) throw new Error(`the issuer ${meta.issuer} publishes no jwks_uri`);
    return {
      issuer: meta.issuer,
      jwks: createRemoteJWKSet(new URL(meta.jwks_uri), { cooldownDuration: opts.jwksCooldownMs, cacheMaxAge: 10 * 60_000, timeoutDuration: 5_000 }),
      introspection: meta.introspection_endpoint && opts.clientId && opts.clientSecret ? cfg : null,
    };
  };

  const discover = (): Promise<Discovered> => {
    if (!discovered) {
      discovered = discoverOnce();
      discovered.catch(() => {
        discovered = null; // the next request tries again
      });
    }
    return discovered;
  };

  const remember = (key: string, ctx: RequestContext, expSec: number | undefined, maxMs: number) => {
    const until = Math.min(expSec !== undefined ? expSec * 1000 : Infinity, now() + maxMs);
    if (!(until > now())) return;
    if (cache.size >= MAX_CACHE_ENTRIES) {
      for (const [k, v] of cache) if (v.until <= now()) cache.delete(k);
      if (cache.size >= MAX_CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
    }
    cache.set(key, { ctx, until });
  };

  const verifyJwt = async (d: Discovered, token: string): Promise<{ ctx: RequestContext; exp?: number }> => {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, d.jwks, {
        issuer: d.issuer,
        audience: opts.audience,
        algorithms: [...ALLOWED_ALGORITHMS],
        clockTolerance: opts.clockToleranceSec,
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      throw new AuthFailure(describe(err));
    }
    return { ctx: contextFromClaims(payload as Record<string, unknown>, opts), ...(payload.exp !== undefined ? { exp: payload.exp } : {}) };
  };

  const introspect = async (d: Discovered, token: string): Promise<{ ctx: RequestContext; exp?: number }> => {
    if (!d.introspection) throw new AuthFailure("The token is not a JWT access token and the issuer offers no introspection to Cirrus.");
    let info: Record<string, unknown>;
    try {
      info = (await client.tokenIntrospection(d.introspection, token)) as Record<string, unknown>;
    } catch {
      throw new AuthFailure("The token is not valid.");
    }
    if (info.active !== true) throw new AuthFailure("The token is not active (expired, revoked or unknown to the issuer).");
    const aud = info.aud;
    const auds = Array.isArray(aud) ? aud : typeof aud === "string" ? [aud] : [];
    if (!auds.includes(opts.audience)) throw new AuthFailure("The token is not meant for this service (audience).");
    if (typeof info.iss === "string" && info.iss !== d.issuer) throw new AuthFailure("The token was not issued by the trusted issuer.");
    const exp = typeof info.exp === "number" ? info.exp : undefined;
    if (exp !== undefined && exp * 1000 + opts.clockToleranceSec * 1000 < now()) throw new AuthFailure("The token has expired.");
    return { ctx: contextFromClaims(info, opts), ...(exp !== undefined ? { exp } : {}) };
  };

  const authenticate: Authenticator = async (req) => {
    const token = tokenFrom(req);
    if (token === null) return null;
    if (token.length > 16_384) throw new AuthFailure("The token is too long.");
    const key = createHash("sha256").update(token).digest("base64url");
    const hit = cache.get(key);
    if (hit) {
      if (hit.until > now()) return hit.ctx;
      cache.delete(key);
    }
    let d: Discovered;
    try {
      d = await discover();
    } catch (err) {
      req.log.error({ err, issuer: opts.issuerUrl }, "OIDC issuer discovery failed");
      throw new NovaError(503, "The identity provider cannot be reached; try again shortly.");
    }
    if (looksLikeJwt(token)) {
      const { ctx, exp } = await verifyJwt(d, token);
      remember(key, ctx, exp, Infinity);
      return ctx;
    }
    const { ctx, exp } = await introspect(d, token);
    remember(key, ctx, exp, opts.introspectionCacheSec * 1000);
    return ctx;
  };

  return { authenticate, discover: async () => void (await discover()) };
}
