import { describe, expect, it } from "vitest";
import { GroupCommit } from "../../common/group-commit.js";

function recorder(failOn: (items: number[]) => boolean = () => false) {
  const batches: number[][] = [];
  const singles: number[] = [];
  const gc = new GroupCommit<number>({
    maxBatch: 3,
    maxDelayMs: 5,
    applyBatch: async (items) => {
      batches.push(items);
      if (failOn(items)) throw new Error("batch failed");
    },
    applyOne: async (item) => {
      singles.push(item);
      if (item === 13) throw new Error("thirteen");
    },
  });
  return { gc, batches, singles };
}

/** A committer whose batches each take `holdMs`, recording them and how many ran at once. */
function slowRecorder(opts: { maxBatch: number; maxDelayMs: number; maxInFlight: number; flushWhenIdle?: boolean; holdMs?: number }) {
  const batches: number[][] = [];
  const seen = { running: 0, most: 0 };
  const gc = new GroupCommit<number>({
    ...opts,
    applyBatch: async (items) => {
      seen.running++;
      seen.most = Math.max(seen.most, seen.running);
      batches.push(items);
      await new Promise((r) => setTimeout(r, opts.holdMs ?? 10));
      seen.running--;
    },
    applyOne: async () => {},
  });
  return { gc, batches, seen };
}

describe("GroupCommit", () => {
  it("runs a full batch at once and the rest after the delay", async () => {
    const { gc, batches } = recorder();
    await Promise.all([1, 2, 3, 4].map((n) => gc.submit(n)));
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  it("applies each item alone when its batch fails, failing only the bad one", async () => {
    const { gc, batches, singles } = recorder((items) => items.includes(13));
    const results = await Promise.allSettled([1, 13, 2].map((n) => gc.submit(n)));
    expect(batches).toEqual([[1, 13, 2]]);
    expect(singles.sort()).toEqual([1, 13, 2].sort());
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  });

  it("rejects a lone item whose batch failed without running it twice", async () => {
    const { gc, singles } = recorder(() => true);
    await expect(gc.submit(7)).rejects.toThrow("batch failed");
    expect(singles).toEqual([]);
  });

  it("runs at most maxInFlight batches at once and takes what waited meanwhile next", async () => {
    const { gc, batches, seen } = slowRecorder({ maxBatch: 2, maxDelayMs: 1, maxInFlight: 1 });
    await Promise.all([1, 2, 3, 4, 5].map((n) => gc.submit(n)));
    expect(seen.most).toBe(1);
    expect(batches).toEqual([[1, 2], [3, 4], [5]]);
  });
});

describe("GroupCommit with flushWhenIdle", () => {
  it("writes at once when idle and batches what arrives while a write is in flight", async () => {
    const { gc, batches, seen } = slowRecorder({ maxBatch: 3, maxDelayMs: 10_000 /* unused: no timer */, maxInFlight: 1, flushWhenIdle: true });
    const started = Date.now();
    await gc.submit(0); // alone, no wait
    expect(Date.now() - started).toBeLessThan(1000);
    await Promise.all([1, 2, 3, 4, 5, 6].map((n) => gc.submit(n)));
    expect(seen.most).toBe(1);
    // The first batch's bookkeeping ends a few microtasks after its submitter resumes, so 1
    // may wait for it; either way nothing runs beside it and no batch exceeds maxBatch.
    expect(batches[0]).toEqual([0]);
    expect(batches.flat()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(batches.every((b) => b.length <= 3)).toBe(true);
    expect(batches.length).toBeLessThanOrEqual(4);
  });

  it("runs up to maxInFlight batches at once", async () => {
    const { gc, batches } = slowRecorder({ maxBatch: 10, maxDelayMs: 0, maxInFlight: 2, flushWhenIdle: true });
    await Promise.all([1, 2, 3, 4, 5].map((n) => gc.submit(n)));
    expect(batches).toEqual([[1], [2], [3, 4, 5]]);
  });

  it("a failed batch falls back to one by one, failing only the bad item", async () => {
    const gc = new GroupCommit<number>({
      maxBatch: 10,
      maxDelayMs: 0,
      maxInFlight: 1,
      flushWhenIdle: true,
      applyBatch: async (items) => {
        await new Promise((r) => setTimeout(r, 5));
        if (items.includes(13)) throw new Error("batch failed");
      },
      applyOne: async (item) => {
        if (item === 13) throw new Error("thirteen");
      },
    });
    const results = await Promise.allSettled([1, 2, 13, 3].map((n) => gc.submit(n)));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect((results[2] as PromiseRejectedResult).reason.message).toBe("thirteen");
  });
});
