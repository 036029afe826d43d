/**
 * Fault: Postgres crashes (immediate stop) mid-burst and comes back 3 s later. While it
 * is away the API answers 503 with Retry-After at once (no request hangs); it recovers
 * without a restart (the pool drops dead connections); the burst's client retries 5xx
 * and refused connections with the same Idempotency-Key, so nothing accepted is lost and
 * nothing is created twice; scheduler and conductor jobs that failed are retried.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { FAST_RECOVERY_ENV, apiClient, burst, deleteAllAndDrain, invariantsHold, prepare, settle } from "../support/faults.js";
import { PrivatePostgres } from "../support/private-services.js";
import { TEST_REDIS_URL, uniqueName } from "../support/services.js";
import { startStack, type Stack } from "../support/stack.js";

let stack: Stack;
let pg: PrivatePostgres;
const hosts = [uniqueName("fp-a"), uniqueName("fp-b")];

beforeAll(async () => {
  pg = await PrivatePostgres.create();
  stack = await startStack({ schedulers: 1, databaseRoot: pg.rootUrl, env: FAST_RECOVERY_ENV, agents: hosts.map((host) => ({ host, uri: "test:///default" })) });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await pg?.destroy();
});

it("answers 503 quickly while Postgres is down and loses nothing it accepted", async () => {
  const api = apiClient(stack.url, stack.token, 20_000);
  const { imageId, flavorId } = await prepare(stack);
  let outage: Promise<void> | null = null;
  const duringOutage: { status: number; ms: number }[] = [];
  let down = false;
  const started = Date.now();
  try {
    const probe = (async () => {
      // A steady trickle of reads and boots while Postgres is away: each must answer, fast.
      while (!outage) await new Promise((r) => setTimeout(r, 100));
      while (down) {
        const res = await api("GET", "/v2.1/servers?limit=5").catch(() => ({ status: 0, ms: 0 }));
        duringOutage.push({ status: res.status, ms: res.ms });
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const result = await burst([api], {
      count: 300,
      imageId,
      flavorId,
      deleteEvery: 3,
      onProgress: (n) => {
        if (n === 120 && !outage) {
          down = true;
          outage = (async () => {
            await pg.crash();
            await new Promise((r) => setTimeout(r, 3000));
            await pg.start();
            await new Promise((r) => setTimeout(r, 500));
            down = false;
          })();
        }
      },
    });
    await outage;
    await probe;
    expect(result.accepted.length).toBe(300);
    // Nothing created twice: exactly one server per name.
    const names: { name: string; n: number }[] = await stack.database.db("instances").groupBy("name").select("name", stack.database.db.raw("count(*)::int as n"));
    expect(names.filter((x) => x.n > 1)).toEqual([]);
    expect(names.length).toBe(300);

    const rows = await settle(stack, result.accepted, 100_000);
    const report = await invariantsHold(stack, api, result.accepted, hosts, TEST_REDIS_URL);
    const outageStatuses: Record<string, number> = {};
    for (const r of duringOutage) outageStatuses[r.status] = (outageStatuses[r.status] ?? 0) + 1;
    const slowest = Math.max(0, ...duringOutage.map((r) => r.ms));
    console.log(
      "fault-postgres-restart",
      JSON.stringify({ accepted: result.accepted.length, deletes: result.deleted.length, statuses: result.statuses, transportErrors: result.transportErrors, outageProbes: outageStatuses, slowestProbeMs: slowest, ...report, problems: report.problems.slice(0, 10), settledInMs: Date.now() - started }),
    );
    expect(report.problems).toEqual([]);
    expect(rows.filter((r) => r.vm_state === "error").length).toBe(0);
    expect(duringOutage.length).toBeGreaterThan(0);
    expect(duringOutage.every((r) => r.status === 200 || r.status === 503)).toBe(true);
    expect(duringOutage.some((r) => r.status === 503)).toBe(true);
    expect(slowest).toBeLessThan(11_000);
    const drained = await deleteAllAndDrain(stack, api, result.accepted, hosts, TEST_REDIS_URL);
    console.log("fault-postgres-restart drained", JSON.stringify(drained));
  } catch (err) {
    console.error(await stack.logs());
    throw err;
  }
}, 300_000);
