/**
 * Hostile input, property-based (fast-check) over every route of the OpenAPI document:
 * random, truncated and oversized bodies, wrong types, unicode and control characters in
 * names, huge arrays, deep nesting, bad UUIDs and markers, header abuse. Never a 5xx,
 * every error in Nova's envelope, and a refused request leaves the database as it was
 * (row counts and an md5 of every table's rows, before and after). Also the limits:
 * 1 MiB bodies (413), JSON nesting (400) and the slow-client timeouts.
 */
import fc from "fast-check";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../api/app.js";
import { devAuthenticator } from "../../api/auth/dev-auth.js";
import { MAX_JSON_DEPTH, SLOW_CLIENT_LIMITS, jsonDepth } from "../../api/limits.js";
import { ADMIN_TOKEN, createTestApp, type TestApp } from "../support/services.js";

let t: TestApp;
let routes: { method: string; path: string }[] = [];
let serverId: string;

/** Row counts and a digest of every table's contents. */
async function checksum(): Promise<string> {
  const tables: string[] = await t.db("information_schema.tables").where({ table_schema: "public", table_type: "BASE TABLE" }).whereNot("table_name", "like", "knex_%").orderBy("table_name").pluck("table_name");
  const parts = await Promise.all(
    tables.map(async (name) => {
      const { rows } = (await t.db.raw(`SELECT count(*)::int AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h FROM "${name}" t`)) as { rows: { n: number; h: string }[] };
      return `${name}:${rows[0]!.n}:${rows[0]!.h}`;
    }),
  );
  return parts.join(",");
}

beforeAll(async () => {
  t = await createTestApp({ enforceQuotas: false });
  const doc = (await t.app.inject({ method: "GET", url: "/openapi.json" })).json() as { paths: Record<string, Record<string, unknown>> };
  for (const [p, methods] of Object.entries(doc.paths)) {
    for (const m of Object.keys(methods)) if (["get", "post", "put", "delete", "patch"].includes(m)) routes.push({ method: m.toUpperCase(), path: p });
  }
  // Something to aim at: a flavor, an image, a server.
  const inj = (method: "POST" | "PUT", url: string, payload: unknown, type = "application/json") =>
    t.app.inject({ method, url, headers: { "x-auth-token": ADMIN_TOKEN, "content-type": type }, payload: payload as string });
  await inj("POST", "/v2.1/flavors", { flavor: { name: "tiny", id: "tiny", ram: 64, vcpus: 1, disk: 1 } });
  const img = (await inj("POST", "/v2/images", { disk_format: "qcow2", container_format: "bare", visibility: "public" })).json();
  await inj("PUT", `/v2/images/${img.id}/file`, Buffer.alloc(512) as never, "application/octet-stream");
  serverId = (await inj("POST", "/v2.1/servers", { server: { name: "target", flavorRef: "tiny", imageRef: img.id, networks: "none" } })).json().server.id;
}, 60_000);

afterAll(async () => t?.close());

