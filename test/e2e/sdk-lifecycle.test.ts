/**
 * A typed client generated from the committed OpenAPI document, offline
 * (openapi-typescript → openapi/cirrus-api.d.ts, the same command the README shows;
 * openapi-fetch at run time), drives a whole server lifecycle against a running stack:
 * flavor, network and subnet, image upload, boot, ACTIVE, stop, start, delete, 404.
 * Then the api's /metrics shows the boot, and the scheduler's and agent's own listeners
 * answer /healthz, /readyz and /metrics.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import createClient, { type Middleware } from "openapi-fetch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { paths } from "../../openapi/cirrus-api.js";
import { startStack, waitFor, type Stack } from "../support/stack.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const HOST = "sdk-cn1";

async function freePort(): Promise<number> {
  const net = await import("node:net");
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

describe("a generated TypeScript SDK", () => {
  let stack: Stack;
  let schedulerPort: number;
  let agentPort: number;

  beforeAll(async () => {
    schedulerPort = await freePort();
    agentPort = await freePort();
    // CIRRUS_METRICS_PORT in the shared env reaches the scheduler (the api does not read it);
    // the agent gets its own port.
    stack = await startStack({
      env: { CIRRUS_METRICS_PORT: String(schedulerPort) },
      agents: [{ host: HOST, uri: "test:///default", env: { CIRRUS_METRICS_PORT: String(agentPort) } }],
    });
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  it("is generated offline from the committed document, as the README says", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "cirrus-sdk-"));
    try {
      const out = path.join(dir, "cirrus-api.d.ts");
      await promisify(execFile)(path.join(repoRoot, "node_modules/.bin/openapi-typescript"), [path.join(repoRoot, "openapi/openapi.json"), "-o", out], {
        timeout: 120_000,
        env: { ...process.env, NO_PROXY: "*", HTTPS_PROXY: "http://127.0.0.1:9" },
      });
      const generated = await readFile(out, "utf8");
      expect(generated).toContain('"/v2.1/servers/{id}": {');
      // The committed types are this output (the CLI and `npm run openapi` differ only in the header comment).
      const committed = await readFile(path.join(repoRoot, "openapi/cirrus-api.d.ts"), "utf8");
      const body = (t: string) => t.slice(t.indexOf("export interface paths")).trim();
      expect(body(committed)).toBe(body(generated));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("creates a flavor, a network, an image, boots, stops, starts and deletes a server", async () => {
    const auth: Middleware = {
      onRequest({ request }) {
        request.headers.set("X-Auth-Token", stack.token);
      },
    };
    const cirrus = createClient<paths>({ baseUrl: stack.url });
    cirrus.use(auth);

    const flavor = await cirrus.POST("/v2.1/flavors", { body: { flavor: { name: "sdk.tiny", id: "sdk-1", ram: 128, vcpus: 1, disk: 1 } } });
    expect(flavor.error, JSON.stringify(flavor.error)).toBeUndefined();
    expect(flavor.data!.flavor.name).toBe("sdk.tiny");

    const network = await cirrus.POST("/v2.0/networks", { body: { network: { name: "sdk-net", shared: true } } });
    expect(network.response.status).toBe(201);
    const networkId = network.data!.network.id;
    const subnet = await cirrus.POST("/v2.0/subnets", { body: { subnet: { network_id: networkId, cidr: "10.77.0.0/24", ip_version: 4 } } });
    expect(subnet.response.status).toBe(201);

    const image = await cirrus.POST("/v2/images", { body: { name: "sdk-image", disk_format: "raw", container_format: "bare", visibility: "public" } });
    expect(image.response.status).toBe(201);
    const imageId = image.data!.id;
    const bytes = new Uint8Array(1024 * 1024).fill(7);
    const upload = await cirrus.PUT("/v2/images/{id}/file", {
      params: { path: { id: imageId } },
      body: bytes as unknown as string,
      bodySerializer: (b) => b,
      headers: { "Content-Type": "application/octet-stream" },
    });
    expect(upload.response.status).toBe(204);
    const shown = await cirrus.GET("/v2/images/{id}", { params: { path: { id: imageId } } });
    expect(shown.data!.status).toBe("active");

    const created = await cirrus.POST("/v2.1/servers", {
      body: { server: { name: "sdk-vm", flavorRef: "sdk-1", imageRef: imageId, networks: [{ uuid: networkId }] } },
    });
    expect(created.response.status, JSON.stringify(created.error)).toBe(202);
    expect(created.response.headers.get("x-openstack-request-id")).toMatch(/^req-/);
    const body = created.data!;
    if (!("server" in body)) throw new Error("a single create answers with the server");
    const id = body.server.id;

    const server = () => cirrus.GET("/v2.1/servers/{id}", { params: { path: { id } } });
    const until = (status: string) =>
      waitFor(`server ${status}`, async () => {
        const s = await server();
        if (s.data?.server.status === "ERROR") throw new Error(`ERROR: ${JSON.stringify(s.data.server.fault)}`);
        return s.data?.server.status === status ? s.data.server : undefined;
      }, 90_000, 300);

    const active = await until("ACTIVE");
    expect(active["OS-EXT-SRV-ATTR:host"] ?? HOST).toBe(HOST);

    const stop = await cirrus.POST("/v2.1/servers/{id}/action", { params: { path: { id } }, body: { "os-stop": null } });
    expect(stop.response.status).toBe(202);
    await until("SHUTOFF");
    const start = await cirrus.POST("/v2.1/servers/{id}/action", { params: { path: { id } }, body: { "os-start": null } });
    expect(start.response.status).toBe(202);
    await until("ACTIVE");

    const deleted = await cirrus.DELETE("/v2.1/servers/{id}", { params: { path: { id } } });
    expect(deleted.response.status).toBe(204);
    await waitFor("the server to be gone", async () => (await server()).response.status === 404, 90_000, 300);
    const gone = await server();
    expect(gone.error).toMatchObject({ itemNotFound: { code: 404 } });
  }, 240_000);

  it("shows the boot on the api's /metrics and answers health on the scheduler's and agent's listeners", async () => {
    const text = await (await fetch(`${stack.url}/metrics`)).text();
    expect(Number(/cirrus_boots_total\{outcome="active"\} (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/cirrus_boot_time_to_active_seconds_count (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/cirrus_scheduling_latency_seconds_count (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/cirrus_http_request_duration_seconds_count\{[^}]*route="\/v2\.1\/servers"[^}]*status_code="202"/);
    expect(text).toMatch(new RegExp(`cirrus_compute_heartbeat_age_seconds\\{host="${HOST}"\\}`));
    expect(text).toMatch(/cirrus_queue_jobs\{queue="schedule",state="waiting"\} 0/);
    await waitFor(
      "the agent's spawn histogram on the api",
      async () => /cirrus_agent_spawn_duration_seconds_count\{driver="libvirt\+test",host="sdk-cn1",outcome="success"\} [1-9]/.test(await (await fetch(`${stack.url}/metrics`)).text()),
      30_000,
    );
    const ready = await fetch(`${stack.url}/readyz`);
    expect(await ready.json()).toMatchObject({ status: "ok", checks: { postgres: "ok", redis: "ok" } });

    for (const [service, port] of [["scheduler", schedulerPort], ["compute-agent", agentPort]] as const) {
      const base = `http://127.0.0.1:${port}`;
      expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: "ok", service });
      const r = await fetch(`${base}/readyz`);
      expect(r.status).toBe(200);
      expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/process_cpu_user_seconds_total/);
    }
    const schedulerMetrics = await (await fetch(`http://127.0.0.1:${schedulerPort}/metrics`)).text();
    expect(schedulerMetrics).toMatch(/cirrus_jobs_handled_total\{queue="schedule",result="completed",service="scheduler"\} [1-9]/);
    const agentMetrics = await (await fetch(`http://127.0.0.1:${agentPort}/metrics`)).text();
    expect(agentMetrics).toMatch(/cirrus_agent_spawn_duration_seconds_count\{driver="libvirt\+test",host="sdk-cn1",outcome="success"\} 1/);
  }, 60_000);
});
