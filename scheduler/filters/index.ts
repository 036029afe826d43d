import type { HostState } from "../host-state.js";
import { aggregateInstanceExtraSpecsFilter } from "./aggregate-instance-extra-specs.js";
import { availabilityZoneFilter } from "./availability-zone.js";
import { capacityFilter } from "./capacity.js";
import { computeFilter } from "./compute.js";
import { differentHostFilter } from "./different-host.js";
import { imagePropertiesFilter } from "./image-properties.js";
import { retryFilter } from "./retry.js";
import { sameHostFilter } from "./same-host.js";
import { appliesTo } from "./scoped.js";
import { serverGroupAffinityFilter, serverGroupAntiAffinityFilter } from "./server-group.js";
import type { HostFilter, RequestSpec } from "./types.js";

export type { HostFilter, RequestSpec, ServerGroupPolicy, ServerGroupSpec } from "./types.js";

/** Nova's hard server group policies, as filters. */
export const SERVER_GROUP_FILTERS: readonly HostFilter[] = [serverGroupAntiAffinityFilter, serverGroupAffinityFilter];

/** Every filter, cheapest and most selective first. */
export const DEFAULT_FILTERS: readonly HostFilter[] = [
  computeFilter,
  retryFilter,
  availabilityZoneFilter,
  sameHostFilter,
  differentHostFilter,
  ...SERVER_GROUP_FILTERS,
  imagePropertiesFilter,
  capacityFilter,
  aggregateInstanceExtraSpecsFilter,
];

/** The filters a request runs through. */
export function filtersFor(_spec: RequestSpec): readonly HostFilter[] {
  return DEFAULT_FILTERS;
}

const PASS: HostFilter = { name: "none", passes: () => true };

export interface FilterResult {
  hosts: HostState[];
  /** How many hosts each filter left, in order, up to the first that left none: the why of a "No valid host". */
  trail: { filter: string; remaining: number }[];
}

/**
 * One pass over the hosts, each going through the filters until one refuses it; no
 * intermediate arrays. A filter with nothing to check for this request is skipped (it
 * would pass every host) but still appears in the trail. The trail is derived from how
 * many hosts each filter refused; a filter after one that refused every host never sees
 * a host.
 */
export function runFilters(hosts: readonly HostState[], spec: RequestSpec, filters: readonly HostFilter[] = filtersFor(spec)): FilterResult {
  const active: number[] = [];
  for (let i = 0; i < filters.length; i++) if (appliesTo(filters[i]!, spec)) active.push(i);
  const checks = active.map((i) => filters[i]!);
  const refused = new Array<number>(filters.length).fill(0);
  // Sized for every host and cut to what passed: grown by push instead, its successive
  // copies cost a decision at 10,000 hosts about 150 KB more (V8's sampling heap profiler),
  // and each scavenge of the young generation pauses a decision for 2 to 4 ms here.
  const kept: HostState[] = new Array<HostState>(hosts.length);
  let passed = 0;
  // The first four checks from call sites of their own, as rank.ts's fillRows calls weighers.
  const n = checks.length;
  const [c0 = PASS, c1 = PASS, c2 = PASS, c3 = PASS] = checks;
  for (let i = 0; i < hosts.length; i++) {
    const host = hosts[i]!;
    let failed = -1;
    if (n > 0 && !c0.passes(host, spec)) failed = 0;
    else if (n > 1 && !c1.passes(host, spec)) failed = 1;
    else if (n > 2 && !c2.passes(host, spec)) failed = 2;
    else if (n > 3 && !c3.passes(host, spec)) failed = 3;
    else {
      for (let j = 4; j < n; j++) {
        if (!checks[j]!.passes(host, spec)) {
          failed = j;
          break;
        }
      }
    }
    if (failed < 0) kept[passed++] = host;
    else refused[active[failed]!]! += 1;
  }
  kept.length = passed;
  const trail: FilterResult["trail"] = [];
  let remaining = hosts.length;
  for (let i = 0; i < filters.length; i++) {
    remaining -= refused[i]!;
    trail.push({ filter: filters[i]!.name, remaining });
    if (remaining === 0) break;
  }
  return { hosts: kept, trail };
}
