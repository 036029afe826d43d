/**
 * Nova's soft server group policies, as weighers: the value is how many of the group's
 * other members a host already runs; soft-affinity prefers more, soft-anti-affinity
 * fewer. The default multiplier is in common/config.ts (DEFAULT_WEIGHER_MULTIPLIERS).
 */
import { DEFAULT_WEIGHER_MULTIPLIERS } from "../../common/config.js";
import type { ServerGroupSpec } from "../filters/types.js";
import type { Weigher } from "./types.js";

export const SOFT_GROUP_MULTIPLIER = DEFAULT_WEIGHER_MULTIPLIERS.softAffinity;

const membersOn = (group: ServerGroupSpec, host: string): number => (Object.hasOwn(group.hosts, host) ? group.hosts[host]! : 0);

export const softAffinityWeigher = (group: ServerGroupSpec, multiplier = DEFAULT_WEIGHER_MULTIPLIERS.softAffinity): Weigher => ({
  name: "ServerGroupSoftAffinityWeigher",
  multiplier,
  value: (h) => membersOn(group, h.host),
});

export const softAntiAffinityWeigher = (group: ServerGroupSpec, multiplier = DEFAULT_WEIGHER_MULTIPLIERS.softAntiAffinity): Weigher => ({
  name: "ServerGroupSoftAntiAffinityWeigher",
  multiplier,
  value: (h) => -membersOn(group, h.host),
});
