/**
 * Faults: kill -9 of an agent in the middle of its spawns, restarted 3 s later; and
 * another agent killed for good. The restarted agent reconciles (half-built instances
 * reported failed and rescheduled or ERROR, running domains reported, deletes finished);
 * the dead host is marked down, gets no new servers, shows host_status UNKNOWN to
 * admins, its builds end in ERROR at the build deadline and its servers are deleted
 * locally (allocations and ports freed).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { createNetwork } from "../support/api-fixtures.js";
import { FAST_RECOVERY_ENV, apiClient, burst, deleteAllAndDrain, invariantsHold, prepare, settle } from "../support/faults.js";
import { TEST_REDIS_URL, uniqueName } from "../support/services.js";
import { startStack, waitFor, type Stack } from "../support/stack.js";

let stack: Stack;
const [restarted, steady, dead] = [uniqueName("fa-restart"), uniqueName("fa-steady"), uniqueName("fa-dead")];

beforeAll(async () => {
  stack = await startStack({
    schedulers: 1,
    env: { ...FAST_RECOVERY_ENV, CIRRUS_SERVICE_DOWN_TIME: "8", CIRRUS_BUILD_TIMEOUT: "40" },
    agents: [restarted, steady, dead].map((host) => ({ host, uri: "test:///default" })),
  });
}, 120_000);

afterAll(async () => stack?.stop());

it("recovers from an agent killed mid-spawn and from one that never comes back", async () => {
  const api = apiClient(stack.url, stack.token);
  const { imageId, flavorId } = await prepare(stack);
  const networkId = await createNetwork(stack, "10.77.0.0/20");
  const events: Promise<unknown>[] = [];
  const started = Date.now();
  try {
    const result = await burst([api], {
      count: 300,
      imageId,
      flavorId,
      deleteEvery: 3,
      networks: [{ uuid: networkId }],
      onProgress: (n) => {
        if (n === 90) {
          events.push(
            stack.signal(`agent-${restarted}`, "SIGKILL").then(async (code) => {
              await new Promise((r) => setTimeout(r, 3000));
              stack.restart(`agent-${restarted}`);
              return code;
            }),
          );
        }
        if (n === 150) events.push(stack.signal(`agent-${dead}`, "SIGKILL"));
      },
    });
    expect(await Promise.all(events)).toEqual(["SIGKILL", "SIGKILL"]);
    expect(result.accepted.length).toBe(300);
    const downAt = Date.now();

    const rows = await settle(stack, result.accepted, 100_000);
    // The dead host: down, and shown to admins as UNKNOWN (Nova 2.16: heartbeats stopped).
    const onDead = rows.filter((r) => r.host === dead && r.vm_state !== "deleted");
    const sample = onDead[0];
    if (sample) {
      const shown = await api("GET", `/v2.1/servers/${sample.id}`);
      expect(shown.body.server.host_status).toBe("UNKNOWN");
    }
    const placedOnDeadAfterDown: number = Number(
      (
        await stack.database.db("instances").whereIn("id", result.accepted).where({ host: dead }).where("created_at", ">", new Date(downAt + 1000)).count<{ c: number }[]>("* as c")
      )[0]!.c,
    );
    expect(placedOnDeadAfterDown).toBe(0);

    const report = await invariantsHold(stack, api, result.accepted, [restarted, steady], TEST_REDIS_URL);
    const faults: { message: string }[] = await stack.database.db("instance_faults").whereIn("instance_id", result.accepted).select("message");
    const faultKinds: Record<string, number> = {};
    for (const f of faults) {
      const kind = /timed out/.test(f.message) ? "build timeout" : /restarted while/.test(f.message) ? "agent restarted mid-build" : /Exceeded maximum/.test(f.message) ? "retries exhausted" : f.message.slice(0, 60);
      faultKinds[kind] = (faultKinds[kind] ?? 0) + 1;
    }
    const reconciled = (await stack.logs()).split("\n").filter((l) => l.includes("start-up reconciliation done")).map((l) => l.slice(0, 400));
    console.log(
      "fault-agent-kill",
      JSON.stringify({ accepted: result.accepted.length, deletes: result.deleted.length, statuses: result.statuses, ...report, problems: report.problems.slice(0, 10), onDeadHost: onDead.length, faultKinds, settledInMs: Date.now() - started, reconciled }),
    );
    expect(report.problems).toEqual([]);

    // Every server of the dead host can be deleted: locally, with its allocations and ports freed.
    const drained = await deleteAllAndDrain(stack, api, result.accepted, [restarted, steady], TEST_REDIS_URL);
    const ports = await stack.database.db("ports").whereIn("device_id", result.accepted).count<{ c: number }[]>("* as c");
    expect(Number(ports[0]!.c)).toBe(0);
    const local = await stack.database.db("instance_action_events").whereIn("event", ["api_delete_local", "conductor_delete_local"]).where("details", "like", "%is down%").count<{ c: number }[]>("* as c");
    console.log("fault-agent-kill drained", JSON.stringify({ ...drained, localDeletes: Number(local[0]!.c) }));
    if (onDead.length > 0) expect(Number(local[0]!.c)).toBeGreaterThan(0);
    await waitFor("nothing left", async () => true, 1000);
  } catch (err) {
    console.error(await stack.logs());
    throw err;
  }
}, 300_000);
