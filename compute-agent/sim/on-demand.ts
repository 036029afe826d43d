/**
 * Job taking for hosts without a worker of their own. A BullMQ Worker holds a blocking
 * Redis connection for as long as it lives, and Redis takes at most 10,000 clients, so
 * 10,000 always-on workers cannot fit next to the rest of the stack. Every job added to
 * a queue also adds a member to its marker key (what a Worker waits on with BZPOPMIN);
 * here one connection waits on the marker keys of a group of idle hosts at once, starts
 * the real Worker of a host whose marker fired, and closes it again once the host has
 * been idle for a while with nothing waiting or delayed. Jobs still run through BullMQ's
 * own Worker (locks, stalled checks, retries), only the waiting is shared.
 */
import { Redis } from "ioredis";
import type { Logger } from "../../common/logger.js";
import { redisOptions } from "../../common/queues.js";
import type { ComputeAgent } from "../agent.js";

export interface OnDemandOptions {
  redisUrl: string;
  queuePrefix: string;
  agents: ComputeAgent[];
  /** Workers alive at once, at most. */
  maxWorkers: number;
  /** Marker keys one waiting connection watches. */
  hostsPerConnection?: number;
  /** A worker idle this long with an empty queue is closed. */
  idleMs?: number;
  log: Logger;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class OnDemandConsumers {
  private readonly live = new Set<ComputeAgent>();
  private readonly wanted: ComputeAgent[] = [];
  private readonly wantedSet = new Set<ComputeAgent>();
  private readonly byMarker = new Map<string, ComputeAgent>();
  private readonly waiters: Redis[] = [];
  private readonly loops: Promise<void>[] = [];
  private readonly commands: Redis;
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping = false;
  private stopped = false;
  /** Workers started so far, for the sim's summary. */
  started = 0;

  constructor(private readonly opts: OnDemandOptions) {
    for (const a of opts.agents) this.byMarker.set(this.key(a, "marker"), a);
    this.commands = new Redis(redisOptions(opts.redisUrl));
    this.commands.on("error", () => {});
  }

  get liveWorkers(): number {
    return this.live.size;
  }

  start(): void {
    const size = this.opts.hostsPerConnection ?? 100;
    for (let i = 0; i < this.opts.agents.length; i += size) {
      const group = this.opts.agents.slice(i, i + size);
      const conn = new Redis(redisOptions(this.opts.redisUrl));
      conn.on("error", () => {});
      this.waiters.push(conn);
      this.loops.push(this.watch(conn, group));
    }
    this.sweeper = setInterval(() => void this.sweep(), 500);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const conn of this.waiters) conn.disconnect();
    await Promise.all(this.loops);
    this.commands.disconnect();
  }

  private key(agent: ComputeAgent, suffix: string): string {
    return `${this.opts.queuePrefix}:${agent.queueName}:${suffix}`;
  }

  private async watch(conn: Redis, group: ComputeAgent[]): Promise<void> {
    while (!this.stopped) {
      const idle = group.filter((a) => !this.live.has(a) && !this.wantedSet.has(a)).map((a) => this.key(a, "marker"));
      if (idle.length === 0) {
        await sleep(200);
        continue;
      }
      try {
        const popped = await conn.bzpopmin(...idle, 1);
        const agent = popped ? this.byMarker.get(popped[0]) : undefined;
        if (agent) this.want(agent);
      } catch (err) {
        if (this.stopped) return;
        this.opts.log.warn({ err: String(err) }, "on-demand: waiting on marker keys failed");
        await sleep(500);
      }
    }
  }

  private want(agent: ComputeAgent): void {
    if (this.live.has(agent) || this.wantedSet.has(agent)) return;
    this.wanted.push(agent);
    this.wantedSet.add(agent);
    this.admit();
  }

  private admit(): void {
    while (this.live.size < this.opts.maxWorkers && this.wanted.length > 0 && !this.stopped) {
      const agent = this.wanted.shift()!;
      this.wantedSet.delete(agent);
      this.live.add(agent);
      this.started++;
      agent.consume();
    }
  }

  /** Jobs waiting, prioritized or delayed on each agent's queue. */
  private async queued(agents: ComputeAgent[]): Promise<number[]> {
    const pipe = this.commands.pipeline();
    for (const a of agents) {
      pipe.llen(this.key(a, "wait"));
      pipe.zcard(this.key(a, "prioritized"));
      pipe.zcard(this.key(a, "delayed"));
    }
    const results = (await pipe.exec()) ?? [];
    return agents.map((_, i) => [0, 1, 2].reduce((sum, k) => sum + Number(results[i * 3 + k]?.[1] ?? 0), 0));
  }

  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopped) return;
    this.sweeping = true;
    try {
      const idleMs = this.opts.idleMs ?? 2_000;
      const now = Date.now();
      const idle = [...this.live].filter((a) => (a.idleMs(now) ?? 0) > idleMs);
      if (idle.length === 0) return;
      const counts = await this.queued(idle);
      const empty = idle.filter((_, i) => counts[i] === 0);
      await Promise.all(empty.map((a) => a.release()));
      for (const a of empty) this.live.delete(a);
      // A job added while a worker was closing may have had its marker taken by that worker.
      const after = empty.length ? await this.queued(empty) : [];
      empty.forEach((a, i) => after[i]! > 0 && this.want(a));
      this.admit();
    } catch (err) {
      this.opts.log.warn({ err: String(err) }, "on-demand: sweep failed");
    } finally {
      this.sweeping = false;
    }
  }
}
