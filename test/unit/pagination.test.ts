import { describe, expect, it } from "vitest";
import { MAX_LIMIT, nextLink, pageSize } from "../../api/pagination.js";

const BASE = "https://cirrus.example/v2.1/servers";
const items = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `id-${i + 1}` }));
const hrefOf = (links: { rel: string; href: string }[]) => {
  expect(links).toHaveLength(1);
  expect(links[0]!.rel).toBe("next");
  return new URL(links[0]!.href);
};

describe("pageSize", () => {
  it("defaults to max_limit 1000", () => {
    expect(MAX_LIMIT).toBe(1000);
    expect(pageSize(undefined)).toBe(1000);
  });

  it("caps at 1000", () => {
    expect(pageSize(1001)).toBe(1000);
    expect(pageSize(5000)).toBe(1000);
    expect(pageSize(1000)).toBe(1000);
  });

  it("keeps a smaller limit", () => {
    expect(pageSize(1)).toBe(1);
    expect(pageSize(25)).toBe(25);
    expect(pageSize(999)).toBe(999);
  });
});

describe("nextLink", () => {
  it("is empty when the page is not full", () => {
    expect(nextLink(BASE, {}, items(2), 3)).toEqual([]);
    expect(nextLink(BASE, { limit: 10 }, items(9), 10)).toEqual([]);
    expect(nextLink(BASE, {}, [], 1000)).toEqual([]);
  });

  it("points after the last item when the page is full", () => {
    const url = hrefOf(nextLink(BASE, {}, items(3), 3));
    expect(`${url.origin}${url.pathname}`).toBe(BASE);
    expect(url.searchParams.getAll("marker")).toEqual(["id-3"]);
    expect(url.searchParams.get("limit")).toBe("3");
  });

  it("carries the other query parameters, repeated ones included", () => {
    const url = hrefOf(
      nextLink(BASE, { limit: 2, status: "ACTIVE", name: "web 1&2", sort_key: ["name", "created_at"], all_tenants: true, skipped: undefined }, items(2), 2),
    );
    expect(url.searchParams.get("status")).toBe("ACTIVE");
    expect(url.searchParams.get("name")).toBe("web 1&2");
    expect(url.searchParams.getAll("sort_key")).toEqual(["name", "created_at"]);
    expect(url.searchParams.get("all_tenants")).toBe("true");
    expect(url.searchParams.has("skipped")).toBe(false);
    expect(url.searchParams.getAll("limit")).toEqual(["2"]);
    expect(url.searchParams.getAll("marker")).toEqual(["id-2"]);
  });

  it("never carries two markers: the old one is replaced by the last id", () => {
    const url = hrefOf(nextLink(BASE, { marker: "old-marker", limit: 2 }, items(2), 2));
    expect(url.searchParams.getAll("marker")).toEqual(["id-2"]);
    expect(url.href).not.toContain("old-marker");
  });

  it("uses the capped page size, not an over-large requested limit", () => {
    const url = hrefOf(nextLink(BASE, { limit: 5000 }, items(1000), pageSize(5000)));
    expect(url.searchParams.getAll("limit")).toEqual(["1000"]);
    expect(url.searchParams.get("marker")).toBe("id-1000");
  });
});
