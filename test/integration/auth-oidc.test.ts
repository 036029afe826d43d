/**
 * OIDC authentication against a real oidc-provider issuer: a valid token for each role;
 * forged, expired, misdirected and malformed tokens are 401 with WWW-Authenticate;
 * opaque tokens by introspection; key rotation at the issuer without a Cirrus restart.
 */
import { createPublicKey } from "node:crypto";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT, importJWK, type JWK } from "jose";
import { rsaKey } from "../../common/dev-issuer.js";
import { AUDIENCE, as, createAuthApp, startIssuer, type AuthApp } from "./auth-support.js";

let t: AuthApp;
beforeAll(async () => {
  t = await createAuthApp();
});
afterAll(async () => {
  await t?.close();
});

const now = () => Math.floor(Date.now() / 1000);

/** A token signed by `key` (default: the issuer's own key k1) with the given claims and header. */
async function forge(claims: Record<string, unknown>, opts: { key?: JWK; kid?: string; alg?: string } = {}): Promise<string> {
  const jwk = opts.key ?? t.issuer.keys[0]!;
  const key = await importJWK(jwk, "RS256");
  return new SignJWT({ project_id: "pa", roles: ["member"], sub: "forger", ...claims })
    .setProtectedHeader({ alg: opts.alg ?? "RS256", typ: "at+jwt", kid: opts.kid ?? jwk.kid! })
    .sign(key);
}

const good = () => ({ iss: t.issuer.url, aud: AUDIENCE, iat: now(), exp: now() + 600 });
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");

describe("valid tokens", () => {
  it("each role gets what its rules allow", async () => {
    expect((await as(t, t.tokens.admin!).get("/v2.1/os-hypervisors")).status).toBe(200);
    expect((await as(t, t.tokens["member-a"]!).get("/v2.1/os-hypervisors")).status).toBe(403);
    expect((await as(t, t.tokens["reader-a"]!).get("/v2.1/servers")).status).toBe(200);
    expect((await as(t, t.tokens["member-a"]!).get("/v2.1/servers")).status).toBe(200);
    const denied = await as(t, t.tokens["reader-a"]!).post("/v2.1/os-keypairs", { keypair: { name: "k" } });
    expect(denied.status).toBe(403);
    expect(denied.body.forbidden.message).toBe("Policy doesn't allow os_compute_api:os-keypairs:create to be performed.");
    expect((await as(t, t.tokens["member-a"]!).post("/v2.1/os-keypairs", { keypair: { name: "k" } })).status).toBe(200);
    // The agents' service role reads images and nothing else.
    expect((await as(t, t.tokens.agent!).get("/v2.1/servers")).status).toBe(403);
  });

  it("is accepted as Authorization: Bearer too", async () => {
    const res = await request(t.app.server).get("/v2.1/servers").set("Authorization", `Bearer ${t.tokens["member-a"]}`);
    expect(res.status).toBe(200);
  });

  it("a token forged with the issuer's own key and correct claims passes (the control for the cases below)", async () => {
    expect((await as(t, await forge(good())).get("/v2.1/servers")).status).toBe(200);
  });

  it("an opaque token is checked by introspection", async () => {
    const opaque = await t.issuer.token("member-b", { opaque: true });
    expect(opaque.split(".").length).toBe(1);
    const res = await as(t, opaque).get("/v2.1/os-keypairs");
    expect(res.status).toBe(200);
  });

  it("version documents and the OpenAPI document need no token", async () => {
    expect((await request(t.app.server).get("/")).status).toBeLessThan(400);
    expect((await request(t.app.server).get("/v2.1")).status).toBe(200);
    expect((await request(t.app.server).get("/openapi.json")).status).toBe(200);
  });
});

describe("refused tokens: 401 with WWW-Authenticate", () => {
  const cases: [string, () => Promise<string>, RegExp][] = [
    ["expired", () => forge({ ...good(), iat: now() - 7200, exp: now() - 3600 }), /expired/],
    ["not yet valid", () => forge({ ...good(), nbf: now() + 3600 }), /not yet valid/],
    ["wrong issuer", () => forge({ ...good(), iss: "http://evil.example" }), /issuer/],
    ["wrong audience", () => forge({ ...good(), aud: "another-service" }), /audience/],
    ["bad signature", async () => forge(good(), { key: await rsaKey("k1") }), /signature/],
    ["unknown key id", async () => forge(good(), { key: await rsaKey("nobody-knows-me") }), /key the issuer does not publish/],
    ["alg none", async () => `${b64({ alg: "none", typ: "at+jwt" })}.${b64(good())}.`, /algorithm|not valid/],
    [
      "HS256 signed with the issuer's public key",
      async () => {
        const pub = createPublicKey({ key: t.issuer.keys[0]! as never, format: "jwk" }).export({ type: "spki", format: "pem" });
        return new SignJWT({ ...good(), project_id: "pa", roles: ["admin"], sub: "x" })
          .setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: t.issuer.keys[0]!.kid! })
          .sign(new TextEncoder().encode(pub as string));
      },
      /algorithm/,
    ],
    ["garbage", async () => "not-a-token-at-all", /not active|not valid/],
    ["garbage that looks like a JWT", async () => "aaaa.bbbb.cccc", /not active|not valid/],
  ];
  for (const [name, make, why] of cases) {
    it(name, async () => {
      const res = await as(t, await make()).get("/v2.1/servers");
      expect(res.status, JSON.stringify(res.body)).toBe(401);
      expect(res.body.unauthorized.code).toBe(401);
      expect(res.body.unauthorized.message).toMatch(why);
      expect(res.headers["www-authenticate"]).toMatch(/^Bearer realm="cirrus", error="invalid_token", error_description="/);
    });
  }

  it("no token at all is 401 with a Bearer challenge", async () => {
    const res = await request(t.app.server).get("/v2.1/servers");
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toMatch(/^Bearer/);
  });

  it("a token without a project_id claim is 401", async () => {
    const res = await as(t, await forge({ ...good(), project_id: undefined })).get("/v2.1/servers");
    expect(res.status).toBe(401);
    expect(res.body.unauthorized.message).toMatch(/project_id/);
  });
});

describe("key rotation at the issuer", () => {
  it("a token signed with a new key is accepted without restarting Cirrus", async () => {
    // Cirrus has the old key set cached.
    expect((await as(t, t.tokens["member-a"]!).get("/v2.1/servers")).status).toBe(200);
    const port = Number(new URL(t.issuer.url).port);
    const old = t.issuer.keys[0]!;
    await t.issuer.close();
    t.issuer = await startIssuer({ port, keys: [await rsaKey("k2"), old] });
    const fresh = await t.issuer.token("member-a");
    expect(JSON.parse(Buffer.from(fresh.split(".")[0]!, "base64url").toString()).kid).toBe("k2");
    // The unknown kid makes Cirrus refetch the JWKS (at most once per cooldown).
    let status = 0;
    for (let i = 0; i < 20 && status !== 200; i++) {
      status = (await as(t, fresh).get("/v2.1/servers")).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toBe(200);
    // Tokens signed with the previous key still verify while the issuer publishes it.
    expect((await as(t, t.tokens["member-b"]!).get("/v2.1/servers")).status).toBe(200);
  });
});
