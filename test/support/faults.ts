/**
 * What the fault tests share: a stack of test:///default hosts tuned for quick recovery,
 * a burst of boots and deletes, waiting for every accepted request to settle, and the
 * invariants checked afterwards (final states users see, allocations, domains).
 *
 * Domains: test:///default lives inside each agent process, so the test reads what every
 * agent publishes on each power-state sync in the Redis hash <prefix>:domains (host ->
 * {at, domains}), the output of the driver's own listInstances(), and waits for a
 * listing taken after the moment it checks.
 */
import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { createFlavor, uploadImage } from "./api-fixtures.js";
import { waitFor, type Stack } from "./stack.js";

/** Settings that make recovery observable within a test's two minutes. */
export const FAST_RECOVERY_ENV: Record<string, string> = {
  CIRRUS_AUTH_MODE: "dev",
  CIRRUS_RATE_LIMIT: "0",
  CIRRUS_QUOTA_ENFORCE: "false",
  CIRRUS_HEARTBEAT_INTERVAL: "1",
  CIRRUS_SERVICE_DOWN_TIME: "20",
  CIRRUS_BUILD_TIMEOUT: "60",
  CIRRUS_ACTION_TIMEOUT: "60",
  CIRRUS_RECOVERY_INTERVAL: "1",
  CIRRUS_REQUEUE_AFTER: "4",
  CIRRUS_POWER_SYNC_INTERVAL: "2",
  CIRRUS_ORPHAN_GRACE: "3",
  CIRRUS_AGENT_VCPUS: "2000",
  CIRRUS_CPU_ALLOCATION_RATIO: "1",
  CIRRUS_AGENT_MEMORY_MB: "10000000",
  CIRRUS_AGENT_DISK_GB: "100000",
  LOG_LEVEL: "warn",
};

/** A tiny qcow2 (the simulated hypervisor never boots it): cheap to download and overlay. */
export async function tinyImage(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "cirrus-fault-img-"));
  const file = path.join(dir, "tiny.qcow2");
  await promisify(execFile)("qemu-img", ["create", "-f", "qcow2", file, "64M"]);
  return file;
}

export async function prepare(stack: Stack): Promise<{ imageId: string; flavorId: string }> {
  const imageId = await uploadImage(stack, await tinyImage());
  const flavorId = await createFlavor(stack, { id: "f1", ram: 64, vcpus: 1, disk: 1 });
  return { imageId, flavorId };
}

export type Api = (method: string, urlPath: string, body?: unknown, headers?: Record<string, string>) => Promise<{ status: number; body: any; headers: Record<string, string>; ms: number }>;

