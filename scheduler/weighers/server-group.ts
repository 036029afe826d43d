/**
 * Nova's soft server group policies, as weighers: the value is how many of the group's
 * other members a host already runs; soft-affinity prefers more, soft-anti-affinity
 * fewer. Nova's multiplier default is 1.0, which RAM and CPU spreading outvote on
 * an empty host; Cirrus defaults to 10 so the soft policy wins unless a host is full.
 */
import type { ServerGroupSpec } from "../filters/types.js";
import type { Weigher } from "./index.js";

export const SOFT_GROUP_MULTIPLIER = 10.0;

const membersOn = (group: ServerGroupSpec, host: string) => group.hosts[host] ?? 0;

export const softAffinityWeigher = (group: ServerGroupSpec, multiplier = SOFT_GROUP_MULTIPLIER): Weigher => ({
  name: "ServerGroupSoftAffinityWeigher",
  multiplier,
  value: (h) => membersOn(group, h.host),
});

export const softAntiAffinityWeigher = (group: ServerGroupSpec, multiplier = SOFT_GROUP_MULTIPLIER): Weigher => ({
  name: "ServerGroupSoftAntiAffinityWeigher",
  multiplier,
  value: (h) => -membersOn(group, h.host),
});
