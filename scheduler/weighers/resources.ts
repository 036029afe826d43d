/** RAMWeigher, CPUWeigher, DiskWeigher: free capacity of one resource class (none without it). */
import { free, type HostState } from "../host-state.js";
import type { Weigher } from "./types.js";

// One function per class with a fixed property name: a lookup by a variable class name
// costs several times more, and these run for every candidate of every request.
const freeRam = (h: HostState) => (h.resources.MEMORY_MB ? free(h.resources.MEMORY_MB) : 0);
const freeCpu = (h: HostState) => (h.resources.VCPU ? free(h.resources.VCPU) : 0);
const freeDisk = (h: HostState) => (h.resources.DISK_GB ? free(h.resources.DISK_GB) : 0);

export const ramWeigher = (multiplier = 1.0): Weigher => ({ name: "RAMWeigher", multiplier, value: freeRam });
export const cpuWeigher = (multiplier = 1.0): Weigher => ({ name: "CPUWeigher", multiplier, value: freeCpu });
export const diskWeigher = (multiplier = 1.0): Weigher => ({ name: "DiskWeigher", multiplier, value: freeDisk });
