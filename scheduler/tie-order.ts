/**
 * The order in which a scheduler process takes hosts that weigh the same. Every scheduler
 * reads the same view of the hosts, so with one fixed tie order (the host's name, as it
 * was) they all choose the same best hosts: in a cloud of identical hosts, three schedulers
 * placing batches at once chose the same 32 hosts, and the claims of all but one lost
 * their compare-and-set and were decided again (B4 at 1,000 hosts: 5,820 claims for 2,000
 * boots, docs/scheduler.md). Nova's answer is host_subset_size, a random pick among the
 * best N, which gives up the best host; here only hosts that weigh exactly the same are
 * reordered, each process by its own salt, so no host is chosen over a better one.
 */
import { randomBytes } from "node:crypto";

/** This process's salt: random, so that two scheduler processes order ties differently. */
const processSalt = randomBytes(4).readUInt32LE(0);

/** FNV-1a over the name's code units, then a murmur3 finaliser mixing in the salt. */
export function tieKey(host: string, salt: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < host.length; i++) h = Math.imul(h ^ host.charCodeAt(i), 0x01000193);
  h ^= salt;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The host's place among equally weighed hosts in this process. */
export function processTieKey(host: string): number {
  return tieKey(host, processSalt);
}
