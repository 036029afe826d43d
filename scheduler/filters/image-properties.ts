import { canonicalArchitecture, canonicalHypervisorType, hostRunsArchitecture, hostRunsHypervisorType } from "./canonical-names.js";
import type { ScopedFilter } from "./scoped.js";

/** What an image asks of a host, canonical; null: nothing asked. */
export interface ImageRequirements {
  architecture: string | null;
  hypervisorType: string | null;
}

/**
 * The image's hw_architecture and img_hv_type, or their legacy names architecture and
 * hypervisor_type (the current name wins when both are set, as in Nova's ImageMetaProps).
 * An empty value asks for nothing.
 */
export function imageRequirements(props: Record<string, string> | undefined): ImageRequirements {
  const arch = props?.hw_architecture ?? props?.architecture;
  const hv = props?.img_hv_type ?? props?.hypervisor_type;
  return {
    architecture: arch ? canonicalArchitecture(arch) : null,
    hypervisorType: hv ? canonicalHypervisorType(hv) : null,
  };
}

/** A request's requirements, with the answer for the last host spelling seen: most hosts share one. */
interface Checker extends ImageRequirements {
  lastArch: string | null;
  lastArchRuns: boolean;
  lastHvType: string | null;
  lastHvTypeRuns: boolean;
}

// The properties are the same for every host of a request: read them once per object.
let lastProps: Record<string, string> | undefined;
let lastChecker: Checker = checkerFor(undefined);

function checkerFor(props: Record<string, string> | undefined): Checker {
  const { architecture, hypervisorType } = imageRequirements(props);
  // A plain literal, not a spread: it is read several times per host and must keep a fixed shape.
  return { architecture, hypervisorType, lastArch: null, lastArchRuns: false, lastHvType: null, lastHvTypeRuns: false };
}

function checkerOf(props: Record<string, string> | undefined): Checker {
  if (props !== lastProps) {
    lastChecker = checkerFor(props);
    lastProps = props;
  }
  return lastChecker;
}

function runsArchitecture(c: Checker, hostArch: string | null): boolean {
  if (!hostArch) return false;
  if (hostArch !== c.lastArch) {
    c.lastArchRuns = hostRunsArchitecture(hostArch, c.architecture!);
    c.lastArch = hostArch;
  }
  return c.lastArchRuns;
}

function runsHypervisorType(c: Checker, hostType: string): boolean {
  if (hostType !== c.lastHvType) {
    c.lastHvTypeRuns = hostRunsHypervisorType(hostType, c.hypervisorType!);
    c.lastHvType = hostType;
  }
  return c.lastHvTypeRuns;
}

/**
 * ImagePropertiesFilter: the host runs the image's architecture and hypervisor type.
 * A host whose architecture is unknown passes only images that ask for none. Not
 * covered: hw_vm_mode, img_hv_requested_version, hw_maxphysaddr_bits.
 */
export const imagePropertiesFilter: ScopedFilter = {
  name: "ImagePropertiesFilter",
  appliesTo(spec) {
    const c = checkerOf(spec.imageProperties);
    return c.architecture !== null || c.hypervisorType !== null;
  },
  passes(host, spec) {
    const c = checkerOf(spec.imageProperties);
    if (c.architecture !== null && !runsArchitecture(c, host.cpuArch)) return false;
    if (c.hypervisorType !== null && !runsHypervisorType(c, host.hypervisorType)) return false;
    return true;
  },
};