/** A client for one API process; every request is bounded (a hung request fails the test). */
export function apiClient(url: string, token: string, timeoutMs = 30_000): Api {
  return async (method, urlPath, body, headers = {}) => {
    const started = Date.now();
    const res = await fetch(url + urlPath, {
      method,
      headers: { "x-auth-token": token, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
    return { status: res.status, body: parsed, headers: Object.fromEntries(res.headers), ms: Date.now() - started };
  };
}

export interface BurstResult {
  /** Servers whose boot was accepted (202). */
  accepted: string[];
  /** Of those, the ones a delete was accepted for (204). */
  deleted: string[];
  /** Status codes of every request, counted. */
  statuses: Record<string, number>;
  /** Requests that failed at the HTTP level (connection refused while a process was down). */
  transportErrors: number;
}

/**
 * Boots `count` servers, `concurrency` requests in flight, and deletes every `deleteEvery`-th
 * one shortly after it was accepted (while it is scheduling or spawning). `onProgress` runs
 * after each accepted boot (fault injection hooks in there). Requests answered 5xx or
 * refused at the transport are retried with the same Idempotency-Key: nothing is lost and
 * nothing is created twice.
 */
export async function burst(
  apis: Api[],
  opts: { count: number; imageId: string; flavorId: string; concurrency?: number; deleteEvery?: number; onProgress?: (accepted: number) => void; networks?: unknown },
): Promise<BurstResult> {
  const result: BurstResult = { accepted: [], deleted: [], statuses: {}, transportErrors: 0 };
  const count = (k: string) => (result.statuses[k] = (result.statuses[k] ?? 0) + 1);
  let next = 0;
  const pendingDeletes: Promise<void>[] = [];
  const call = async (i: number, method: string, url: string, body?: unknown, key?: string) => {
    for (let attempt = 0; ; attempt++) {
      const api = apis[(i + attempt) % apis.length]!;
      try {
        const res = await api(method, url, body, key ? { "idempotency-key": key } : {});
        count(`${method} ${res.status}`);
        if (res.status >= 500 && attempt < 60) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        return res;
      } catch {
        result.transportErrors++;
        if (attempt >= 60) throw new Error(`${method} ${url}: no answer after 60 attempts`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= opts.count) return;
      const res = await call(i, "POST", "/v2.1/servers", {
        server: { name: `fault-${i}`, flavorRef: opts.flavorId, imageRef: opts.imageId, networks: opts.networks ?? "none" },
      }, `boot-${i}-${process.pid}`);
      if (res.status !== 202) continue;
      const id = res.body.server.id as string;
      result.accepted.push(id);
      opts.onProgress?.(result.accepted.length);
      if (opts.deleteEvery && i % opts.deleteEvery === 0) {
        pendingDeletes.push(
          (async () => {
            await new Promise((r) => setTimeout(r, Math.random() * 1500));
            const del = await call(i, "DELETE", `/v2.1/servers/${id}`);
            if (del.status === 204) result.deleted.push(id);
          })(),
        );
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 25 }, worker));
  await Promise.all(pendingDeletes);
  return result;
}

interface Row {
  id: string;
  vm_state: string;
  task_state: string | null;
  host: string | null;
  flavor: { vcpus: number; ram: number; disk: number };
  launched_at: Date | null;
}

/** Waits until no accepted server has a task in flight; returns the rows. */
export async function settle(stack: Stack, ids: string[], timeoutMs: number): Promise<Row[]> {
  return waitFor(
    `all ${ids.length} servers to settle`,
    async () => {
      const rows: Row[] = await stack.database.db("instances").whereIn("id", ids).select("id", "vm_state", "task_state", "host", "flavor", "launched_at");
      return rows.length === ids.length && rows.every((r) => r.task_state === null) ? rows : undefined;
    },
    timeoutMs,
    1000,
  );
}

export interface DomainListing {
  at: number;
  domains: { instance_id: string; instance_name: string; power_state: number }[];
}

/** Each live host's domains, from a listing its agent took after `since` (epoch ms). */
export async function domainsAfter(stack: Stack, hosts: string[], since: number, redisUrl: string, timeoutMs = 30_000): Promise<Map<string, DomainListing>> {
  const redis = new Redis(redisUrl);
  try {
    return await waitFor(
      "fresh domain listings from every live host",
      async () => {
        const raw = await redis.hgetall(`${stack.prefix}:domains`);
        const out = new Map<string, DomainListing>();
        for (const h of hosts) {
          const l = raw[h] ? (JSON.parse(raw[h]) as DomainListing) : undefined;
          if (!l || l.at < since) return undefined;
          out.set(h, l);
        }
        return out;
      },
      timeoutMs,
      500,
    );
  } finally {
    redis.disconnect();
  }
}

export interface InvariantReport {
  servers: number;
  byStatus: Record<string, number>;
  domains: number;
  allocationsChecked: number;
  problems: string[];
}

/**
 * The invariants after a fault:
 * 1. every accepted server is in a final state users see: GET answers 404 (deleted) or a
 *    server with a stable status (ACTIVE, SHUTOFF, PAUSED, SUSPENDED, ERROR) and no task;
 * 2. allocations equal the flavors of live servers: each launched, undeleted server holds
 *    exactly its flavor on its host; nothing else holds anything;
 * 3. every launched, undeleted server has exactly one domain, on its host;
 * 4. no domain lacks a server (an ERROR server may hold the domain of its failed build).
 */
export async function checkInvariants(stack: Stack, api: Api, ids: string[], liveHosts: string[], redisUrl: string): Promise<InvariantReport> {
  const problems: string[] = [];
  const db = stack.database.db;
  const rows: Row[] = await db("instances").whereIn("id", ids).select("id", "vm_state", "task_state", "host", "flavor", "launched_at");
  const byStatus: Record<string, number> = {};
  for (let i = 0; i < ids.length; i += 25) {
    await Promise.all(
      ids.slice(i, i + 25).map(async (id) => {
        const res = await api("GET", `/v2.1/servers/${id}`);
        const status = res.status === 404 ? "DELETED(404)" : res.status === 200 ? (res.body.server.status as string) : `HTTP ${res.status}`;
        byStatus[status] = (byStatus[status] ?? 0) + 1;
        if (!["DELETED(404)", "ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "ERROR"].includes(status)) problems.push(`server ${id} is ${status}`);
        if (res.status === 200 && res.body.server["OS-EXT-STS:task_state"] !== null) problems.push(`server ${id} has task ${res.body.server["OS-EXT-STS:task_state"]}`);
      }),
    );
  }
  const live = rows.filter((r) => r.vm_state !== "deleted" && r.vm_state !== "error");
  const liveIds = new Set(live.map((r) => r.id));

  const allocations: { consumer_id: string; resource_class: string; used: number; host: string }[] = await db("allocations as a")
    .join("resource_providers as rp", "rp.id", "a.provider_id")
    .select("a.consumer_id", "a.resource_class", "a.used", "rp.name as host");
  const held = new Map<string, Record<string, number> & { host?: string }>();
  for (const a of allocations) {
    const h = held.get(a.consumer_id) ?? {};
    h[a.resource_class] = (h[a.resource_class] ?? 0) + a.used;
    if (h.host !== undefined && (h.host as unknown as string) !== a.host) problems.push(`consumer ${a.consumer_id} holds allocations on two hosts`);
    (h as { host?: string }).host = a.host;
    held.set(a.consumer_id, h);
  }
  for (const r of live) {
    const h = held.get(r.id);
    if (!h) problems.push(`live server ${r.id} (${r.vm_state}) holds no allocation`);
    else if (h.VCPU !== r.flavor.vcpus || h.MEMORY_MB !== r.flavor.ram || h.DISK_GB !== r.flavor.disk || (h as { host?: string }).host !== r.host) {
      problems.push(`server ${r.id} holds ${JSON.stringify(h)}, its flavor is ${JSON.stringify(r.flavor)} on ${r.host}`);
    }
  }
  for (const consumer of held.keys()) if (!liveIds.has(consumer)) problems.push(`allocation held by ${consumer}, which is not a live server`);

  const listings = await domainsAfter(stack, liveHosts, Date.now(), redisUrl);
  const all: Row[] = await db("instances").select("id", "vm_state", "task_state", "host", "flavor", "launched_at");
  const byId = new Map(all.map((r) => [r.id, r]));
  let domains = 0;
  const seen = new Map<string, number>();
  for (const [host, listing] of listings) {
    for (const d of listing.domains) {
      domains++;
      seen.set(d.instance_id, (seen.get(d.instance_id) ?? 0) + 1);
      const inst = byId.get(d.instance_id);
      if (!inst || inst.vm_state === "deleted") problems.push(`domain ${d.instance_name} on ${host} has no server (${inst ? "deleted" : "unknown"})`);
      else if (inst.host !== host) problems.push(`domain ${d.instance_name} on ${host} belongs to a server on ${inst.host}`);
    }
  }
  for (const r of live) {
    if (!liveHosts.includes(r.host ?? "")) continue;
    const n = seen.get(r.id) ?? 0;
    if (n !== 1) problems.push(`live server ${r.id} (${r.vm_state}) on ${r.host} has ${n} domains`);
  }
  return { servers: ids.length, byStatus, domains, allocationsChecked: allocations.length, problems };
}

/** Waits until the invariants hold (orphans are reaped after a grace period); returns the last report. */
export async function invariantsHold(stack: Stack, api: Api, ids: string[], liveHosts: string[], redisUrl: string, timeoutMs = 45_000): Promise<InvariantReport> {
  let last: InvariantReport | undefined;
  try {
    await waitFor(
      "the invariants to hold",
      async () => {
        last = await checkInvariants(stack, api, ids, liveHosts, redisUrl);
        return last.problems.length === 0;
      },
      timeoutMs,
      2000,
    );
  } catch (err) {
    if (last) return last;
    throw err;
  }
  return last!;
}

/** Deletes every server still there and waits until nothing is left: no rows, allocations or domains. */
export async function deleteAllAndDrain(stack: Stack, api: Api, ids: string[], liveHosts: string[], redisUrl: string, timeoutMs = 60_000): Promise<{ deleted: number }> {
  const remaining: string[] = await stack.database.db("instances").whereIn("id", ids).whereNot("vm_state", "deleted").pluck("id");
  for (let i = 0; i < remaining.length; i += 25) {
    await Promise.all(remaining.slice(i, i + 25).map((id) => api("DELETE", `/v2.1/servers/${id}`)));
  }
  await waitFor(
    "every server to be gone, with its allocations and domains",
    async () => {
      const left = await stack.database.db("instances").whereIn("id", ids).whereNot("vm_state", "deleted").count<{ count: number }[]>("* as count");
      const allocs = await stack.database.db("allocations").count<{ count: number }[]>("* as count");
      if (Number(left[0]!.count) !== 0 || Number(allocs[0]!.count) !== 0) return false;
      const listings = await domainsAfter(stack, liveHosts, Date.now(), redisUrl);
      return [...listings.values()].every((l) => l.domains.length === 0);
    },
    timeoutMs,
    2000,
  );
  return { deleted: remaining.length };
}