const badIds = fc.oneof(
  fc.uuid(),
  fc.string({ maxLength: 40 }),
  fc.constantFrom("..", "../../etc/passwd", "%00", "null", "-1", "0", "9".repeat(40), "' OR 1=1 --", "\u202e\u0000x", "ä̈😀"),
  fc.constant("x".repeat(3000)),
);
const nasty = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.string({ maxLength: 300 }),
  fc.constantFrom("\u0000", "\u0007\u001b[31m", "\ud800", "😀".repeat(100), "\u202e", " ", "", "a".repeat(256), "a".repeat(70_000)),
);
const deep = fc.integer({ min: MAX_JSON_DEPTH + 1, max: 3000 }).map((n) => "[".repeat(n) + "]".repeat(n));
const wrongTypes = fc.record({
  server: fc.record({
    name: fc.oneof(nasty, fc.integer(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 })) as fc.Arbitrary<unknown>,
    flavorRef: fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null), fc.object()) as fc.Arbitrary<unknown>,
    imageRef: fc.oneof(badIds, fc.integer(), fc.boolean()) as fc.Arbitrary<unknown>,
    networks: fc.oneof(fc.constant("none"), fc.string(), fc.array(fc.record({ uuid: badIds, fixed_ip: fc.string() }), { maxLength: 50 })) as fc.Arbitrary<unknown>,
    metadata: fc.oneof(fc.dictionary(nasty, nasty, { maxKeys: 5 }), fc.array(fc.integer(), { maxLength: 5 })) as fc.Arbitrary<unknown>,
    min_count: fc.oneof(fc.integer(), fc.constant(1e9), fc.string()) as fc.Arbitrary<unknown>,
  }, { requiredKeys: [] }),
});
const bodies: fc.Arbitrary<string | Buffer> = fc.oneof(
  fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v)),
  wrongTypes.map((v) => JSON.stringify(v)),
  fc.tuple(wrongTypes, fc.nat()).map(([v, cut]) => { const s = JSON.stringify(v); return s.slice(0, cut % (s.length + 1)); }),
  deep,
  fc.integer({ min: 1000, max: 120_000 }).map((n) => JSON.stringify({ server: { name: "x", networks: new Array(n).fill({ uuid: "0" }) } })),
  fc.constant(JSON.stringify({ server: { name: "x".repeat(1024 * 1024 + 10) } })),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.constantFrom("", "{", "null", "[]", "\"str\"", "1e999", "{\"__proto__\":{\"x\":1}}", "{\"constructor\":{\"prototype\":{}}}"),
);
const headerAbuse = fc.record(
  {
    "content-type": fc.constantFrom("application/json", "text/plain", "application/json; charset=utf-16", "multipart/form-data; boundary=x", "application/octet-stream", "application/x-www-form-urlencoded", "*/*"),
    "openstack-api-version": fc.constantFrom("compute 2.1", "compute 9.99", "compute latest", "compute abc", "", "compute " + "9".repeat(400)),
    "x-openstack-nova-api-version": fc.constantFrom("2.1", "2.9999", "banana", "-1.0"),
    "idempotency-key": fc.oneof(fc.string({ maxLength: 300 }), fc.constant("k".repeat(5000))),
    "x-openstack-request-id": fc.oneof(fc.string({ maxLength: 80 }), fc.constant("req-00000000-0000-4000-8000-000000000000")),
    "x-auth-token": fc.oneof(fc.constant(ADMIN_TOKEN), fc.constant(ADMIN_TOKEN), fc.string({ maxLength: 50 })),
  },
  { requiredKeys: [] },
);
const queries = fc.dictionary(fc.constantFrom("limit", "marker", "name", "sort_key", "sort_dir", "status", "changes-since", "all_tenants", "ip", "tags", "flavor", "image"), fc.oneof(badIds, fc.integer().map(String), nasty.map((s) => s.slice(0, 200))), { maxKeys: 4 });

function fillPath(p: string, id: string): string {
  return p.replace(/\{[^}]+\}/g, () => encodeURIComponent(id));
}

function isNovaEnvelope(status: number, text: string): boolean {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return false;
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) return false;
  const keys = Object.keys(body);
  if (keys.length !== 1) return false;
  const inner = (body as Record<string, { code?: unknown; message?: unknown }>)[keys[0]!]!;
  return typeof inner === "object" && inner !== null && inner.code === status && typeof inner.message === "string";
}

const stats = { requests: 0, byStatus: {} as Record<number, number>, refused: 0, mutatingAccepted: 0 };

