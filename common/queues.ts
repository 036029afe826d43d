/**
 * Queue names, connections and the job options every producer uses.
 * BullMQ queue names cannot contain ":"; a host's queue is compute.<host>.
 */
import { FlowProducer, Queue, type ConnectionOptions, type JobsOptions } from "bullmq";
import { Redis, type RedisOptions } from "ioredis";

export const SCHEDULE_QUEUE = "schedule";
export const REPORTS_QUEUE = "reports";

export function computeQueueName(host: string): string {
  return `compute.${host.replace(/[^A-Za-z0-9._-]/gu, "_")}`;
}

export function redisOptions(redisUrl: string): RedisOptions {
  const url = new URL(redisUrl);
  return {
    host: url.hostname || "127.0.0.1",
    port: url.port ? Number(url.port) : 6379,
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0,
    // Workers block on Redis; BullMQ requires this to be null for them.
    maxRetriesPerRequest: null,
  };
}

/** A connection for a Worker: it waits for Redis to come back. */
export function workerConnection(redisUrl: string): ConnectionOptions {
  return redisOptions(redisUrl) as ConnectionOptions;
}

/** A connection for producers: fail fast while Redis is down, so the caller can retry later. */
export function producerConnection(redisUrl: string): Redis {
  return new Redis({ ...redisOptions(redisUrl), enableOfflineQueue: false, maxRetriesPerRequest: 1 });
}

/**
 * Worker settings for a prompt recovery when a worker dies (kill -9): its jobs' locks
 * expire after 10 s and are found by the stalled-job check within 5 s more, then run
 * again elsewhere (BullMQ's defaults are 30 s each, longer than a tight build timeout).
 * Locks are renewed while a job runs, so long jobs are not affected.
 */
export const WORKER_RECOVERY = { lockDuration: 10_000, stalledInterval: 5_000, maxStalledCount: 5 } as const;

/**
 * The worker of one host's queue (compute-agent/agent.ts). Every idle worker calls Redis on
 * its own timers: a stalled-job check every stalledInterval and, each time its wait for a
 * job times out (drainDelay, in seconds), a look for one; each is a Lua script. With
 * WORKER_RECOVERY's 5 s and BullMQ's 5 s, 1,000 idle hosts ran 400 scripts a second
 * (Redis 0.028 cores, the simulated hosts' process 0.047, before a single boot), and the
 * count grows with the fleet. A job arriving wakes the worker at once whatever drainDelay
 * is (BullMQ's marker key), so it costs nothing in latency. A host's jobs can run nowhere
 * but on that host, so a quicker stalled check would only re-run them sooner on the same
 * agent after its restart, where start-up reconciliation has already reported its
 * half-built instances and skips their old spawn jobs.
 */
export const HOST_WORKER_SETTINGS = { ...WORKER_RECOVERY, stalledInterval: 30_000, drainDelay: 30 } as const;

export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  // A handler that throws (the database or Redis briefly away) is retried; handlers are idempotent.
  attempts: 8,
  backoff: { type: "exponential", delay: 500 },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

/**
 * Producer-side queues, created on first use and shared, the least recently used closed
 * past `maxOpen`. A host's queue is one of thousands: each BullMQ Queue adds listeners to
 * the shared connection, and by default asks Redis for INFO to check its version, which
 * was about 0.4 ms of CPU here for every host the relay published to for the first time
 * (and Redis' to answer). The version is checked once, by the first queue.
 */
export interface QueuedJob {
  queue: string;
  name: string;
  jobId: string;
  data: object;
}

export class QueueSet {
  private readonly queues = new Map<string, Queue>();
  private readonly connection: Redis;
  private versionChecked = false;
  private flows: FlowProducer | null = null;

  constructor(
    redisUrl: string,
    readonly prefix: string,
    private readonly maxOpen = 1000,
  ) {
    this.connection = producerConnection(redisUrl);
    // ioredis reports connection errors as events; without a listener they crash the process.
    this.connection.on("error", () => {});
  }

  get(name: string): Queue {
    let queue = this.queues.get(name);
    if (queue) {
      // Map keeps insertion order: moving the queue to the end keeps the oldest first.
      this.queues.delete(name);
      this.queues.set(name, queue);
      return queue;
    }
    queue = new Queue(name, {
      connection: this.connection,
      prefix: this.prefix,
      defaultJobOptions: DEFAULT_JOB_OPTIONS,
      skipVersionCheck: this.versionChecked,
    });
    queue.on("error", () => {});
    this.versionChecked = true;
    this.queues.set(name, queue);
    for (const [oldName, old] of this.queues) {
      if (this.queues.size <= this.maxOpen) break;
      // Closing a queue on a shared connection only detaches it; nothing is in flight on
      // the least recently used one unless a caller holds more than maxOpen at once.
      this.queues.delete(oldName);
      void old.close().catch(() => {});
    }
    return queue;
  }

  /**
   * Adds jobs to any queues, with DEFAULT_JOB_OPTIONS, in one MULTI: no Queue object per
   * queue. The relay publishes each spawn job to its host's queue, one of thousands; making
   * a Queue for each new one (listeners on the connection, the scripts defined again) was
   * a fifth of the API's CPU in B4 at 10,000 hosts. A job whose id the queue still holds is
   * not added again (BullMQ's rule, as for Queue.add).
   */
  async addToQueues(jobs: readonly QueuedJob[]): Promise<void> {
    if (jobs.length === 0) return;
    this.flows ??= new FlowProducer({ connection: this.connection, prefix: this.prefix });
    await this.flows.addBulk(jobs.map((j) => ({ queueName: j.queue, name: j.name, data: j.data, opts: { ...DEFAULT_JOB_OPTIONS, jobId: j.jobId } })));
  }

  /** How many queues are open, for tests. */
  get openCount(): number {
    return this.queues.size;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    await this.flows?.close();
    this.connection.disconnect();
  }
}
