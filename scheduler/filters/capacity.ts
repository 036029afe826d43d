import { RESOURCE_CLASSES } from "../../common/messages.js";
import { free } from "../host-state.js";
import type { HostFilter } from "./types.js";

/** Enough of every requested resource class, within min_unit, max_unit and step_size. */
export const capacityFilter: HostFilter = {
  name: "CapacityFilter",
  passes(host, spec) {
    for (const rc of RESOURCE_CLASSES) {
      const amount = spec.resources[rc];
      if (amount === undefined || amount === 0) continue;
      const r = host.resources[rc];
      if (!r) return false;
      if (amount < r.min_unit || amount > r.max_unit || amount % r.step_size !== 0) return false;
      if (amount > free(r)) return false;
    }
    return true;
  },
};
