/** Nova's default instance_name_template instance-%08x: the libvirt domain name of an instance. */
export function instanceNameFromSeq(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RangeError(`instance sequence must be an integer in 0..0xffffffff, got ${n}`);
  }
  return `instance-${n.toString(16).padStart(8, "0")}`;
}
