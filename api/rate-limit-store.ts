/**
 * The rate limiter's counters in Redis, counted as @fastify/rate-limit's Redis store counts
 * them (INCR, the window's expiry set by the first hit), but with
 * the hits that arrive while a call to Redis is in flight sent together in the next one
 * (common/read-batch.ts): one call then counts several requests of several projects.
 * Under load that is one Redis round trip for many POSTs instead of one each, the API's
 * largest number of socket writes per boot; under no load nothing waits.
 *
 * Each hit still gets a count of its own: a batch adds n to a key and its hits get the
 * n counts up to the new total, in the order they arrived, so the (max + 1)-th hit of a
 * window is refused whichever batch it was in.
 *
 * Far from its limit, a hit does not wait for Redis at all: the store remembers each key's
 * count and window as Redis last gave them, plus its own hits since, and a hit that leaves
 * that count at least `localMargin(max)` below the limit is allowed at once. Such hits
 * reach Redis together, per key one count, at most `flushMs` (25 ms) later: under B1's load
 * each of them had cost a share of a Redis call of its own (one call per four boots, about
 * 5 % of the API's main thread, perf, 27 November). Within the margin every hit waits for
 * its count from Redis, and takes the key's deferred hits with it, so a key is refused at
 * exactly its (max + 1)-th hit as long as the other API processes' hits not yet seen here
 * stay under the margin (up to `flushMs` and one Redis round trip of them). A key this
 * process has not counted in the current window always waits. Deferred hits not yet sent
 * when the process dies are lost: at most `flushMs` of one process's hits.
 *
 * The API's onRequest hook calls it directly (api/app.ts): a hit decided here costs no
 * promise at all. Through @fastify/rate-limit, which this replaced, every hit took four
 * (its key generator, its store callback and two async functions): 5 % of the API's CPU
 * under B1's boots (perf, 27 November).
 */
import type { Redis } from "ioredis";
import { ReadBatcher } from "../common/read-batch.js";

interface Hit {
  key: string;
  windowMs: number;
  /** Hits of the key counted by this one (deferred hits go together). */
  n: number;
}

export interface Count {
  current: number;
  ttl: number;
}

// KEYS: the counters; ARGV: per key, its window (ms) and how many hits it gets now.
const INCREMENT = `
  local out = {}
  for i, key in ipairs(KEYS) do
    local window = tonumber(ARGV[2 * i - 1])
    local n = tonumber(ARGV[2 * i])
    local current = redis.call('INCRBY', key, n)
    local ttl
    if current == n then
      redis.call('PEXPIRE', key, window)
      ttl = window
    else
      ttl = redis.call('PTTL', key)
    end
    out[i] = {current, ttl}
  end
  return out`;

type CountingRedis = Redis & { cirrusRateLimitCount(...args: (string | number)[]): Promise<[number, number][]> };

/**
 * Counts the hits of one batch: one Lua call, one entry per distinct key (with its window).
 * Each Hit gets the count of its last hit.
 */
async function countHits(redis: CountingRedis, hits: Hit[]): Promise<Count[]> {
  const byKey = new Map<string, { windowMs: number; n: number }>();
  for (const h of hits) {
    const k = byKey.get(h.key);
    if (k) k.n += h.n;
    else byKey.set(h.key, { windowMs: h.windowMs, n: h.n });
  }
  const keys = [...byKey.keys()];
  const args = [...byKey.values()].flatMap((k) => [k.windowMs, k.n]);
  const totals = await redis.cirrusRateLimitCount(keys.length, ...keys, ...args);
  // The hits of a key take its counts in arrival order: the first gets total - n + 1.
  const next = new Map(keys.map((k, i) => [k, { current: totals[i]![0] - byKey.get(k)!.n, ttl: totals[i]![1] }]));
  return hits.map((h) => {
    const c = next.get(h.key)!;
    c.current += h.n;
    return { current: c.current, ttl: c.ttl };
  });
}

/**
 * How far below its limit a key must stay for a hit to be decided here without waiting:
 * a tenth of the limit, at least 64 hits (so a small limit is always counted in Redis).
 */
export function localMargin(max: number): number {
  return Math.max(64, Math.ceil(max / 10));
}

/** A key's count as this process knows it: Redis's last answer plus this process's hits since. */
interface KnownCount {
  current: number;
  windowEnds: number;
}

/** Beyond this many keys, the known counts are dropped (each key then waits for Redis once). */
const MAX_KNOWN_KEYS = 10_000;

/**
 * Counts hits per key in Redis under `nameSpace`, `max` per window of `windowMs` (the
 * first hit starts the window). `hit` answers at once when it can decide here (far from
 * the limit), else once Redis has counted the hit; it rejects only when Redis fails.
 */
export class RedisRateLimiter {
  private readonly batcher: ReadBatcher<Hit, Count>;
  private readonly known = new Map<string, KnownCount>();
  private readonly margin: number;
  /** Hits decided here and not yet sent to Redis, per key. */
  private readonly deferred = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(
    redis: Redis,
    private readonly nameSpace: string,
    private readonly max: number,
    private readonly windowMs: number,
    /** How long a hit decided here may wait before it is counted in Redis. */
    private readonly flushMs = 25,
  ) {
    const counting = redis as CountingRedis;
    if (!counting.cirrusRateLimitCount) redis.defineCommand("cirrusRateLimitCount", { lua: INCREMENT });
    this.batcher = new ReadBatcher<Hit, Count>((hits) => countHits(counting, hits), 256);
    this.margin = localMargin(max);
  }

  hit(key: string): Count | Promise<Count> {
    const full = this.nameSpace + key;
    const k = this.known.get(full);
    const now = Date.now();
    if (k && now < k.windowEnds && k.current + 1 <= this.max - this.margin) {
      k.current++;
      this.defer(full);
      return { current: k.current, ttl: k.windowEnds - now };
    }
    // The key's deferred hits go first, so Redis's count for this hit includes them.
    this.sendDeferred(full);
    return this.countInRedis(full, 1);
  }

  private defer(key: string): void {
    this.deferred.set(key, (this.deferred.get(key) ?? 0) + 1);
    if (this.flushTimer === null) {
      this.flushTimer = setTimeout(() => this.flushDeferred(), this.flushMs);
      this.flushTimer.unref();
    }
  }

  /** Sends every key's deferred hits (counted in Redis all the same; an error there is the next waiting hit's). */
  private flushDeferred(): void {
    this.flushTimer = null;
    for (const key of [...this.deferred.keys()]) this.sendDeferred(key);
  }

  private sendDeferred(key: string): void {
    const n = this.deferred.get(key);
    if (n === undefined) return;
    this.deferred.delete(key);
    this.countInRedis(key, n).catch(() => {});
  }

  private async countInRedis(key: string, n: number): Promise<Count> {
    const count = await this.batcher.load({ key, windowMs: this.windowMs, n });
    this.learn(key, count);
    return count;
  }

  private learn(key: string, count: Count): void {
    const k = this.known.get(key);
    const windowEnds = Date.now() + count.ttl;
    if (k && k.windowEnds > Date.now()) k.current = Math.max(k.current, count.current);
    else {
      if (this.known.size >= MAX_KNOWN_KEYS) this.known.clear();
      this.known.set(key, { current: count.current, windowEnds });
    }
  }
}
