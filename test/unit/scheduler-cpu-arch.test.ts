import { describe, expect, it } from "vitest";
import { novaArchitecture } from "../../compute-agent/agent.js";
import { canonicalArchitecture } from "../../scheduler/filters/canonical-names.js";

describe("novaArchitecture (the agent's fallback when its driver reports no cpu_arch)", () => {
  it("maps Node's names to Nova's and keeps the rest", () => {
    expect(novaArchitecture("x64")).toBe("x86_64");
    expect(novaArchitecture("arm64")).toBe("aarch64");
    expect(novaArchitecture("ppc64")).toBe("ppc64");
    expect(novaArchitecture("s390x")).toBe("s390x");
  });

  it("gives names the image filter already treats as canonical", () => {
    for (const arch of ["x64", "arm64", "ppc64", "s390x"]) expect(canonicalArchitecture(novaArchitecture(arch))).toBe(novaArchitecture(arch));
  });
});
