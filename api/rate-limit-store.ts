/**
 * The rate limiter's counters in Redis (a store for @fastify/rate-limit), counted as its
 * own Redis store counts them (INCR, the window's expiry set by the first hit), but with
 * the hits that arrive while a call to Redis is in flight sent together in the next one
 * (common/read-batch.ts): one call then counts several requests of several projects.
 * Under load that is one Redis round trip for many POSTs instead of one each, the API's
 * largest number of socket writes per boot; under no load nothing waits.
 *
 * Each hit still gets a count of its own: a batch adds n to a key and its hits get the
 * n counts up to the new total, in the order they arrived, so the (max + 1)-th hit of a
 * window is refused whichever batch it was in.
 */
import type { Redis } from "ioredis";
import { ReadBatcher } from "../common/read-batch.js";

interface Hit {
  key: string;
  windowMs: number;
}

interface Count {
  current: number;
  ttl: number;
}

type Callback = (err: Error | null, res?: Count) => void;

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

/** Counts the hits of one batch: one Lua call, one entry per distinct key (with its window). */
async function countHits(redis: CountingRedis, hits: Hit[]): Promise<Count[]> {
  const byKey = new Map<string, { windowMs: number; n: number }>();
  for (const h of hits) {
    const k = byKey.get(h.key);
    if (k) k.n++;
    else byKey.set(h.key, { windowMs: h.windowMs, n: 1 });
  }
  const keys = [...byKey.keys()];
  const args = [...byKey.values()].flatMap((k) => [k.windowMs, k.n]);
  const totals = await redis.cirrusRateLimitCount(keys.length, ...keys, ...args);
  // The hits of a key take its counts in arrival order: the first gets total - n + 1.
  const next = new Map(keys.map((k, i) => [k, { current: totals[i]![0] - byKey.get(k)!.n, ttl: totals[i]![1] }]));
  return hits.map((h) => {
    const c = next.get(h.key)!;
    c.current++;
    return { current: c.current, ttl: c.ttl };
  });
}

/** A store class for @fastify/rate-limit's `store` option, over `redis`, keys under `nameSpace`. */
export function batchingRedisStore(redis: Redis, nameSpace: string) {
  const counting = redis as CountingRedis;
  if (!counting.cirrusRateLimitCount) redis.defineCommand("cirrusRateLimitCount", { lua: INCREMENT });
  const batcher = new ReadBatcher<Hit, Count>((hits) => countHits(counting, hits), 256);

  return class BatchingRedisStore {
    constructor(
      _params?: unknown,
      private readonly prefix = nameSpace,
    ) {}

    incr(key: string, cb: Callback, timeWindow: number): void {
      batcher.load({ key: this.prefix + key, windowMs: timeWindow }).then(
        (count) => cb(null, count),
        (err: Error) => cb(err),
      );
    }

    /** A limiter of its own (per route, as the plugin's own store does), keyed apart. */
    child(routeOptions: object): BatchingRedisStore {
      const route = (routeOptions as { routeInfo?: { method?: string; url?: string } }).routeInfo ?? {};
      return new BatchingRedisStore(undefined, `${this.prefix}${route.method ?? ""}${route.url ?? ""}-`);
    }
  };
}
