/**
 * Server actions as the API gates them (202, or 409 with Nova's message), and the
 * server sub-resources and list features: PUT, metadata, tags, filters, sorting and
 * paging across deletes. Agents are not running here: the action tests check the
 * task_state and the job written for the host; end-to-end tests run the agents.
 */
import { randomUUID } from "node:crypto";
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, createTestApp, tableCounts, type TestApp } from "../support/services.js";

let t: TestApp;
const auth = { "X-Auth-Token": ADMIN_TOKEN };
const srv = () => request(t.app.server);
let imageId: string;
let netId: string;

async function boot(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await srv().post("/v2.1/servers").set(auth).send({ server: { name, flavorRef: "1", imageRef: imageId, networks: [{ uuid: netId }], ...extra } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.server.id;
}

/** Puts a server where an agent would have: on host h1, in the given state. */
async function place(id: string, vm_state: string, task_state: string | null = null) {
  await t.db("instances").where({ id }).update({ vm_state, task_state, host: "h1", node: "h1", power_state: vm_state === "active" ? 1 : 4 });
}

const action = (id: string, body: unknown) => srv().post(`/v2.1/servers/${id}/action`).set(auth).send(body as object);

beforeAll(async () => {
  t = await createTestApp({ enforceQuotas: false }); // boots far more than 10 servers in one project
  await t.app.listen({ port: 0, host: "127.0.0.1" });
  await srv().post("/v2.1/flavors").set(auth).send({ flavor: { name: "f1", id: "1", ram: 64, vcpus: 1, disk: 1 } }).expect(200);
  await srv().post("/v2.1/flavors").set(auth).send({ flavor: { name: "f2", id: "2", ram: 128, vcpus: 2, disk: 2 } }).expect(200);
  const img = await srv().post("/v2/images").set(auth).send({ name: "img", disk_format: "qcow2", container_format: "bare", visibility: "public" });
  imageId = img.body.id;
  await srv().put(`/v2/images/${imageId}/file`).set(auth).set("content-type", "application/octet-stream").send(Buffer.alloc(4096, 3)).expect(204);
  const n = await srv().post("/v2.0/networks").set(auth).send({ network: { name: "net" } });
  netId = n.body.network.id;
  await srv().post("/v2.0/subnets").set(auth).send({ subnet: { network_id: netId, cidr: "10.9.0.0/24", ip_version: 4 } }).expect(201);
});

afterAll(async () => t.close());

describe("action gating", () => {
  it("os-stop on an ACTIVE server is 202, sets powering-off and writes the host's job", async () => {
    const id = await boot("stop-me");
    await place(id, "active");
    const res = await action(id, { "os-stop": null });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const row = await t.db("instances").where({ id }).first();
    expect(row.task_state).toBe("powering-off");
    const job = await t.db("outbox").where({ queue: "compute.h1" }).whereRaw("payload->'instance'->>'instance_id' = ?", [id]).first();
    expect(job.payload).toMatchObject({ kind: "power", action: "stop" });
    const shown = await srv().get(`/v2.1/servers/${id}`).set(auth);
    expect(shown.body.server["OS-EXT-STS:task_state"]).toBe("powering-off");
    const again = await action(id, { "os-stop": null });
    expect(again.status).toBe(409);
    expect(again.body).toEqual({ conflictingRequest: { code: 409, message: `Cannot 'stop' instance ${id} while it is in task_state powering-off` } });
    const actions = await srv().get(`/v2.1/servers/${id}/os-instance-actions`).set(auth);
    if (actions.status === 200) expect(actions.body.instanceActions.map((a: { action: string }) => a.action)).toContain("stop");
  });

  it.each([
    [{ "os-start": null }, "start", "active"],
    [{ unpause: null }, "unpause", "active"],
    [{ resume: null }, "resume", "active"],
    [{ revertResize: null }, "revertResize", "active"],
    [{ confirmResize: null }, "confirmResize", "active"],
  ])("%j from ACTIVE is 409 naming the vm_state", async (body, nova, state) => {
    const id = await boot(`gate-${nova}`);
    await place(id, state);
    const before = await tableCounts(t.db);
    const res = await action(id, body);
    expect(res.status).toBe(409);
    expect(res.body.conflictingRequest.message).toBe(`Cannot '${nova}' instance ${id} while it is in vm_state ${state}`);
    expect(await tableCounts(t.db)).toEqual(before);
  });

  it.each([
    [{ "os-stop": null }, "stopped", "stop"],
    [{ pause: null }, "stopped", "pause"],
    [{ suspend: null }, "paused", "suspend"],
    [{ reboot: { type: "SOFT" } }, "stopped", "reboot"],
    [{ createImage: { name: "x" } }, "error", "createImage"],
  ])("%j from %s is 409", async (body, state, nova) => {
    const id = await boot(`gate2-${nova}`);
    await place(id, state);
    const res = await action(id, body);
    expect(res.status).toBe(409);
    expect(res.body.conflictingRequest.message).toBe(`Cannot '${nova}' instance ${id} while it is in vm_state ${state}`);
  });

  it("HARD reboot is allowed from SHUTOFF, SOFT is not", async () => {
    const id = await boot("reboot-hard");
    await place(id, "stopped");
    expect((await action(id, { reboot: { type: "SOFT" } })).status).toBe(409);
    expect((await action(id, { reboot: { type: "HARD" } })).status).toBe(202);
    expect((await t.db("instances").where({ id }).first()).task_state).toBe("rebooting_hard");
    // Nova's status map has no reboot entry for a stopped server: it stays SHUTOFF while rebooting.
    expect((await srv().get(`/v2.1/servers/${id}`).set(auth)).body.server.status).toBe("SHUTOFF");
  });

  it("a server still building cannot be acted on", async () => {
    const id = await boot("building");
    const res = await action(id, { "os-stop": null });
    expect(res.status).toBe(409);
    expect(res.body.conflictingRequest.message).toBe(`Cannot 'stop' instance ${id} while it is in vm_state building`);
  });

  it("bad action bodies are 400 and change nothing", async () => {
    const id = await boot("bad-actions");
    await place(id, "active");
    const before = await tableCounts(t.db);
    for (const body of [{}, { reboot: {} }, { reboot: { type: "GENTLE" } }, { "os-stop": null, pause: null }, { fly: null }, { createImage: {} }, { resize: {} }, { rebuild: {} }]) {
      const res = await action(id, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.badRequest.message).toEqual(expect.any(String));
    }
    expect(await tableCounts(t.db)).toEqual(before);
    expect((await action(randomUUID(), { "os-stop": null })).status).toBe(404);
  });

  it("lock and unlock record locked_reason; rebuild answers with the server", async () => {
    const id = await boot("lockable");
    await place(id, "active");
    expect((await action(id, { lock: { locked_reason: "maintenance" } })).status).toBe(202);
    let row = await t.db("instances").where({ id }).first();
    expect([row.locked, row.locked_reason]).toEqual([true, "maintenance"]);
    expect((await action(id, { unlock: null })).status).toBe(202);
    row = await t.db("instances").where({ id }).first();
    expect(row.locked).toBe(false);

    const rebuilt = await action(id, { rebuild: { imageRef: imageId, name: "renamed" } });
    expect(rebuilt.status, JSON.stringify(rebuilt.body)).toBe(202);
    expect(rebuilt.body.server).toMatchObject({ id, name: "renamed", status: "REBUILD" });
    expect(rebuilt.headers.location).toMatch(new RegExp(`/v2.1/servers/${id}$`));
  });

  it("createImage answers 202 with the new image's Location and a queued snapshot record", async () => {
    const id = await boot("snap-me");
    await place(id, "active");
    const res = await action(id, { createImage: { name: "snap", metadata: { purpose: "test" } } });
    expect(res.status).toBe(202);
    const imageUrl = res.headers.location as string;
    expect(imageUrl).toMatch(/\/v2\/images\/[0-9a-f-]{36}$/);
    const img = await srv().get(new URL(imageUrl).pathname).set(auth);
    expect(img.body).toMatchObject({ name: "snap", status: "queued", instance_uuid: id, image_type: "snapshot", purpose: "test" });
  });

  it("resize refuses the same flavor and a smaller disk", async () => {
    const id = await boot("resize-me");
    await place(id, "active");
    expect((await action(id, { resize: { flavorRef: "1" } })).body.badRequest.message).toBe("When resizing, instances must change flavor!");
    expect((await action(id, { resize: { flavorRef: "nope" } })).status).toBe(400);
  });

  it("console output of a building server is 409; without a queue connection 503", async () => {
    const building = await boot("console-building");
    expect((await action(building, { "os-getConsoleOutput": { length: 5 } })).status).toBe(409);
    const id = await boot("console");
    await place(id, "active");
    expect((await action(id, { "os-getConsoleOutput": { length: 5 } })).status).toBe(503);
    expect((await action(id, { "os-getConsoleOutput": { length: -2 } })).status).toBe(400);
  });
});

describe("multi-create", () => {
  it("creates max_count servers named <name>-N under one reservation id", async () => {
    const res = await srv().post("/v2.1/servers").set(auth).send({
      server: { name: "many", flavorRef: "1", imageRef: imageId, networks: [{ uuid: netId }], min_count: 3, max_count: 3 },
    });
    expect(res.status).toBe(202);
    const first = await t.db("instances").where({ id: res.body.server.id }).first();
    const all = await t.db("instances").where({ reservation_id: first.reservation_id }).orderBy("launch_index");
    expect(all.map((r: { name: string; launch_index: number }) => [r.name, r.launch_index])).toEqual([["many-1", 0], ["many-2", 1], ["many-3", 2]]);
    const jobs = await t.db("outbox").whereIn("job_id", all.map((r: { id: string }) => `schedule-${r.id}`));
    expect(jobs.map((j: { payload: { boots?: number } }) => j.payload.boots ?? 1).reduce((n: number, b: number) => n + b, 0)).toBe(3);
    const listed = await srv().get(`/v2.1/servers?reservation_id=${first.reservation_id}`).set(auth);
    expect(listed.body.servers.length).toBe(3);
  });

  it("answers only the reservation id when asked, and refuses min_count > max_count", async () => {
    const res = await srv().post("/v2.1/servers").set(auth).send({
      server: { name: "resv", flavorRef: "1", imageRef: imageId, networks: [{ uuid: netId }], max_count: 2, return_reservation_id: true },
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ reservation_id: expect.stringMatching(/^r-[0-9a-f]{8}$/) });
    const before = await tableCounts(t.db);
    const bad = await srv().post("/v2.1/servers").set(auth).send({ server: { name: "x", flavorRef: "1", imageRef: imageId, networks: "none", min_count: 3, max_count: 2 } });
    expect(bad.status).toBe(400);
    expect(await tableCounts(t.db)).toEqual(before);
  });
});

describe("PUT /servers/{id}, metadata and tags", () => {
  it("renames and describes a server", async () => {
    const id = await boot("old-name");
    const res = await srv().put(`/v2.1/servers/${id}`).set(auth).send({ server: { name: "new-name", description: "d" } });
    expect(res.status).toBe(200);
    expect(res.body.server.name).toBe("new-name");
    expect((await srv().put(`/v2.1/servers/${id}`).set(auth).send({ server: { flavorRef: "2" } })).status).toBe(400);
    expect((await srv().put(`/v2.1/servers/${randomUUID()}`).set(auth).send({ server: { name: "x" } })).status).toBe(404);
  });

  it("metadata: set, merge, item get/put/delete, mismatch and limits", async () => {
    const id = await boot("meta", { metadata: { a: "1" } });
    const base = `/v2.1/servers/${id}/metadata`;
    expect((await srv().get(base).set(auth)).body).toEqual({ metadata: { a: "1" } });
    expect((await srv().post(base).set(auth).send({ metadata: { b: "2" } })).body).toEqual({ metadata: { a: "1", b: "2" } });
    expect((await srv().put(base).set(auth).send({ metadata: { c: "3" } })).body).toEqual({ metadata: { c: "3" } });
    expect((await srv().get(`${base}/c`).set(auth)).body).toEqual({ meta: { c: "3" } });
    expect((await srv().get(`${base}/zz`).set(auth)).status).toBe(404);
    expect((await srv().put(`${base}/d`).set(auth).send({ meta: { d: "4" } })).body).toEqual({ meta: { d: "4" } });
    expect((await srv().put(`${base}/d`).set(auth).send({ meta: { e: "4" } })).status).toBe(400);
    expect((await srv().delete(`${base}/d`).set(auth)).status).toBe(204);
    expect((await srv().delete(`${base}/d`).set(auth)).status).toBe(404);
    expect((await srv().post(base).set(auth).send({ metadata: { k: 5 } })).status).toBe(400);
    expect((await srv().post(base).set(auth).send({ metadata: { ["x".repeat(256)]: "v" } })).status).toBe(400);
    const many = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, "v"]));
    const over = await srv().put(base).set(auth).send({ metadata: many });
    expect(over.status).toBe(403);
    expect((await srv().get(base).set(auth)).body).toEqual({ metadata: { c: "3" } });
  });

  it("tags: replace, add (201 then 204), check, remove, limits", async () => {
    const id = await boot("tagged");
    const base = `/v2.1/servers/${id}/tags`;
    expect((await srv().put(base).set(auth).send({ tags: ["b", "a", "a"] })).body).toEqual({ tags: ["a", "b"] });
    expect((await srv().put(`${base}/c`).set(auth)).status).toBe(201);
    expect((await srv().put(`${base}/c`).set(auth)).status).toBe(204);
    expect((await srv().get(`${base}/c`).set(auth)).status).toBe(204);
    expect((await srv().get(`${base}/nope`).set(auth)).status).toBe(404);
    expect((await srv().delete(`${base}/c`).set(auth)).status).toBe(204);
    expect((await srv().delete(`${base}/c`).set(auth)).status).toBe(404);
    expect((await srv().put(base).set(auth).send({ tags: ["a,b"] })).status).toBe(400);
    expect((await srv().put(base).set(auth).send({ tags: ["x".repeat(61)] })).status).toBe(400);
    expect((await srv().put(base).set(auth).send({ tags: Array.from({ length: 51 }, (_, i) => `t${i}`) })).status).toBe(400);
    expect((await srv().get(base).set(auth)).body).toEqual({ tags: ["a", "b"] });
    expect((await srv().delete(base).set(auth)).status).toBe(204);
    expect((await srv().get(base).set(auth)).body).toEqual({ tags: [] });
  });
});

