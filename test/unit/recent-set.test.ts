import { describe, expect, it } from "vitest";
import { RecentSet } from "../../common/recent-set.js";

describe("RecentSet", () => {
  it("forgets the oldest key beyond its capacity", () => {
    const s = new RecentSet<string>(2);
    s.add("a");
    s.add("b");
    s.add("c");
    expect([s.has("a"), s.has("b"), s.has("c"), s.size]).toEqual([false, true, true, 2]);
  });

  it("counts a key added again as new", () => {
    const s = new RecentSet<string>(2);
    s.add("a");
    s.add("b");
    s.add("a");
    s.add("c");
    expect([s.has("a"), s.has("b"), s.has("c")]).toEqual([true, false, true]);
  });
});
