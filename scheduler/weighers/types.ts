import type { HostState } from "../host-state.js";

/**
 * A weigher gives a raw value per host; values are normalised to [0, 1] across all
 * candidates, multiplied and summed. Higher totals win.
 */
export interface Weigher {
  name: string;
  multiplier: number;
  value(host: HostState): number;
}
