import type { HostFilter, RequestSpec } from "./types.js";

/**
 * A filter that can tell, once per request, that it has nothing to check (no hint, no
 * group, no image property...). runFilters then skips it, since it would pass every
 * host anyway: at 10,000 hosts a call per host and filter is what costs.
 */
export interface ScopedFilter extends HostFilter {
  appliesTo(spec: RequestSpec): boolean;
}

export function appliesTo(filter: HostFilter, spec: RequestSpec): boolean {
  const scoped = filter as Partial<ScopedFilter>;
  return scoped.appliesTo === undefined || scoped.appliesTo(spec);
}
