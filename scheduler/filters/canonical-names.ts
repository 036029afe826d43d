/**
 * Nova's canonical spellings of CPU architectures and hypervisor types (its
 * Architecture and HVType canonicalize), and what a host of a given kind can run.
 * Unlike Nova, an unknown name is not an error here: it simply matches only itself.
 */

const I686_ALIASES = new Set(["i386", "i486", "i586", "x86_32", "x86_32p"]);

export function canonicalArchitecture(name: string): string {
  const n = name.toLowerCase();
  if (I686_ALIASES.has(n)) return "i686";
  if (n === "amd64") return "x86_64";
  return n;
}

export function canonicalHypervisorType(name: string): string {
  const n = name.toLowerCase();
  return n === "xapi" ? "xen" : n;
}

/** libvirt offers i686 guests on an x86_64 host, so Nova's supported_instances list both. */
export function hostRunsArchitecture(hostArch: string, imageArch: string): boolean {
  const host = canonicalArchitecture(hostArch);
  return host === imageArch || (host === "x86_64" && imageArch === "i686");
}

/**
 * A libvirt host registers "QEMU" whether it runs guests with KVM or TCG, and Nova's
 * libvirt driver advertises both domain types where KVM is available, so an image asking
 * for either runs on either.
 */
export function hostRunsHypervisorType(hostType: string, imageType: string): boolean {
  const host = canonicalHypervisorType(hostType);
  if (host === imageType) return true;
  return (host === "qemu" || host === "kvm") && (imageType === "qemu" || imageType === "kvm");
}
