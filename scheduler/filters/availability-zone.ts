import type { ScopedFilter } from "./scoped.js";

export const DEFAULT_AVAILABILITY_ZONE = "nova";

/** A request for a zone only lands on hosts in it; hosts without a zone are in "nova". */
export const availabilityZoneFilter: ScopedFilter = {
  name: "AvailabilityZoneFilter",
  appliesTo: (spec) => spec.availabilityZone !== null,
  passes(host, spec) {
    if (spec.availabilityZone === null) return true;
    return (host.availabilityZone ?? DEFAULT_AVAILABILITY_ZONE) === spec.availabilityZone;
  },
};
