/**
 * Three scheduler processes race for two hosts with room for 50 servers in all: 200
 * simultaneous boots must end with exactly 50 ACTIVE, 150 ERROR "No valid host", and
 * no host over its capacity.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { createFlavor, uploadImage } from "../support/api-fixtures.js";
import { testGuestImage } from "../support/guest-image.js";
import { uniqueName } from "../support/services.js";
import { client, startStack, waitFor, type Stack } from "../support/stack.js";

let stack: Stack;
const hosts = [uniqueName("race-a"), uniqueName("race-b")];
// 25 VCPU per host at ratio 1: room for 25 one-vCPU servers each; memory and disk are plentiful.
const inventory = {
  CIRRUS_AGENT_VCPUS: "25",
  CIRRUS_CPU_ALLOCATION_RATIO: "1",
  CIRRUS_AGENT_MEMORY_MB: "1000000",
  CIRRUS_AGENT_DISK_GB: "100000",
};

beforeAll(async () => {
  stack = await startStack({
    schedulers: 3,
    agents: hosts.map((host) => ({ host, uri: "test:///default", env: inventory })),
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

it("never over-commits a host while three schedulers race", async () => {
  const api = client(stack);
  const image = await uploadImage(stack, await testGuestImage());
  await createFlavor(stack, { id: "one", ram: 64, vcpus: 1, disk: 1 });
  const accepted = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      api("POST", "/v2.1/servers", { server: { name: `race-${i}`, flavorRef: "one", imageRef: image, networks: "none" } }),
    ),
  );
  expect(accepted.map((r) => r.status)).toEqual(new Array(200).fill(202));
  const ids = accepted.map((r) => r.body.server.id as string);

  try {
    const final = await waitFor(
      "all 200 servers to settle",
      async () => {
        const rows: { id: string; vm_state: string; task_state: string | null; host: string | null }[] = await stack.database
          .db("instances")
          .whereIn("id", ids)
          .select("id", "vm_state", "task_state", "host");
        return rows.every((r) => r.task_state === null) ? rows : undefined;
      },
      180_000,
      1000,
    );
    const active = final.filter((r) => r.vm_state === "active");
    const failed = final.filter((r) => r.vm_state === "error");
    expect(active.length).toBe(50);
    expect(failed.length).toBe(150);

    const faults: { message: string }[] = await stack.database.db("instance_faults").whereIn("instance_id", failed.map((r) => r.id));
    expect(faults.length).toBe(150);
    expect(faults.every((f) => f.message.startsWith("No valid host was found"))).toBe(true);

    const usage: { name: string; used: number }[] = await stack.database
      .db("allocations as a")
      .join("resource_providers as rp", "rp.id", "a.provider_id")
      .where("a.resource_class", "VCPU")
      .groupBy("rp.name")
      .select("rp.name", stack.database.db.raw("sum(a.used)::int as used"));
    expect(usage.map((u) => u.used).sort()).toEqual([25, 25]);
    const perHost = hosts.map((h) => active.filter((r) => r.host === h).length);
    expect(perHost).toEqual([25, 25]);

    // The API tells the same story.
    const sample = await api("GET", `/v2.1/servers/${failed[0]!.id}`);
    expect(sample.body.server.status).toBe("ERROR");
    expect(sample.body.server.fault.message).toMatch(/^No valid host was found/);
  } catch (err) {
    console.error(await stack.logs());
    throw err;
  }
}, 300_000);
