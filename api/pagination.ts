/** Nova's limit/marker paging: max_limit 1000, a next link only when the page is full. */
export const MAX_LIMIT = 1000;

export function pageSize(limit: number | undefined): number {
  return limit === undefined ? MAX_LIMIT : Math.min(limit, MAX_LIMIT);
}

export function nextLink(
  baseUrl: string,
  query: Record<string, unknown>,
  items: { id: string }[],
  size: number,
): { rel: string; href: string }[] {
  const last = items[items.length - 1];
  if (items.length === 0 || items.length < size || !last) return [];
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (key === "marker" || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
  }
  params.set("limit", String(size));
  params.set("marker", last.id);
  return [{ rel: "next", href: `${baseUrl}?${params.toString()}` }];
}
