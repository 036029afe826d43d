/**
 * PUT /os-services/{id} (2.53-style body) and the 2.1 forms enable / disable /
 * disable-log-reason / force-down; and, through placeInstance against the test
 * database, that a disabled or forced-down host gets no new servers.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { placeInstance, type PlacementDeps } from "../../scheduler/place.js";
import { MEMBER_P1, admin, bootables, client, createExtApp, registerHost, type ExtApp, placementDeps } from "./ext-support.js";

let t: ExtApp;
let imageId: string;
let deps: PlacementDeps;
let a1: string;
let b1: string;
beforeAll(async () => {
  t = await createExtApp();
  ({ imageId } = await bootables(t));
  ({ serviceId: a1 } = await registerHost(t, "svc-a"));
  ({ serviceId: b1 } = await registerHost(t, "svc-b"));
  deps = placementDeps(t);
});
afterAll(async () => t?.close());

const a = () => admin(t);
const service = async (id: string) => (await a().get("/v2.1/os-services")).body.services.find((s: { id: string }) => s.id === id);
const bootAndPlace = async () => {
  const res = await client(t, MEMBER_P1).post("/v2.1/servers", { server: { name: "s", flavorRef: "1", imageRef: imageId, networks: "none" } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  const outcome = await placeInstance(deps, res.body.server.id, `req-${randomUUID()}`);
  const row = await t.database.db("instances").where({ id: res.body.server.id }).first("host");
  return { outcome, host: row.host as string | null };
};

describe("PUT /v2.1/os-services/{id}", () => {
  it("disables with a reason and answers the service", async () => {
    const res = await a().put(`/v2.1/os-services/${a1}`, { status: "disabled", disabled_reason: "maintenance" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.service).toMatchObject({
      id: a1,
      binary: "nova-compute",
      host: "svc-a",
      zone: "nova",
      status: "disabled",
      state: "up",
      disabled_reason: "maintenance",
      forced_down: false,
    });
    expect(await service(a1)).toMatchObject({ status: "disabled", disabled_reason: "maintenance" });
  });

  it("a disabled host gets no new servers", async () => {
    for (let i = 0; i < 3; i++) expect(await bootAndPlace()).toEqual({ outcome: "placed", host: "svc-b" });
  });

  it("enabling clears the reason; forcing down marks it down and keeps servers off it", async () => {
    const en = await a().put(`/v2.1/os-services/${a1}`, { status: "enabled" });
    expect(en.body.service).toMatchObject({ status: "enabled", disabled_reason: null });
    const down = await a().put(`/v2.1/os-services/${b1}`, { forced_down: true });
    expect(down.status).toBe(200);
    expect(down.body.service).toMatchObject({ forced_down: true, state: "down", status: "enabled" });
    for (let i = 0; i < 2; i++) expect(await bootAndPlace()).toEqual({ outcome: "placed", host: "svc-a" });
    await a().put(`/v2.1/os-services/${b1}`, { forced_down: false });
  });

  it("with every host disabled, a boot finds no valid host", async () => {
    await a().put(`/v2.1/os-services/${a1}`, { status: "disabled" });
    await a().put(`/v2.1/os-services/${b1}`, { status: "disabled" });
    expect(await bootAndPlace()).toEqual({ outcome: "no_valid_host", host: null });
    await a().put(`/v2.1/os-services/${a1}`, { status: "enabled" });
    await a().put(`/v2.1/os-services/${b1}`, { status: "enabled" });
  });

  it.each([
    ["empty body", {}, "At least one of 'status' or 'forced_down' must be specified in the request body."],
    ["reason with enabled", { status: "enabled", disabled_reason: "x" }, "Specifying 'disabled_reason' with status 'enabled' is invalid."],
    ["unknown status", { status: "paused" }, null],
    ["forced_down not boolean", { forced_down: "yes" }, null],
    ["unknown field", { status: "enabled", host: "x" }, null],
  ])("refuses %s with 400", async (_l, body, message) => {
    const res = await a().put(`/v2.1/os-services/${a1}`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    if (message) expect(res.body.badRequest.message).toBe(message);
    expect(await service(a1)).toMatchObject({ status: "enabled", forced_down: false });
  });

  it("404 for an unknown id, 400 for a malformed one, 403 for a member", async () => {
    const unknown = randomUUID();
    const res = await a().put(`/v2.1/os-services/${unknown}`, { status: "disabled" });
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.message).toBe(`Service ${unknown} could not be found.`);
    expect((await a().put("/v2.1/os-services/42", { status: "disabled" })).status).toBe(400);
    expect((await client(t, MEMBER_P1).put(`/v2.1/os-services/${a1}`, { status: "disabled" })).status).toBe(403);
  });
});

describe("the 2.1 forms with {host, binary}", () => {
  it("disable and enable", async () => {
    const dis = await a().put("/v2.1/os-services/disable", { host: "svc-a", binary: "nova-compute" });
    expect(dis.status, JSON.stringify(dis.body)).toBe(200);
    expect(dis.body).toEqual({ service: { host: "svc-a", binary: "nova-compute", status: "disabled" } });
    expect((await service(a1)).status).toBe("disabled");
    expect((await bootAndPlace()).host).toBe("svc-b");
    const en = await a().put("/v2.1/os-services/enable", { host: "svc-a", binary: "nova-compute" });
    expect(en.body).toEqual({ service: { host: "svc-a", binary: "nova-compute", status: "enabled" } });
    expect((await service(a1)).status).toBe("enabled");
  });

  it("disable-log-reason", async () => {
    const res = await a().put("/v2.1/os-services/disable-log-reason", { host: "svc-b", binary: "nova-compute", disabled_reason: "disk swap" });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ service: { host: "svc-b", binary: "nova-compute", status: "disabled", disabled_reason: "disk swap" } });
    expect(await service(b1)).toMatchObject({ status: "disabled", disabled_reason: "disk swap" });
    expect((await bootAndPlace()).host).toBe("svc-a");
    await a().put("/v2.1/os-services/enable", { host: "svc-b", binary: "nova-compute" });
    expect(await service(b1)).toMatchObject({ status: "enabled", disabled_reason: null });
  });

  it("force-down", async () => {
    const res = await a().put("/v2.1/os-services/force-down", { host: "svc-a", binary: "nova-compute", forced_down: true });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ service: { host: "svc-a", binary: "nova-compute", forced_down: true } });
    expect(await service(a1)).toMatchObject({ forced_down: true, state: "down" });
    expect((await bootAndPlace()).host).toBe("svc-b");
    await a().put("/v2.1/os-services/force-down", { host: "svc-a", binary: "nova-compute", forced_down: false });
    expect(await service(a1)).toMatchObject({ forced_down: false, state: "up" });
  });

  it("unknown host or binary is 404; bad bodies 400; members 403", async () => {
    const res = await a().put("/v2.1/os-services/disable", { host: "ghost", binary: "nova-compute" });
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.message).toBe("Could not find binary nova-compute on host ghost.");
    expect((await a().put("/v2.1/os-services/disable", { host: "svc-a", binary: "nova-scheduler" })).status).toBe(404);
    expect((await a().put("/v2.1/os-services/disable", { host: "svc-a" })).status).toBe(400);
    expect((await a().put("/v2.1/os-services/disable-log-reason", { host: "svc-a", binary: "nova-compute" })).status).toBe(400);
    expect((await a().put("/v2.1/os-services/force-down", { host: "svc-a", binary: "nova-compute" })).status).toBe(400);
    expect((await client(t, MEMBER_P1).put("/v2.1/os-services/disable", { host: "svc-a", binary: "nova-compute" })).status).toBe(403);
    expect(await service(a1)).toMatchObject({ status: "enabled", forced_down: false });
  });
});
