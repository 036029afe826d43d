/** os-instance-actions at 2.1: the create and delete actions the boot path writes, with events for admins. */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { placeInstance } from "../../scheduler/place.js";
import { MEMBER_P1, MEMBER_P2, admin, bootables, client, createExtApp, registerHost, type ExtApp, placementDeps } from "./ext-support.js";

let t: ExtApp;
let serverId: string;
let createRequestId: string;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/;

beforeAll(async () => {
  t = await createExtApp();
  const { imageId } = await bootables(t);
  await registerHost(t, "ia-host");
  const res = await client(t, MEMBER_P1).post("/v2.1/servers", { server: { name: "acted", flavorRef: "1", imageRef: imageId, networks: "none" } });
  expect(res.status).toBe(202);
  serverId = res.body.server.id;
  createRequestId = res.headers["x-openstack-request-id"] as string;
  const deps = placementDeps(t);
  expect(await placeInstance(deps, serverId, createRequestId)).toBe("placed");
});
afterAll(async () => t?.close());

describe("GET /v2.1/servers/{id}/os-instance-actions", () => {
  it("lists the create action with its request id (2.1 fields)", async () => {
    const res = await client(t, MEMBER_P1).get(`/v2.1/servers/${serverId}/os-instance-actions`);
    expect(res.status).toBe(200);
    expect(res.body.instanceActions).toHaveLength(1);
    const a = res.body.instanceActions[0];
    expect(Object.keys(a).sort()).toEqual(["action", "instance_uuid", "message", "project_id", "request_id", "start_time", "user_id"]);
    expect(a).toMatchObject({ action: "create", instance_uuid: serverId, request_id: createRequestId, project_id: "p1", user_id: "u1", message: null });
    expect(a.start_time).toMatch(TIME);
  });

  it("lists newest first once there is a second action", async () => {
    const del = await client(t, MEMBER_P1).del(`/v2.1/servers/${serverId}`);
    expect(del.status).toBe(204);
    const res = await client(t, MEMBER_P1).get(`/v2.1/servers/${serverId}/os-instance-actions`);
    expect(res.body.instanceActions.map((x: { action: string }) => x.action)).toEqual(["delete", "create"]);
    expect(res.body.instanceActions[0].request_id).toBe(del.headers["x-openstack-request-id"]);
  });

  it("404 for an unknown server, a malformed id, or another project's server", async () => {
    const unknown = randomUUID();
    const res = await client(t, MEMBER_P1).get(`/v2.1/servers/${unknown}/os-instance-actions`);
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.message).toBe(`Instance ${unknown} could not be found.`);
    expect((await client(t, MEMBER_P1).get("/v2.1/servers/nope/os-instance-actions")).status).toBe(404);
    expect((await client(t, MEMBER_P2).get(`/v2.1/servers/${serverId}/os-instance-actions`)).status).toBe(404);
    expect((await client(t, MEMBER_P2).get(`/v2.1/servers/${serverId}/os-instance-actions/${createRequestId}`)).status).toBe(404);
  });
});

describe("GET /v2.1/servers/{id}/os-instance-actions/{request_id}", () => {
  it("shows the action with its events to an admin", async () => {
    const res = await admin(t).get(`/v2.1/servers/${serverId}/os-instance-actions/${createRequestId}`);
    expect(res.status).toBe(200);
    const a = res.body.instanceAction;
    expect(a).toMatchObject({ action: "create", request_id: createRequestId, instance_uuid: serverId });
    expect(a.events.map((e: { event: string }) => e.event)).toEqual(["schedule_instances"]);
    const e = a.events[0];
    expect(Object.keys(e).sort()).toEqual(["event", "finish_time", "result", "start_time", "traceback"]);
    expect(e).toMatchObject({ result: "Success", traceback: null });
    expect(e.start_time).toMatch(TIME);
    expect(e.finish_time).toMatch(TIME);
  });

  it("a member sees the action without events (2.1 policy)", async () => {
    const res = await client(t, MEMBER_P1).get(`/v2.1/servers/${serverId}/os-instance-actions/${createRequestId}`);
    expect(res.status).toBe(200);
    expect(res.body.instanceAction.events).toBeUndefined();
    expect(res.body.instanceAction.action).toBe("create");
  });

  it("404 for an unknown request id", async () => {
    const res = await admin(t).get(`/v2.1/servers/${serverId}/os-instance-actions/req-${randomUUID()}`);
    expect(res.status).toBe(404);
    expect(res.body.itemNotFound.message).toMatch(/^Action req-[0-9a-f-]+ not found$/);
  });

  it("a deleted server's actions are gone (404) at 2.1", async () => {
    await t.database.db("instances").where({ id: serverId }).update({ vm_state: "deleted", task_state: null, deleted_at: t.database.db.fn.now() });
    expect((await admin(t).get(`/v2.1/servers/${serverId}/os-instance-actions`)).status).toBe(404);
  });
});
