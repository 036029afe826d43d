/** The bigint address arithmetic for IPv4 and IPv6 subnets. */
import { describe, expect, it } from "vitest";
import {
  canonicalIp, cidrContains, defaultGatewayOf, defaultPoolsOf, firstFreeInPools, formatIpv6, isHostAddressOf, netmaskOf, parseCidr, parseIpv6, validatePoolsOf,
} from "../../common/ipam.js";

describe("IPv6 text", () => {
  it.each([
    ["::", "::"], ["::1", "::1"], ["FD00:0:0:0:0:0:0:5", "fd00::5"], ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:0db8::0001", "2001:db8::1"], ["1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"], ["::ffff:10.0.0.1", "::ffff:a00:1"], ["fe80::", "fe80::"],
  ])("%s is %s (RFC 5952)", (text, canonical) => {
    expect(formatIpv6(parseIpv6(text)!)).toBe(canonical);
    expect(canonicalIp(text)).toBe(canonical);
  });
  it.each(["1:::2", "12345::", "1:2:3:4:5:6:7:8:9", ":1", "1:2", "g::1", "::1.2.3", "", "1::2::3"])("rejects %j", (bad) => {
    expect(parseIpv6(bad)).toBeNull();
  });
});

describe("IPv6 subnets", () => {
  const c = parseCidr("fd00:1::/64");
  it("parses, and refuses host bits", () => {
    expect(c).toEqual({ version: 6, network: parseIpv6("fd00:1::")!, prefix: 64, bits: 128 });
    expect(() => parseCidr("fd00:1::5/64")).toThrow(/did you mean fd00:1::\/64/);
    expect(() => parseCidr("fd00::/129")).toThrow(/Invalid CIDR/);
  });
  it("gives Neutron's gateway and pool (the last address is usable in IPv6)", () => {
    expect(defaultGatewayOf(c)).toBe("fd00:1::1");
    expect(defaultPoolsOf(c, "fd00:1::1")).toEqual([{ start: "fd00:1::2", end: "fd00:1::ffff:ffff:ffff:ffff" }]);
    expect(netmaskOf(c)).toBe("ffff:ffff:ffff:ffff::");
    expect(netmaskOf(parseCidr("10.0.0.0/20"))).toBe("255.255.240.0");
  });
  it("knows membership and host addresses", () => {
    expect(cidrContains(c, "fd00:1::abcd")).toBe(true);
    expect(cidrContains(c, "fd00:2::1")).toBe(false);
    expect(cidrContains(c, "10.0.0.1")).toBe(false);
    expect(isHostAddressOf(c, "fd00:1::")).toBe(false);
    expect(isHostAddressOf(c, "fd00:1::ffff:ffff:ffff:ffff")).toBe(true);
    expect(isHostAddressOf(parseCidr("10.0.0.0/24"), "10.0.0.255")).toBe(false);
  });
  it("validates pools", () => {
    expect(validatePoolsOf(c, [{ start: "fd00:1::10", end: "fd00:1::20" }], "fd00:1::1")).toBeNull();
    expect(validatePoolsOf(c, [{ start: "fd00:1::1", end: "fd00:1::20" }], "fd00:1::1")).toMatch(/conflicts/);
    expect(validatePoolsOf(c, [{ start: "fd00:2::1", end: "fd00:2::2" }], null)).toMatch(/beyond/);
    expect(validatePoolsOf(c, [{ start: "fd00:1::10", end: "fd00:1::20" }, { start: "fd00:1::20", end: "fd00:1::30" }], null)).toMatch(/overlapping/);
    expect(validatePoolsOf(c, [{ start: "10.0.0.1", end: "10.0.0.2" }], null)).toMatch(/Invalid allocation pool/);
  });
  it("finds the first free address past the taken ones", () => {
    const pools = [{ start: "fd00:1::2", end: "fd00:1::4" }, { start: "fd00:1::10", end: "fd00:1::10" }];
    expect(firstFreeInPools(6, pools, [])).toBe("fd00:1::2");
    expect(firstFreeInPools(6, pools, ["fd00:1::2", "fd00:1:0::3"])).toBe("fd00:1::4");
    expect(firstFreeInPools(6, pools, ["fd00:1::2", "fd00:1::3", "fd00:1::4"])).toBe("fd00:1::10");
    expect(firstFreeInPools(6, pools, ["fd00:1::2", "fd00:1::3", "fd00:1::4", "fd00:1::10"])).toBeNull();
  });
});
