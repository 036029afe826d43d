import { describe, expect, it } from "vitest";
import { MAX_VERSION, MIN_VERSION, negotiate } from "../../api/microversion.js";

const OK_21 = { ok: true, version: "2.1" };

describe("negotiate", () => {
  it("advertises 2.1 as both minimum and maximum", () => {
    expect([MIN_VERSION, MAX_VERSION]).toEqual(["2.1", "2.1"]);
  });

  it("defaults to 2.1 without a header", () => {
    expect(negotiate({})).toEqual(OK_21);
    expect(negotiate({ "openstack-api-version": undefined, "x-openstack-nova-api-version": undefined })).toEqual(OK_21);
  });

  it("accepts OpenStack-API-Version: compute 2.1", () => {
    expect(negotiate({ "openstack-api-version": "compute 2.1" })).toEqual(OK_21);
    expect(negotiate({ "openstack-api-version": "Compute   2.1" })).toEqual(OK_21);
  });

  it("accepts the legacy X-OpenStack-Nova-API-Version: 2.1", () => {
    expect(negotiate({ "x-openstack-nova-api-version": "2.1" })).toEqual(OK_21);
    expect(negotiate({ "x-openstack-nova-api-version": " 2.1 " })).toEqual(OK_21);
  });

  it("answers latest with the maximum", () => {
    expect(negotiate({ "openstack-api-version": "compute latest" })).toEqual({ ok: true, version: MAX_VERSION });
    expect(negotiate({ "x-openstack-nova-api-version": "latest" })).toEqual({ ok: true, version: MAX_VERSION });
    expect(negotiate({ "openstack-api-version": "compute LATEST" })).toEqual({ ok: true, version: MAX_VERSION });
  });

  it("refuses a version outside 2.1..2.1", () => {
    expect(negotiate({ "openstack-api-version": "compute 2.2" })).toEqual({ ok: false, requested: "2.2", malformed: false });
    expect(negotiate({ "openstack-api-version": "compute 2.100" })).toEqual({ ok: false, requested: "2.100", malformed: false });
    expect(negotiate({ "openstack-api-version": "compute 3.1" })).toEqual({ ok: false, requested: "3.1", malformed: false });
    expect(negotiate({ "openstack-api-version": "compute 2.0" })).toEqual({ ok: false, requested: "2.0", malformed: false });
    expect(negotiate({ "x-openstack-nova-api-version": "2.2" })).toEqual({ ok: false, requested: "2.2", malformed: false });
  });

  it("refuses garbage", () => {
    for (const v of ["abc", "2", "2.1.0", "v2.1", "2.x", ""]) {
      expect(negotiate({ "openstack-api-version": `compute ${v}`.trim(), "x-openstack-nova-api-version": v }), v).toMatchObject({ ok: false });
    }
    expect(negotiate({ "openstack-api-version": "compute 2.1beta" })).toEqual({ ok: false, requested: "2.1beta", malformed: true });
  });

  it("ignores other services named in the header", () => {
    expect(negotiate({ "openstack-api-version": "placement 1.39" })).toEqual(OK_21);
    expect(negotiate({ "openstack-api-version": "placement 1.39, compute 2.1" })).toEqual(OK_21);
    expect(negotiate({ "openstack-api-version": "placement 1.39, compute 2.2" })).toEqual({ ok: false, requested: "2.2", malformed: false });
    expect(negotiate({ "openstack-api-version": "volume 3.70,compute latest" })).toEqual({ ok: true, version: MAX_VERSION });
  });

  it("prefers the modern header over the legacy one", () => {
    expect(negotiate({ "openstack-api-version": "compute 2.1", "x-openstack-nova-api-version": "2.5" })).toEqual(OK_21);
    expect(negotiate({ "openstack-api-version": "compute 2.5", "x-openstack-nova-api-version": "2.1" })).toEqual({ ok: false, requested: "2.5", malformed: false });
    // a modern header for another service only: the legacy one decides
    expect(negotiate({ "openstack-api-version": "placement 1.39", "x-openstack-nova-api-version": "2.3" })).toEqual({ ok: false, requested: "2.3", malformed: false });
  });
});
