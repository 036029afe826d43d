import type { HostState } from "../host-state.js";
import { availabilityZoneFilter } from "./availability-zone.js";
import { capacityFilter } from "./capacity.js";
import { retryFilter } from "./retry.js";
import { serverGroupAffinityFilter, serverGroupAntiAffinityFilter } from "./server-group.js";
import type { HostFilter, RequestSpec } from "./types.js";

export type { HostFilter, RequestSpec, ServerGroupPolicy, ServerGroupSpec } from "./types.js";

// Compute enabled/up is decided in SQL before hosts reach the filters.
export const DEFAULT_FILTERS: HostFilter[] = [retryFilter, availabilityZoneFilter, capacityFilter];

/** Nova's hard server group policies, as filters; they join the defaults for a request in a group. */
export const SERVER_GROUP_FILTERS: HostFilter[] = [serverGroupAntiAffinityFilter, serverGroupAffinityFilter];

/** The filters a request runs through: the defaults, and the group filters when it is in a group. */
export function filtersFor(spec: RequestSpec): HostFilter[] {
  return spec.group ? [...DEFAULT_FILTERS, ...SERVER_GROUP_FILTERS] : DEFAULT_FILTERS;
}

export interface FilterResult {
  hosts: HostState[];
  /** How many hosts each filter left, in order: the why of a "No valid host". */
  trail: { filter: string; remaining: number }[];
}

export function runFilters(hosts: HostState[], spec: RequestSpec, filters: HostFilter[] = filtersFor(spec)): FilterResult {
  const trail: FilterResult["trail"] = [];
  let remaining = hosts;
  for (const f of filters) {
    remaining = remaining.filter((h) => f.passes(h, spec));
    trail.push({ filter: f.name, remaining: remaining.length });
    if (remaining.length === 0) break;
  }
  return { hosts: remaining, trail };
}
