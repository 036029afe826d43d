import type { HostFilter } from "./types.js";

export const DEFAULT_AVAILABILITY_ZONE = "nova";

/** A request for a zone only lands on hosts in it; hosts without a zone are in "nova". */
export const availabilityZoneFilter: HostFilter = {
  name: "AvailabilityZoneFilter",
  passes(host, spec) {
    if (spec.availabilityZone === null) return true;
    return (host.availabilityZone ?? DEFAULT_AVAILABILITY_ZONE) === spec.availabilityZone;
  },
};
