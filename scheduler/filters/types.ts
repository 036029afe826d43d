import type { HostState, ResourceRequest } from "../host-state.js";

export interface RequestSpec {
  instanceId: string;
  resources: ResourceRequest;
  availabilityZone: string | null;
  /** Hosts that already failed this build. */
  ignoreHosts: string[];
  /** The server group the instance joined at boot, if any (os:scheduler_hints.group). */
  group?: ServerGroupSpec | null;
  /** The image's properties (hw_architecture / architecture, img_hv_type / hypervisor_type, ...). */
  imageProperties?: Record<string, string>;
  /** The flavor's extra specs, matched against aggregate metadata. */
  flavorExtraSpecs?: Record<string, string>;
  /** same_host hint: the hosts of the named instances; the request must land on one of them. */
  sameHost?: string[] | null;
  /** different_host hint: the hosts of the named instances; the request must avoid them all. */
  differentHost?: string[] | null;
  /** A host whose last heartbeat is older than this (epoch ms) is down. */
  upSinceMs?: number;
}

export type ServerGroupPolicy = "affinity" | "anti-affinity" | "soft-affinity" | "soft-anti-affinity";

export interface ServerGroupSpec {
  id: string;
  policy: ServerGroupPolicy;
  /** Hosts of the group's other placed, undeleted members, with how many members each has. */
  hosts: Record<string, number>;
}

/** A filter keeps the hosts that can take the request. Pure. */
export interface HostFilter {
  name: string;
  passes(host: HostState, spec: RequestSpec): boolean;
}
