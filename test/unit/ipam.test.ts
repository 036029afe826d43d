import { describe, expect, it } from "vitest";
import {
  contains, defaultGateway, defaultPools, hostRange, inPools, intToIp, ipToInt, isHostAddress, isIpv4, parseCidr4, validatePools,
} from "../../common/ipam.js";

const net = (cidr: string) => parseCidr4(cidr);

describe("ipToInt / intToIp", () => {
  it.each([
    ["0.0.0.0", 0],
    ["0.0.0.1", 1],
    ["10.0.0.1", 167772161],
    ["192.168.1.254", 3232236030],
    ["128.0.0.0", 2147483648], // above the signed 32-bit range
    ["255.255.255.255", 4294967295],
  ])("%s ⇄ %i", (ip, n) => {
    expect(ipToInt(ip)).toBe(n);
    expect(intToIp(n)).toBe(ip);
    expect(intToIp(ipToInt(ip))).toBe(ip);
  });

  it("rejects what is not a dotted quad", () => {
    for (const bad of ["256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "a.b.c.d", "", " 1.2.3.4", "1.2.3.-1"]) {
      expect(isIpv4(bad), bad).toBe(false);
      expect(() => ipToInt(bad), bad).toThrow(/invalid IPv4 address/);
    }
  });
});

describe("parseCidr4", () => {
  it("parses a valid CIDR", () => {
    expect(net("10.0.0.0/24")).toEqual({ network: 167772160, prefix: 24, size: 256 });
    expect(net("0.0.0.0/0")).toEqual({ network: 0, prefix: 0, size: 2 ** 32 });
    expect(net("192.168.1.7/32")).toEqual({ network: 3232235783, prefix: 32, size: 1 });
    expect(net(" 172.16.0.0/12 ")).toEqual({ network: 2886729728, prefix: 12, size: 2 ** 20 });
  });

  it("refuses host bits and suggests the network", () => {
    expect(() => net("10.0.0.5/24")).toThrow("Invalid CIDR 10.0.0.5/24: host bits are set, did you mean 10.0.0.0/24?");
    expect(() => net("192.168.1.130/25")).toThrow(/did you mean 192\.168\.1\.128\/25\?/);
  });

  it("refuses a prefix above 32", () => {
    expect(() => net("10.0.0.0/33")).toThrow("Invalid CIDR 10.0.0.0/33");
    expect(() => net("10.0.0.0/99")).toThrow(/Invalid CIDR/);
    expect(() => net("10.0.0.0/100")).toThrow(/Invalid CIDR/);
  });

  it("refuses garbage", () => {
    for (const bad of ["", "10.0.0.0", "10.0.0.0/", "/24", "garbage", "10.0.0/24", "300.0.0.0/8", "10.0.0.0/-1", "10.0.0.0/2a", "fd00::/64"]) {
      expect(() => net(bad), bad).toThrow(/Invalid CIDR/);
    }
  });
});

describe("contains / isHostAddress", () => {
  const c24 = net("10.0.0.0/24");

  it("contains every address of the block, network and broadcast included", () => {
    expect(contains(c24, "10.0.0.0")).toBe(true);
    expect(contains(c24, "10.0.0.128")).toBe(true);
    expect(contains(c24, "10.0.0.255")).toBe(true);
    expect(contains(c24, "10.0.1.0")).toBe(false);
    expect(contains(c24, "9.255.255.255")).toBe(false);
    expect(contains(c24, "not-an-ip")).toBe(false);
    expect(contains(net("0.0.0.0/0"), "255.255.255.255")).toBe(true);
  });

  it("excludes network and broadcast addresses from host addresses", () => {
    expect(isHostAddress(c24, "10.0.0.0")).toBe(false);
    expect(isHostAddress(c24, "10.0.0.1")).toBe(true);
    expect(isHostAddress(c24, "10.0.0.254")).toBe(true);
    expect(isHostAddress(c24, "10.0.0.255")).toBe(false);
    expect(isHostAddress(c24, "10.0.1.1")).toBe(false);
    expect(isHostAddress(c24, "nonsense")).toBe(false);
  });

  it("treats both addresses of a /31 and the one of a /32 as hosts", () => {
    const c31 = net("10.0.0.4/31");
    expect(isHostAddress(c31, "10.0.0.4")).toBe(true);
    expect(isHostAddress(c31, "10.0.0.5")).toBe(true);
    expect(isHostAddress(c31, "10.0.0.6")).toBe(false);
    expect(isHostAddress(c31, "10.0.0.3")).toBe(false);
    const c32 = net("10.0.0.9/32");
    expect(isHostAddress(c32, "10.0.0.9")).toBe(true);
    expect(isHostAddress(c32, "10.0.0.8")).toBe(false);
    expect(isHostAddress(c32, "10.0.0.10")).toBe(false);
    expect(hostRange(net("10.0.0.0/30"))).toEqual({ first: ipToInt("10.0.0.1"), last: ipToInt("10.0.0.2") });
  });
});

describe("defaultGateway", () => {
  it("is the first host address", () => {
    expect(defaultGateway(net("10.0.0.0/24"))).toBe("10.0.0.1");
    expect(defaultGateway(net("192.168.8.0/22"))).toBe("192.168.8.1");
    expect(defaultGateway(net("10.0.0.0/30"))).toBe("10.0.0.1");
  });

  it("is null when there is a single address", () => {
    expect(defaultGateway(net("10.0.0.9/32"))).toBeNull();
  });
});

describe("defaultPools", () => {
  const c24 = net("10.0.0.0/24");

  it("with the gateway at the start: one pool after it", () => {
    expect(defaultPools(c24, "10.0.0.1")).toEqual([{ start: "10.0.0.2", end: "10.0.0.254" }]);
  });

  it("with the gateway second: a one-address pool before it", () => {
    expect(defaultPools(c24, "10.0.0.2")).toEqual([
      { start: "10.0.0.1", end: "10.0.0.1" },
      { start: "10.0.0.3", end: "10.0.0.254" },
    ]);
    expect(defaultPools(c24, "10.0.0.253")).toEqual([
      { start: "10.0.0.1", end: "10.0.0.252" },
      { start: "10.0.0.254", end: "10.0.0.254" },
    ]);
  });

  it("with the gateway at the end: one pool before it", () => {
    expect(defaultPools(c24, "10.0.0.254")).toEqual([{ start: "10.0.0.1", end: "10.0.0.253" }]);
  });

  it("with the gateway in the middle: two pools around it", () => {
    expect(defaultPools(c24, "10.0.0.100")).toEqual([
      { start: "10.0.0.1", end: "10.0.0.99" },
      { start: "10.0.0.101", end: "10.0.0.254" },
    ]);
  });

  it("without a gateway: every host address", () => {
    expect(defaultPools(c24, null)).toEqual([{ start: "10.0.0.1", end: "10.0.0.254" }]);
    expect(defaultPools(net("10.0.0.4/31"), null)).toEqual([{ start: "10.0.0.4", end: "10.0.0.5" }]);
  });

  it("default pools always validate against their own gateway", () => {
    for (const [cidr, gw] of [["10.0.0.0/24", "10.0.0.1"], ["10.0.0.0/24", "10.0.0.77"], ["10.0.0.0/24", null], ["172.16.0.0/16", "172.16.255.254"]] as const) {
      const c = net(cidr);
      const pools = defaultPools(c, gw);
      expect(validatePools(c, pools, gw), `${cidr} ${gw}`).toBeNull();
      if (gw) expect(inPools(pools, gw)).toBe(false);
    }
  });
});

describe("validatePools", () => {
  const c24 = net("10.0.0.0/24");
  const gw = "10.0.0.1";

  it("accepts pools inside the host range that avoid the gateway", () => {
    expect(validatePools(c24, [{ start: "10.0.0.2", end: "10.0.0.254" }], gw)).toBeNull();
    expect(validatePools(c24, [{ start: "10.0.0.10", end: "10.0.0.10" }, { start: "10.0.0.11", end: "10.0.0.20" }], gw)).toBeNull();
    expect(validatePools(c24, [], gw)).toBeNull();
    // out of order but disjoint
    expect(validatePools(c24, [{ start: "10.0.0.100", end: "10.0.0.200" }, { start: "10.0.0.2", end: "10.0.0.99" }], gw)).toBeNull();
  });

  it("refuses a pool outside the subnet or touching network/broadcast", () => {
    expect(validatePools(c24, [{ start: "10.0.0.200", end: "10.0.1.10" }], gw)).toBe(
      "The allocation pool 10.0.0.200-10.0.1.10 spans beyond the subnet cidr.",
    );
    expect(validatePools(c24, [{ start: "10.0.0.0", end: "10.0.0.5" }], null)).toMatch(/spans beyond the subnet cidr/);
    expect(validatePools(c24, [{ start: "10.0.0.250", end: "10.0.0.255" }], gw)).toMatch(/spans beyond the subnet cidr/);
    expect(validatePools(c24, [{ start: "9.0.0.1", end: "9.0.0.5" }], gw)).toMatch(/spans beyond/);
  });

  it("refuses overlapping pools, whatever their order", () => {
    expect(validatePools(c24, [{ start: "10.0.0.50", end: "10.0.0.60" }, { start: "10.0.0.10", end: "10.0.0.50" }], gw)).toBe(
      "Found overlapping allocation pools",
    );
    expect(validatePools(c24, [{ start: "10.0.0.10", end: "10.0.0.100" }, { start: "10.0.0.20", end: "10.0.0.30" }], gw)).toBe(
      "Found overlapping allocation pools",
    );
  });

  it("refuses a pool holding the gateway", () => {
    expect(validatePools(c24, [{ start: "10.0.0.1", end: "10.0.0.254" }], gw)).toBe(
      "Gateway ip 10.0.0.1 conflicts with allocation pool 10.0.0.1-10.0.0.254",
    );
    expect(validatePools(c24, [{ start: "10.0.0.2", end: "10.0.0.200" }], "10.0.0.200")).toMatch(/conflicts/);
    expect(validatePools(c24, [{ start: "10.0.0.1", end: "10.0.0.254" }], null)).toBeNull();
  });

  it("refuses a pool whose start is after its end", () => {
    expect(validatePools(c24, [{ start: "10.0.0.20", end: "10.0.0.10" }], gw)).toBe(
      "Invalid allocation pool 10.0.0.20-10.0.0.10: start is after end",
    );
  });

  it("refuses addresses that are not IPv4", () => {
    expect(validatePools(c24, [{ start: "10.0.0.x", end: "10.0.0.10" }], gw)).toBe("Invalid allocation pool 10.0.0.x-10.0.0.10");
  });
});

describe("inPools", () => {
  it("is inclusive at both ends", () => {
    const pools = [{ start: "10.0.0.10", end: "10.0.0.20" }, { start: "10.0.0.30", end: "10.0.0.30" }];
    expect(inPools(pools, "10.0.0.10")).toBe(true);
    expect(inPools(pools, "10.0.0.20")).toBe(true);
    expect(inPools(pools, "10.0.0.30")).toBe(true);
    expect(inPools(pools, "10.0.0.21")).toBe(false);
    expect(inPools(pools, "10.0.0.9")).toBe(false);
  });
});