describe("list filters, sorting and paging", () => {
  const ids: Record<string, string> = {};
  beforeAll(async () => {
    for (const name of ["flt-a", "flt-b", "flt-c", "flt-d"]) ids[name] = await boot(name);
    await srv().put(`/v2.1/servers/${ids["flt-a"]}/tags`).set(auth).send({ tags: ["red", "big"] }).expect(200);
    await srv().put(`/v2.1/servers/${ids["flt-b"]}/tags`).set(auth).send({ tags: ["red"] }).expect(200);
    await t.db("instances").where({ id: ids["flt-c"] }).update({ flavor: t.db.raw(`jsonb_set(flavor, '{id}', '"2"')`), locked: true });
  });

  const names = async (query: string) => {
    const res = await srv().get(`/v2.1/servers?name=^flt-&${query}`).set(auth);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return (res.body.servers as { name: string }[]).map((s) => s.name).sort();
  };

  it("filters by tags, tags-any, not-tags, not-tags-any, flavor, image, ip, locked", async () => {
    expect(await names("tags=red,big")).toEqual(["flt-a"]);
    expect(await names("tags-any=big,red")).toEqual(["flt-a", "flt-b"]);
    expect(await names("not-tags=red,big")).toEqual(["flt-b", "flt-c", "flt-d"]);
    expect(await names("not-tags-any=red")).toEqual(["flt-c", "flt-d"]);
    expect(await names("flavor=2")).toEqual(["flt-c"]);
    expect(await names(`image=${imageId}`)).toEqual(["flt-a", "flt-b", "flt-c", "flt-d"]);
    expect(await names(`image=${randomUUID()}`)).toEqual([]);
    expect(await names("locked=true")).toEqual(["flt-c"]);
    const ip = (await t.db("ports").join("ip_allocations", "ip_allocations.port_id", "ports.id").where("ports.device_id", ids["flt-d"]).first("ip_address")).ip_address;
    expect(await names(`ip=^${ip.replace(/\./g, "\\.")}$`)).toEqual(["flt-d"]);
    expect((await srv().get("/v2.1/servers?locked=maybe").set(auth)).status).toBe(400);
  });

  it("sorts by display_name both ways, refuses unknown keys", async () => {
    const asc = await srv().get("/v2.1/servers?name=^flt-&sort_key=display_name&sort_dir=asc").set(auth);
    expect(asc.body.servers.map((s: { name: string }) => s.name)).toEqual(["flt-a", "flt-b", "flt-c", "flt-d"]);
    const desc = await srv().get("/v2.1/servers?name=^flt-&sort_key=display_name&sort_dir=desc").set(auth);
    expect(desc.body.servers.map((s: { name: string }) => s.name)).toEqual(["flt-d", "flt-c", "flt-b", "flt-a"]);
    expect((await srv().get("/v2.1/servers?sort_key=bogus").set(auth)).status).toBe(400);
    expect((await srv().get("/v2.1/servers?sort_key=display_name&sort_dir=up").set(auth)).status).toBe(400);
  });

  it("pages through a sorted list with deletes in between, without repeats or gaps", async () => {
    const seen: string[] = [];
    let url = "/v2.1/servers?name=^flt-&sort_key=display_name&sort_dir=asc&limit=1";
    let deleted = false;
    for (let guard = 0; guard < 10 && url; guard++) {
      const page = await srv().get(url.replace(/^https?:\/\/[^/]+/, "")).set(auth);
      expect(page.status).toBe(200);
      for (const s of page.body.servers as { name: string; id: string }[]) seen.push(s.name);
      if (!deleted && seen.length === 1) {
        // Delete the page's marker and the next one: paging must go on from the deleted marker.
        await srv().delete(`/v2.1/servers/${ids["flt-a"]}`).set(auth).expect(204);
        await srv().delete(`/v2.1/servers/${ids["flt-b"]}`).set(auth).expect(204);
        deleted = true;
      }
      url = page.body.servers_links?.find((l: { rel: string }) => l.rel === "next")?.href ?? "";
    }
    expect(seen).toEqual(["flt-a", "flt-c", "flt-d"]);
  });

  it("changes-since lists servers deleted since then, with status DELETED", async () => {
    const since = new Date(Date.now() - 60_000).toISOString();
    const res = await srv().get(`/v2.1/servers/detail?name=^flt-&changes-since=${encodeURIComponent(since)}`).set(auth);
    const byName = Object.fromEntries((res.body.servers as { name: string; status: string }[]).map((s) => [s.name, s.status]));
    expect(byName["flt-a"]).toBe("DELETED");
    expect(byName["flt-c"]).toBe("BUILD");
    expect((await srv().get("/v2.1/servers?changes-since=yesterday").set(auth)).status).toBe(400);
  });
});
