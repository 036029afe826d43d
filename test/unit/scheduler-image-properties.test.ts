import { describe, expect, it } from "vitest";
import { canonicalArchitecture, canonicalHypervisorType, hostRunsArchitecture, hostRunsHypervisorType } from "../../scheduler/filters/canonical-names.js";
import { imagePropertiesFilter, imageRequirements } from "../../scheduler/filters/image-properties.js";
import type { RequestSpec } from "../../scheduler/filters/types.js";
import type { HostState } from "../../scheduler/host-state.js";

const host = (cpuArch: string | null, hypervisorType = "QEMU"): HostState => ({
  providerId: "rp",
  host: "h",
  hypervisorHostname: "h",
  generation: 1,
  availabilityZone: null,
  resources: {},
  instanceCount: 0,
  enabled: true,
  forcedDown: false,
  lastSeenMs: 0,
  hypervisorType,
  cpuArch,
  aggregateMetadata: {},
  failedBuilds: 0,
  tieKey: 0,
});
const spec = (imageProperties?: Record<string, string>): RequestSpec => ({
  instanceId: "i",
  resources: {},
  availabilityZone: null,
  ignoreHosts: [],
  ...(imageProperties ? { imageProperties } : {}),
});
const passes = (h: HostState, props?: Record<string, string>) => imagePropertiesFilter.passes(h, spec(props));

describe("canonical names (Nova's Architecture / HVType canonicalize)", () => {
  it("architectures: lower case, i386..i586 and x86_32 are i686, amd64 is x86_64", () => {
    expect(["X86_64", "amd64", "AMD64", "i386", "i486", "i586", "x86_32", "x86_32p", "aarch64", "ppc64le"].map(canonicalArchitecture)).toEqual([
      "x86_64", "x86_64", "x86_64", "i686", "i686", "i686", "i686", "i686", "aarch64", "ppc64le",
    ]);
  });

  it("hypervisor types: lower case, xapi is xen", () => {
    expect(["QEMU", "KVM", "xapi", "Xen", "fake"].map(canonicalHypervisorType)).toEqual(["qemu", "kvm", "xen", "xen", "fake"]);
  });

  it("an x86_64 host also runs i686 guests, not the reverse", () => {
    expect(hostRunsArchitecture("x86_64", "i686")).toBe(true);
    expect(hostRunsArchitecture("i686", "x86_64")).toBe(false);
    expect(hostRunsArchitecture("aarch64", "x86_64")).toBe(false);
  });

  it("qemu and kvm stand for each other; other types only for themselves", () => {
    expect(hostRunsHypervisorType("QEMU", "kvm")).toBe(true);
    expect(hostRunsHypervisorType("KVM", "qemu")).toBe(true);
    expect(hostRunsHypervisorType("QEMU", "xen")).toBe(false);
    expect(hostRunsHypervisorType("fake", "qemu")).toBe(false);
    expect(hostRunsHypervisorType("test", "test")).toBe(true);
  });
});

describe("imageRequirements", () => {
  it("reads the current names, then the legacy ones; the current name wins", () => {
    expect(imageRequirements({ hw_architecture: "AMD64", img_hv_type: "KVM" })).toEqual({ architecture: "x86_64", hypervisorType: "kvm" });
    expect(imageRequirements({ architecture: "i386", hypervisor_type: "QEMU" })).toEqual({ architecture: "i686", hypervisorType: "qemu" });
    expect(imageRequirements({ hw_architecture: "aarch64", architecture: "x86_64" }).architecture).toBe("aarch64");
    expect(imageRequirements({ img_hv_type: "xen", hypervisor_type: "qemu" }).hypervisorType).toBe("xen");
  });

  it("no properties, unrelated ones or empty values ask for nothing", () => {
    const none = { architecture: null, hypervisorType: null };
    expect(imageRequirements(undefined)).toEqual(none);
    expect(imageRequirements({ os_distro: "ubuntu" })).toEqual(none);
    expect(imageRequirements({ hw_architecture: "", img_hv_type: "" })).toEqual(none);
  });
});

describe("ImagePropertiesFilter", () => {
  it("passes every host when the image asks for nothing, a host of unknown arch included", () => {
    expect(passes(host(null))).toBe(true);
    expect(passes(host(null), { os_distro: "cirros" })).toBe(true);
    expect(passes(host("aarch64", "fake"), {})).toBe(true);
  });

  it("architecture: the host's, in any spelling", () => {
    expect(passes(host("x86_64"), { hw_architecture: "x86_64" })).toBe(true);
    expect(passes(host("x86_64"), { hw_architecture: "AMD64" })).toBe(true);
    expect(passes(host("amd64"), { architecture: "x86_64" })).toBe(true);
    expect(passes(host("x86_64"), { hw_architecture: "aarch64" })).toBe(false);
    expect(passes(host("aarch64"), { architecture: "x86_64" })).toBe(false);
    expect(passes(host("x86_64"), { hw_architecture: "i386" })).toBe(true);
  });

  it("a host whose architecture is unknown fails an image that asks for one", () => {
    expect(passes(host(null), { hw_architecture: "x86_64" })).toBe(false);
    expect(passes(host(""), { hw_architecture: "x86_64" })).toBe(false);
    expect(passes(host(null), { img_hv_type: "qemu" })).toBe(true);
  });

  it("hypervisor type: case-insensitive, qemu and kvm interchangeable", () => {
    expect(passes(host("x86_64", "QEMU"), { img_hv_type: "qemu" })).toBe(true);
    expect(passes(host("x86_64", "QEMU"), { img_hv_type: "KVM" })).toBe(true);
    expect(passes(host("x86_64", "QEMU"), { hypervisor_type: "kvm" })).toBe(true);
    expect(passes(host("x86_64", "QEMU"), { img_hv_type: "xen" })).toBe(false);
    expect(passes(host("x86_64", "fake"), { img_hv_type: "qemu" })).toBe(false);
    expect(passes(host("x86_64", "xen"), { hypervisor_type: "xapi" })).toBe(true);
  });

  it("both asked: both must hold", () => {
    const props = { hw_architecture: "x86_64", img_hv_type: "qemu" };
    expect(passes(host("x86_64", "QEMU"), props)).toBe(true);
    expect(passes(host("aarch64", "QEMU"), props)).toBe(false);
    expect(passes(host("x86_64", "test"), props)).toBe(false);
  });

  it("a new properties object is read afresh (the per-request cache follows the object)", () => {
    const h = host("x86_64");
    expect(passes(h, { hw_architecture: "aarch64" })).toBe(false);
    expect(passes(h, { hw_architecture: "x86_64" })).toBe(true);
    expect(passes(h)).toBe(true);
  });
});
