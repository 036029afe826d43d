/**
 * Group commit of the common boot (api/servers/boot-batch.ts): concurrent boots from
 * different projects and networks share write statements; a boot whose batch fails gets
 * its own answer (a full pool: its 409, the others their 202) and writes nothing; boots of
 * one batch never share an address. Quotas off, so every boot takes the common path.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPort } from "../../api/ports.js";
import { bootBatchStats } from "../../api/servers/boot-batch.js";
import { as, createAuthApp, type AuthApp } from "./auth-support.js";

let t: AuthApp;
let image: string;
let writes: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Client = ReturnType<typeof as>;
let admin: Client;
let pa: Client;
let pb: Client;

async function network(who: Client, name: string, cidr: string): Promise<{ id: string; subnet: string }> {
  const net = await who.post("/v2.0/networks", { network: { name } });
  expect(net.status, JSON.stringify(net.body)).toBe(201);
  const sub = await who.post("/v2.0/subnets", { subnet: { network_id: net.body.network.id, cidr, ip_version: 4 } });
  expect(sub.status, JSON.stringify(sub.body)).toBe(201);
  return { id: net.body.network.id, subnet: sub.body.subnet.id };
}

const boot = (who: Client, name: string, net: string, count = 1) =>
  who.post("/v2.1/servers", { server: { name, flavorRef: "1", imageRef: image, networks: [{ uuid: net }], ...(count > 1 ? { min_count: count, max_count: count } : {}) } });

/** Addresses by instance name, of the servers whose names start with `prefix`. */
async function addresses(prefix: string): Promise<{ name: string; project_id: string; subnet_id: string; ip_address: string; port_project: string }[]> {
  return t.database.db("instances")
    .join("ports", "ports.device_id", "instances.id")
    .join("ip_allocations", "ip_allocations.port_id", "ports.id")
    .where("instances.name", "like", `${prefix}%`)
    .select("instances.name", "instances.project_id", "ip_allocations.subnet_id", "ip_allocations.ip_address", "ports.project_id as port_project");
}

/**
 * Holds the group commit busy: a boot on `gate` waits on an uncommitted fixed IP (a
 * fixed-IP claim takes no advisory lock, so the boot picks the same address and waits on
 * the primary key) until `release`, then loses the race and retries. What is submitted
 * meanwhile waits, and goes as one batch.
 */
async function holdCommitter(gate: { id: string }, fixedIp: string) {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const holder = t.database.db.transaction(async (trx) => {
    await createPort(trx, { networkId: gate.id, projectId: "admin", deviceId: null, deviceOwner: "", deviceIndex: null, fixedIp });
    await opened;
  });
  await sleep(100);
  const first = boot(admin, `gate-${fixedIp}`, gate.id).then((r) => r);
  await sleep(300);
  return {
    release: async () => {
      open();
      await holder;
      expect((await first).status).toBe(202);
    },
  };
}

beforeAll(async () => {
  t = await createAuthApp({ enforceQuotas: false });
  admin = as(t, t.tokens.admin!);
  pa = as(t, t.tokens["member-a"]!);
  pb = as(t, t.tokens["member-b"]!);
  expect((await admin.post("/v2.1/flavors", { flavor: { name: "m1.small", id: "1", ram: 512, vcpus: 1, disk: 1 } })).status).toBe(200);
  const img = await admin.post("/v2/images", { name: "cirros", disk_format: "qcow2", container_format: "bare", visibility: "public" });
  image = img.body.id;
  const up = await (await import("supertest")).default(t.app.server)
    .put(`/v2/images/${image}/file`)
    .set({ "X-Auth-Token": t.tokens.admin!, "content-type": "application/octet-stream" })
    .send(Buffer.alloc(64, 1));
  expect(up.status).toBe(204);
  t.database.db.on("query", (q: { sql: string }) => {
    if (q.sql.startsWith("WITH cand0")) writes.push(q.sql);
  });
});
afterAll(async () => t?.close());

