/** IPv4 addresses claimed without a subnet-wide lock (api/ports.ts): order, reuse, concurrency. */
import request from "supertest";
import type { Knex } from "knex";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPort } from "../../api/ports.js";
import { ADMIN_TOKEN, createTestApp, type TestApp } from "../support/services.js";

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const auth = { "X-Auth-Token": ADMIN_TOKEN };

async function network(name: string, cidr: string): Promise<string> {
  const net = await request(t.app.server).post("/v2.0/networks").set(auth).send({ network: { name } });
  const sub = await request(t.app.server).post("/v2.0/subnets").set(auth).send({ subnet: { network_id: net.body.network.id, cidr } });
  expect(sub.status, JSON.stringify(sub.body)).toBe(201);
  return net.body.network.id as string;
}

const port = (networkId: string, fixedIp?: string) =>
  t.db.transaction((trx: Knex.Transaction) =>
    createPort(trx, { networkId, projectId: "admin", deviceId: null, deviceOwner: "", deviceIndex: null, ...(fixedIp ? { fixedIp } : {}) }),
  );

const addressOf = async (networkId: string, fixedIp?: string) => (await port(networkId, fixedIp)).fixed_ips[0]!.ip_address;

describe("IPv4 address claims", () => {
  it("hand out the address after the highest one in use, past a fixed IP", async () => {
    const net = await network("after-highest", "10.70.0.0/24");
    expect(await addressOf(net)).toBe("10.70.0.2");
    expect(await addressOf(net, "10.70.0.40")).toBe("10.70.0.40");
    expect(await addressOf(net)).toBe("10.70.0.41");
  });

  it("reuse freed addresses once the pool's top is reached, then report the pool full", async () => {
    const net = await network("reuse", "10.71.0.0/29"); // pool .2-.6
    const ports = [];
    for (let i = 0; i < 5; i++) ports.push(await port(net));
    expect(ports.map((p) => p.fixed_ips[0]!.ip_address)).toEqual(["10.71.0.2", "10.71.0.3", "10.71.0.4", "10.71.0.5", "10.71.0.6"]);
    await t.db("ports").whereIn("id", [ports[1]!.id, ports[3]!.id]).delete();
    expect(await addressOf(net)).toBe("10.71.0.3");
    expect(await addressOf(net)).toBe("10.71.0.5");
    await expect(port(net)).rejects.toThrow(/No more IP addresses available/);
  });

  it("give concurrent transactions distinct addresses without one waiting for another's commit", async () => {
    const net = await network("concurrent", "10.72.0.0/24");
    // Both transactions stay open while each claims: a subnet-wide lock would deadlock this test.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let claimed = 0;
    const both = [0, 1].map(() =>
      t.db.transaction(async (trx: Knex.Transaction) => {
        const p = await createPort(trx, { networkId: net, projectId: "admin", deviceId: null, deviceOwner: "", deviceIndex: null });
        if (++claimed === 2) release();
        await held;
        return p.fixed_ips[0]!.ip_address;
      }),
    );
    const got = await Promise.race([Promise.all(both), new Promise<string[]>((_, reject) => setTimeout(() => reject(new Error("claims waited for each other")), 10_000))]);
    expect(new Set(got)).toEqual(new Set(["10.72.0.2", "10.72.0.3"]));
  });
});
