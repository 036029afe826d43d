import type { HostState } from "../host-state.js";
import { availabilityZoneFilter } from "./availability-zone.js";
import { capacityFilter } from "./capacity.js";
import { retryFilter } from "./retry.js";
import type { HostFilter, RequestSpec } from "./types.js";

export type { HostFilter, RequestSpec } from "./types.js";

// Compute enabled/up is decided in SQL before hosts reach the filters.
export const DEFAULT_FILTERS: HostFilter[] = [retryFilter, availabilityZoneFilter, capacityFilter];

export interface FilterResult {
  hosts: HostState[];
  /** How many hosts each filter left, in order: the why of a "No valid host". */
  trail: { filter: string; remaining: number }[];
}

export function runFilters(hosts: HostState[], spec: RequestSpec, filters: HostFilter[] = DEFAULT_FILTERS): FilterResult {
  const trail: FilterResult["trail"] = [];
  let remaining = hosts;
  for (const f of filters) {
    remaining = remaining.filter((h) => f.passes(h, spec));
    trail.push({ filter: f.name, remaining: remaining.length });
    if (remaining.length === 0) break;
  }
  return { hosts: remaining, trail };
}
