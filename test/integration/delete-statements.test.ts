/**
 * DELETE of a server on a live host is one statement (api/servers/delete-on-host.ts) and
 * writes what the transactional path writes: task_state deleting, the delete action, the
 * agent's delete job (same queue, id and payload). The other cases fall through to the
 * transaction and keep their answers.
 */
import request from "supertest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../../common/ids.js";
import { instanceNameFromSeq } from "../../common/instance-name.js";
import { computeQueueName } from "../../common/queues.js";
import { flavorAndImage } from "../support/boot-fixtures.js";
import { ADMIN_TOKEN, createTestApp, type TestApp } from "../support/services.js";
import { as, createAuthApp } from "./auth-support.js";

let t: TestApp;
const auth = { "X-Auth-Token": ADMIN_TOKEN };
let imageId: string;
let sql: string[] = [];

beforeAll(async () => {
  t = await createTestApp({ enforceQuotas: false });
  ({ imageId } = await flavorAndImage(t.app, auth));
  t.db.on("query", (q: { sql: string }) => sql.push(q.sql));
});
afterAll(async () => t.close());

/** A server placed on `host` (as the scheduler would leave it after a spawn), the host's service up or down. */
async function serverOn(host: string, up: boolean): Promise<{ id: string; seq: number }> {
  const res = await request(t.app.server).post("/v2.1/servers").set(auth).send({ server: { name: "d", flavorRef: "1", imageRef: imageId, networks: "none" } });
  expect(res.status).toBe(202);
  const id = res.body.server.id as string;
  await t.db("compute_services")
    .insert({ id: newId(), host, hypervisor_type: "QEMU", hypervisor_version: 1, hypervisor_hostname: host, host_ip: "10.0.0.1", libvirt_uri: "test:///default",
      last_seen_at: up ? t.db.fn.now() : t.db.raw("now() - interval '1 hour'") })
    .onConflict("host").merge(["last_seen_at"]);
  await t.db("instances").where({ id }).update({ host, node: host, vm_state: "active", task_state: null, power_state: 1 });
  const { seq } = await t.db("instances").where({ id }).first("seq");
  return { id, seq };
}

async function del(id: string) {
  sql = [];
  const res = await request(t.app.server).delete(`/v2.1/servers/${id}`).set(auth);
  const seen = sql;
  sql = [];
  return { status: res.status, statements: seen };
}

describe("DELETE /servers/{id}", () => {
  it("a server on a live host: one statement, the job the agent expects", async () => {
    const { id, seq } = await serverOn("node 🚀 1", true);
    const { status, statements } = await del(id);
    expect(status).toBe(204);
    expect(statements).toHaveLength(1);
    expect(await t.db("instances").where({ id }).first("vm_state", "task_state")).toEqual({ vm_state: "active", task_state: "deleting" });
    const action = await t.db("instance_actions").where({ instance_id: id, action: "delete" }).first("request_id", "project_id");
    expect(action?.project_id).toBe("admin");
    const job = await t.db("outbox").where({ job_id: `delete-${id}` }).first("queue", "job_name", "payload");
    expect(job).toEqual({
      queue: computeQueueName("node 🚀 1"),
      job_name: "delete",
      payload: { kind: "delete", request_id: action!.request_id, instance: { instance_id: id, instance_name: instanceNameFromSeq(seq) } },
    });
  });

  it("a second DELETE while one is in flight: accepted, nothing written twice", async () => {
    const { id } = await serverOn("node-2", true);
    expect((await del(id)).status).toBe(204);
    const { status, statements } = await del(id);
    expect(status).toBe(204);
    expect(statements.length).toBeGreaterThan(1); // fell through to the transaction
    expect(await t.db("outbox").where({ job_id: `delete-${id}` }).count("* as n").first()).toEqual({ n: 1 });
  });

  it("a server on a host that is down is deleted locally, as before", async () => {
    const { id } = await serverOn("node-3", false);
    expect((await del(id)).status).toBe(204);
    expect(await t.db("instances").where({ id }).first("vm_state")).toEqual({ vm_state: "deleted" });
    expect(await t.db("outbox").where({ job_id: `delete-${id}` }).count("* as n").first()).toEqual({ n: 0 });
  });

  it("a locked server is 409 for a member of its project, another project's is 404; nothing changes", async () => {
    const a = await createAuthApp({ enforceQuotas: false });
    try {
      const host = "node-5";
      await a.database.db("compute_services").insert({ id: newId(), host, hypervisor_type: "QEMU", hypervisor_version: 1, hypervisor_hostname: host, host_ip: "10.0.0.1", libvirt_uri: "test:///default", last_seen_at: a.database.db.fn.now() });
      const place = async (project: string, locked: boolean) => {
        const id = newId();
        await a.database.db("instances").insert({
          id, name: "x", project_id: project, user_id: "u", vm_state: "active", task_state: null, power_state: 1, host, node: host, locked,
          flavor: JSON.stringify({ id: "1", name: "m1", vcpus: 1, ram: 512, disk: 1, ephemeral: 0, swap: 0, extra_specs: {} }),
          image: JSON.stringify({}), image_id: null, reservation_id: "r-x", requested_networks: "[]",
        });
        return id;
      };
      const mine = await place("pa", true);
      const theirs = await place("pb", false);
      const member = as(a, a.tokens["member-a"]!);
      const r1 = await member.del(`/v2.1/servers/${mine}`);
      expect(r1.status).toBe(409);
      expect(r1.body.conflictingRequest.message).toBe(`Instance ${mine} is locked`);
      const r2 = await member.del(`/v2.1/servers/${theirs}`);
      expect(r2.status).toBe(404);
      for (const id of [mine, theirs]) {
        expect(await a.database.db("instances").where({ id }).first("task_state")).toEqual({ task_state: null });
        expect(await a.database.db("outbox").where({ job_id: `delete-${id}` }).count("* as n").first()).toEqual({ n: 0 });
      }
    } finally {
      await a.close();
    }
  });
});