describe("group commit of concurrent boots", () => {
  it("boots of different projects and networks share write statements, each with its own rows", async () => {
    const netA = await network(pa, "a", "10.1.0.0/24");
    const netB = await network(pb, "b", "10.2.0.0/24");
    const netAdmin = await network(admin, "adm", "10.3.0.0/24");
    const before = bootBatchStats(t.database.db);
    writes = [];
    const who: [Client, string, { id: string; subnet: string }][] = [[pa, "pa", netA], [pb, "pb", netB], [admin, "admin", netAdmin]];
    const asked = Array.from({ length: 24 }, (_, i) => who[i % 3]!);
    // inject: the 24 arrive at once, as from clients with their connections open.
    const token = { pa: t.tokens["member-a"]!, pb: t.tokens["member-b"]!, admin: t.tokens.admin! } as Record<string, string>;
    const injected = await Promise.all(
      asked.map(([, project, net], i) =>
        t.app.inject({
          method: "POST",
          url: "/v2.1/servers",
          headers: { "X-Auth-Token": token[project]! },
          payload: { server: { name: `mix-${project}-${i}`, flavorRef: "1", imageRef: image, networks: [{ uuid: net.id }] } },
        }),
      ),
    );
    const res = injected.map((r) => ({ status: r.statusCode, body: r.json() }));
    expect(res.map((r) => r.status)).toEqual(asked.map(() => 202));
    console.log(`24 concurrent boots: ${writes.length} write statements`);
    expect(writes.length).toBeLessThanOrEqual(6);
    const after = bootBatchStats(t.database.db);
    expect(after.boots - before.boots).toBe(24);
    expect(after.batches - before.batches).toBe(writes.length);

    // Every answer names its own server, of its own project, on its own network.
    const rows = await addresses("mix-");
    expect(rows).toHaveLength(24);
    for (const [i, r] of res.entries()) {
      const [, project, net] = asked[i]!;
      const inst = await t.database.db("instances").where({ id: r.body.server.id }).first("name", "project_id");
      expect(inst).toEqual({ name: `mix-${project}-${i}`, project_id: project });
      const own = rows.find((x) => x.name === inst.name)!;
      expect(own).toMatchObject({ project_id: project, port_project: project, subnet_id: net.subnet });
    }
    const ids = res.map((r) => r.body.server.id as string);
    // One schedule job per statement, together waking the scheduler for all 24.
    const jobs: { payload: { boots: number } }[] = await t.database.db("outbox").whereIn("job_id", ids.map((id) => `schedule-${id}`)).select("payload");
    expect(jobs).toHaveLength(writes.length);
    expect(jobs.reduce((n, j) => n + j.payload.boots, 0)).toBe(24);
    const acts = await t.database.db("instance_actions").whereIn("instance_id", ids).select("instance_id", "project_id", "request_id");
    expect(acts).toHaveLength(24);
    expect(new Set(acts.map((a) => a.request_id)).size).toBe(24);
    for (const a of acts) expect(a.project_id).toBe(asked[ids.indexOf(a.instance_id)]![1]);
  });

  it("a write's text is the same whatever its number of boots, so it stays one prepared statement", async () => {
    const net = await network(admin, "sizes", "10.7.0.0/24");
    writes = [];
    expect((await boot(admin, "size-1", net.id)).status).toBe(202);
    expect((await boot(admin, "size-3", net.id, 3)).status).toBe(202);
    expect(writes).toHaveLength(2);
    expect(writes[1]).toBe(writes[0]);
    expect((await addresses("size-")).map((r) => r.name).sort()).toEqual(["size-1", "size-3-1", "size-3-2", "size-3-3"]);
  });

  it("boots of one batch on one subnet never share an address, multi-creates included", async () => {
    const gate = await network(admin, "gate1", "10.4.0.0/24");
    const shared = await network(admin, "shared", "10.5.0.0/24");
    const held = await holdCommitter(gate, "10.4.0.2");
    const before = bootBatchStats(t.database.db);
    const pending = Array.from({ length: 12 }, (_, i) => boot(admin, `same-${i}-`, shared.id, i % 4 === 0 ? 3 : 1).then((r) => r));
    await sleep(300);
    await held.release();
    const res = await Promise.all(pending);
    expect(res.map((r) => r.status)).toEqual(pending.map(() => 202));
    const after = bootBatchStats(t.database.db);
    expect(after.batches - before.batches).toBeLessThanOrEqual(3); // the gate boot, then the 12 together (at most split once)
    const ips = (await addresses("same-")).map((r) => r.ip_address);
    expect(ips).toHaveLength(12 + 3 * 2);
    expect(new Set(ips).size).toBe(ips.length);
    // Handed out from the bottom of the pool, none skipped.
    const sorted = ips.map((ip) => Number(ip.split(".")[3])).sort((x, y) => x - y);
    expect(sorted).toEqual(Array.from({ length: 18 }, (_, i) => i + 2));
  });

  it("a boot whose network is full gets its 409 and writes nothing; the others of its batch get 202", async () => {
    const gate = await network(admin, "gate2", "10.6.0.0/24");
    const tiny = await network(admin, "tiny", "10.7.0.0/29"); // pool .2-.6
    const good = await network(pb, "good", "10.8.0.0/24");
    expect((await boot(admin, "fill", tiny.id, 5)).status).toBe(202);
    const countsBefore = {
      instances: (await t.database.db("instances").count("* as n").first())!.n,
      ports: (await t.database.db("ports").where({ network_id: tiny.id }).count("* as n").first())!.n,
    };
    const held = await holdCommitter(gate, "10.6.0.2");
    const before = bootBatchStats(t.database.db);
    const pending = [
      ...Array.from({ length: 4 }, (_, i) => boot(pb, `ok-${i}`, good.id).then((r) => r)),
      boot(admin, "full-1", tiny.id).then((r) => r),
      ...Array.from({ length: 4 }, (_, i) => boot(pb, `ok-${i + 4}`, good.id).then((r) => r)),
    ];
    await sleep(300);
    await held.release();
    const res = await Promise.all(pending);
    expect(res.map((r) => r.status)).toEqual([202, 202, 202, 202, 409, 202, 202, 202, 202]);
    expect(res[4]!.body.conflictingRequest.message).toMatch(new RegExp(`^No more IP addresses available on network ${tiny.id} `));
    const after = bootBatchStats(t.database.db);
    expect(after.failedBatches - before.failedBatches).toBe(1); // the nine went together and fell back
    expect(await t.database.db("instances").where({ name: "full-1" }).count("* as n").first()).toEqual({ n: 0 });
    expect((await t.database.db("ports").where({ network_id: tiny.id }).count("* as n").first())!.n).toBe(countsBefore.ports);
    expect((await t.database.db("instances").count("* as n").first())!.n).toBe(Number(countsBefore.instances) + 1 + 8);
    const ok = await addresses("ok-");
    expect(ok).toHaveLength(8);
    expect(new Set(ok.map((r) => r.ip_address)).size).toBe(8);
  });

  it("look-ups read together still answer each boot as its own project sees things", async () => {
    const privA = await network(pa, "priv-a", "10.9.0.0/24");
    const privB = await network(pb, "priv-b", "10.10.0.0/24");
    const img = await pa.post("/v2/images", { name: "a-only", disk_format: "qcow2", container_format: "bare", visibility: "private" });
    const lookups: string[] = [];
    const seen = (q: { sql: string }) => {
      if (q.sql.includes("json_to_recordset") && q.sql.includes("FROM flavors f")) lookups.push(q.sql);
    };
    t.database.db.on("query", seen);
    const token = { pa: t.tokens["member-a"]!, pb: t.tokens["member-b"]! } as Record<string, string>;
    const asks: [string, Record<string, unknown>][] = [
      ["pa", { networks: [{ uuid: privA.id }] }],
      ["pb", { networks: [{ uuid: privA.id }] }], // another project's private network
      ["pb", { networks: [{ uuid: privB.id }] }],
      ["pb", { networks: [{ uuid: privB.id }], imageRef: img.body.id }], // another project's private image (no file yet either)
      ["pa", { networks: [{ uuid: privA.id }], flavorRef: "no-such-flavor" }],
      ["pa", { networks: [{ uuid: privA.id }] }],
    ];
    const res = await Promise.all(
      asks.map(([who, extra], i) =>
        t.app.inject({
          method: "POST",
          url: "/v2.1/servers",
          headers: { "X-Auth-Token": token[who]! },
          payload: { server: { name: `vis-${i}`, flavorRef: "1", imageRef: image, ...extra } },
        }),
      ),
    );
    t.database.db.off("query", seen);
    expect(res.map((r) => r.statusCode)).toEqual([202, 400, 202, 400, 400, 202]);
    expect(res[1]!.json().badRequest.message).toBe(`Network ${privA.id} could not be found.`);
    expect(res[3]!.json().badRequest.message).toBe(`Image ${img.body.id} could not be found.`);
    expect(res[4]!.json().badRequest.message).toBe("Flavor no-such-flavor could not be found.");
    // The first look-up runs alone, the five that came meanwhile together.
    expect(lookups.length).toBeLessThan(asks.length);
  });
});
