import type { ResourceClass } from "../../common/messages.js";
import { free, type ResourceUsage } from "../host-state.js";
import type { ScopedFilter } from "./scoped.js";

/** Placement's rule for one class: within min_unit and max_unit, a multiple of step_size, and room for it. */
function fits(r: ResourceUsage | undefined, amount: number | undefined): boolean {
  if (amount === undefined || amount === 0) return true;
  if (!r) return false;
  if (amount < r.min_unit || amount > r.max_unit || amount % r.step_size !== 0) return false;
  return amount <= free(r);
}

// Each class is read by its own property name: a lookup by a variable class name costs
// three times as much per host. Adding a resource class breaks this line on purpose.
const CHECKED: Record<ResourceClass, true> = { VCPU: true, MEMORY_MB: true, DISK_GB: true };
void CHECKED;

/**
 * Enough of every requested resource class, with placement's capacity (total -
 * reserved) * allocation_ratio - used, min_unit, max_unit and step_size. A host without
 * a requested class fails; a zero request is no request.
 */
export const capacityFilter: ScopedFilter = {
  name: "CapacityFilter",
  appliesTo: ({ resources: q }) => !!(q.VCPU || q.MEMORY_MB || q.DISK_GB),
  passes(host, spec) {
    const q = spec.resources;
    const r = host.resources;
    return fits(r.VCPU, q.VCPU) && fits(r.MEMORY_MB, q.MEMORY_MB) && fits(r.DISK_GB, q.DISK_GB);
  },
};
