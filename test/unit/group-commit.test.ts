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
    const batches: number[][] = [];
    let running = 0;
    let most = 0;
    const gc = new GroupCommit<number>({
      maxBatch: 2,
      maxDelayMs: 1,
      maxInFlight: 1,
      applyBatch: async (items) => {
        running++;
        most = Math.max(most, running);
        batches.push(items);
        await new Promise((r) => setTimeout(r, 10));
        running--;
      },
      applyOne: async () => {},
    });
    await Promise.all([1, 2, 3, 4, 5].map((n) => gc.submit(n)));
    expect(most).toBe(1);
    expect(batches).toEqual([[1, 2], [3, 4], [5]]);
  });
});