describe("hostile input over every route", () => {
  it("never answers 5xx, always in Nova's envelope, and a refused request changes nothing", async () => {
    expect(routes.length).toBeGreaterThan(40);
    let baseline = await checksum();
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: routes.length - 1 }),
        fc.oneof(badIds, fc.constant("target")),
        bodies,
        headerAbuse,
        queries,
        async (ri, rawId, body, headers, query) => {
          const route = routes[ri]!;
          const id = rawId === "target" ? serverId : rawId;
          const qs = new URLSearchParams(query).toString();
          const url = fillPath(route.path, id) + (qs ? `?${qs}` : "");
          const withBody = route.method !== "GET" && route.method !== "DELETE";
          const res = await t.app.inject({ method: route.method as "GET", url, headers: headers as Record<string, string>, ...(withBody ? { payload: body } : {}) });
          stats.requests++;
          stats.byStatus[res.statusCode] = (stats.byStatus[res.statusCode] ?? 0) + 1;
          expect(res.statusCode, `${route.method} ${url.slice(0, 200)} -> ${res.body.slice(0, 300)}`).toBeLessThan(500);
          if (res.statusCode >= 400) {
            stats.refused++;
            expect(isNovaEnvelope(res.statusCode, res.body), `${route.method} ${route.path}: ${res.statusCode} ${res.body.slice(0, 300)}`).toBe(true);
            if (route.method !== "GET") {
              const after = await checksum();
              expect(after, `${route.method} ${route.path} was refused (${res.statusCode}) but changed the database`).toBe(baseline);
            }
          } else if (route.method !== "GET") {
            stats.mutatingAccepted++;
            baseline = await checksum();
          }
        },
      ),
      { numRuns: 500, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
    console.log("hostile-input", JSON.stringify(stats));
  }, 300_000);

  it("refuses a body over 1 MiB with 413 and one nested deeper than the limit with 400", async () => {
    const big = await t.app.inject({ method: "POST", url: "/v2.1/servers", headers: { "x-auth-token": ADMIN_TOKEN, "content-type": "application/json" }, payload: JSON.stringify({ server: { name: "x".repeat(1024 * 1024) } }) });
    expect(big.statusCode).toBe(413);
    expect(big.json().overLimit.code).toBe(413);
    const nested = "[".repeat(MAX_JSON_DEPTH + 1) + "]".repeat(MAX_JSON_DEPTH + 1);
    const deepRes = await t.app.inject({ method: "POST", url: "/v2.1/servers", headers: { "x-auth-token": ADMIN_TOKEN, "content-type": "application/json" }, payload: `{"server": ${nested}}` });
    expect(deepRes.statusCode).toBe(400);
    expect(deepRes.json().badRequest.message).toMatch(/nested deeper/);
    expect(jsonDepth(JSON.parse("[".repeat(5000) + "]".repeat(5000)))).toBeGreaterThan(MAX_JSON_DEPTH);
  });

  it("cuts off a client that sends its request too slowly", async () => {
    // The limits handed to Fastify: socket inactivity, whole request, headers.
    expect(t.app.initialConfig.connectionTimeout).toBe(SLOW_CLIENT_LIMITS.connectionTimeout);
    expect(t.app.server.requestTimeout).toBe(SLOW_CLIENT_LIMITS.requestTimeout);
    expect(t.app.server.headersTimeout).toBe(SLOW_CLIENT_LIMITS.http.headersTimeout);
    // A client that starts a request and then goes quiet is disconnected: the same app
    // built with the inactivity limit lowered to 1 s, so the test need not wait 30 s.
    const quick = await buildApp({ db: t.db, config: { publicUrl: "http://x", imageStoreDir: t.imageStoreDir, serviceDownTimeSec: 60 }, auth: devAuthenticator(ADMIN_TOKEN), slowClientLimits: { connectionTimeout: 1000 } });
    await quick.listen({ port: 0, host: "127.0.0.1" });
    const port = (quick.server.address() as net.AddressInfo).port;
    const closedAfter = await new Promise<number>((resolve) => {
      const started = Date.now();
      const s = net.connect(port, "127.0.0.1", () => s.write(`POST /v2.1/servers HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`));
      s.on("close", () => resolve(Date.now() - started));
      s.on("error", () => {});
      s.setTimeout(20_000, () => s.destroy());
    });
    await quick.close();
    expect(closedAfter).toBeLessThan(10_000);
  }, 30_000);
});
