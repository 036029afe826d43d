/**
 * same_host / different_host scheduler hints on POST /v2.1/servers: accepted in either
 * spelling, stored normalised in instances.scheduler_hints inside the boot transaction,
 * refused with Nova's 400 messages (never a 500) with nothing written.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tableCounts } from "../support/services.js";
import { MEMBER_P1, bootables, client, createExtApp, type ExtApp } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
});
afterAll(async () => t?.close());

const A = "6f1c3a1e-7b1d-4a4e-9a53-0c6a3f3f2b11";
const B = "0b7e9c52-3c1f-4f7e-8e0a-2d7c5a9b8e22";

const boot = (hints: Record<string, unknown>, server: Record<string, unknown> = {}) =>
  client(t, MEMBER_P1).post("/v2.1/servers", { server: { name: "hinted", flavorRef: "1", imageRef: imageId, networks: "none", ...server }, ...hints });
const stored = async (id: string) => (await t.database.db("instances").where({ id }).first("scheduler_hints")).scheduler_hints as unknown;

describe("accepted hints are stored normalised", () => {
  it("same_host as one UUID becomes a list", async () => {
    const res = await boot({ "os:scheduler_hints": { same_host: A } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(await stored(res.body.server.id)).toEqual({ same_host: [A] });
  });

  it("different_host as a list, lower-cased, each once", async () => {
    const res = await boot({ "os:scheduler_hints": { different_host: [A.toUpperCase(), B, A] } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(await stored(res.body.server.id)).toEqual({ different_host: [A, B] });
  });

  it("both together, through the legacy OS-SCH-HNT:scheduler_hints key", async () => {
    const res = await boot({ "OS-SCH-HNT:scheduler_hints": { same_host: [A], different_host: B } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(await stored(res.body.server.id)).toEqual({ same_host: [A], different_host: [B] });
  });

  it("no hints, unrelated hints and empty lists store {}", async () => {
    for (const hints of [{}, { "os:scheduler_hints": { query: "x", build_near_host_ip: "192.0.2.1" } }, { "os:scheduler_hints": { same_host: [], different_host: [] } }]) {
      const res = await boot(hints);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect(await stored(res.body.server.id)).toEqual({});
    }
  });

  it("every server of a multi-create gets the hints", async () => {
    const res = await boot({ "os:scheduler_hints": { different_host: A } }, { min_count: 2, max_count: 2, return_reservation_id: true });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const rows = await t.database.db("instances").where({ reservation_id: res.body.reservation_id }).select("scheduler_hints");
    expect(rows.map((r) => r.scheduler_hints)).toEqual([{ different_host: [A] }, { different_host: [A] }]);
  });
});

describe("refused hints are a 400 with Nova's message, and nothing is written", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    [
      "different_host not a UUID",
      { "os:scheduler_hints": { different_host: "abc" } },
      "Invalid input for field/attribute different_host. Value: abc. 'abc' is not valid under any of the given schemas",
    ],
    [
      "different_host list with a non-UUID",
      { "os:scheduler_hints": { different_host: [A, 1] } },
      `Invalid input for field/attribute different_host. Value: ['${A}', 1]. ['${A}', 1] is not valid under any of the given schemas`,
    ],
    ["same_host a number", { "os:scheduler_hints": { same_host: 5 } }, "Invalid input for field/attribute same_host. Value: 5. 5 is not of type 'string', 'array'"],
    ["same_host list with a non-UUID", { "os:scheduler_hints": { same_host: [A, "x"] } }, "Invalid input for field/attribute same_host. Value: x. 'x' is not a 'uuid'"],
    ["same_host null", { "OS-SCH-HNT:scheduler_hints": { same_host: null } }, "Invalid input for field/attribute same_host. Value: None. None is not of type 'string', 'array'"],
  ];
  it.each(cases)("%s", async (_label, hints, message) => {
    const before = await tableCounts(t.database.db);
    const res = await boot(hints);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body).toEqual({ badRequest: { code: 400, message } });
    expect(await tableCounts(t.database.db)).toEqual(before);
  });

  it("hints that are not an object are refused by the schema", async () => {
    const res = await boot({ "os:scheduler_hints": "same_host" });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.badRequest.code).toBe(400);
  });
});
