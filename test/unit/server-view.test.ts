import { describe, expect, it } from "vitest";
import { addressesView, hostId, serverView } from "../../api/servers/view.js";
import type { AddressRow, FaultRow, ServerRow } from "../../api/servers/view.js";

const URL_BASE = "https://cirrus.example";
const PROJECT = "6f70656e737461636b20342065766572";
// hashlib.sha224(b"6f70656e737461636b20342065766572compute-1").hexdigest(), as Nova's generate_hostid
const HOST_ID = "6ecda64e9c54aded9f07cf1f76501a94fcf2cc84e2f6d958a653bb1f";
const ADMIN_KEYS = ["OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:hypervisor_hostname", "OS-EXT-SRV-ATTR:instance_name"];

const row = (over: Partial<ServerRow> = {}): ServerRow => ({
  id: "3f1c2b7e-8d4a-4e6f-9a0b-1c2d3e4f5a6b",
  seq: 10,
  name: "web-1",
  project_id: PROJECT,
  user_id: "u-1",
  vm_state: "building",
  task_state: "scheduling",
  power_state: 0,
  host: null,
  node: null,
  availability_zone: null,
  flavor_id: "1",
  image_id: "img-1",
  metadata: { role: "web" },
  config_drive: false,
  key_name: null,
  access_ip_v4: null,
  access_ip_v6: null,
  progress: 0,
  launched_iso: null,
  terminated_iso: null,
  created_iso: "2026-01-02T03:04:05Z",
  updated_iso: "2026-01-02T03:04:06Z",
  ...over,
});

const active = (over: Partial<ServerRow> = {}) =>
  row({ vm_state: "active", task_state: null, power_state: 1, host: "compute-1", node: "compute-1.local", launched_iso: "2026-01-02T03:05:00Z", ...over });

const fault = (code: number): FaultRow => ({
  code,
  message: "No valid host was found. ",
  details: "Traceback: ...",
  created_at: new Date("2026-01-02T03:04:07.123Z"),
});

const opts = (over: Partial<Parameters<typeof serverView>[1]> = {}) => ({
  publicUrl: URL_BASE,
  isAdmin: false,
  addresses: [] as AddressRow[],
  fault: null as FaultRow | null,
  ...over,
});

describe("hostId", () => {
  it("is sha224(project_id + host) in hex", () => {
    expect(hostId(PROJECT, "compute-1")).toBe(HOST_ID);
    expect(hostId(PROJECT, "compute-2")).toMatch(/^[0-9a-f]{56}$/);
    expect(hostId(PROJECT, "compute-2")).not.toBe(HOST_ID);
    expect(hostId("other-project", "compute-1")).not.toBe(HOST_ID);
  });

  it('is "" while unscheduled', () => {
    expect(hostId(PROJECT, null)).toBe("");
    expect(hostId(PROJECT, "")).toBe("");
  });
});

describe("serverView: a building row not yet scheduled", () => {
  const v = serverView(row(), opts()) as Record<string, unknown>;

  it("is BUILD with an empty hostId and no fault or addresses", () => {
    expect(v.status).toBe("BUILD");
    expect(v.hostId).toBe("");
    expect(v).not.toHaveProperty("fault");
    expect(v.addresses).toEqual({});
    expect(v["OS-EXT-STS:vm_state"]).toBe("building");
    expect(v["OS-EXT-STS:task_state"]).toBe("scheduling");
    expect(v["OS-EXT-STS:power_state"]).toBe(0);
    expect(v["OS-SRV-USG:launched_at"]).toBeNull();
  });

  it("has the 2.1 shape: flavor and image as id + links, timestamps without milliseconds", () => {
    expect(v.id).toBe("3f1c2b7e-8d4a-4e6f-9a0b-1c2d3e4f5a6b");
    expect(v.tenant_id).toBe(PROJECT);
    expect(v.flavor).toEqual({ id: "1", links: [{ rel: "bookmark", href: `${URL_BASE}/flavors/1` }] });
    expect(v.image).toEqual({ id: "img-1", links: [{ rel: "bookmark", href: `${URL_BASE}/images/img-1` }] });
    expect(v.created).toBe("2026-01-02T03:04:05Z");
    expect(v.updated).toBe("2026-01-02T03:04:06Z");
    expect(v.links).toEqual([
      { rel: "self", href: `${URL_BASE}/v2.1/servers/${v.id}` },
      { rel: "bookmark", href: `${URL_BASE}/servers/${v.id}` },
    ]);
    expect(v.accessIPv4).toBe("");
    expect(v["OS-EXT-AZ:availability_zone"]).toBe("");
  });

  it("shows the admin-only fields to admins only", () => {
    for (const k of ADMIN_KEYS) expect(v, k).not.toHaveProperty(k);
    const a = serverView(row(), opts({ isAdmin: true })) as Record<string, unknown>;
    expect(a["OS-EXT-SRV-ATTR:host"]).toBeNull();
    expect(a["OS-EXT-SRV-ATTR:hypervisor_hostname"]).toBeNull();
    expect(a["OS-EXT-SRV-ATTR:instance_name"]).toBe("instance-0000000a");
  });

  it('shows image "" when booted without an image', () => {
    expect(serverView(row({ image_id: null }), opts()).image).toBe("");
  });
});

describe("serverView: an ACTIVE row with four NICs", () => {
  const nics: AddressRow[] = [
    // deliberately out of device order
    { network_name: "private", mac_address: "fa:16:3e:00:00:03", ip_address: "10.0.0.7", device_index: 3 },
    { network_name: "public", mac_address: "fa:16:3e:00:00:02", ip_address: "203.0.113.9", device_index: 2 },
    { network_name: "private", mac_address: "fa:16:3e:00:00:00", ip_address: "10.0.0.5", device_index: 0 },
    { network_name: "mgmt", mac_address: "fa:16:3e:00:00:01", ip_address: "192.168.50.4", device_index: 1 },
  ];

  it("is ACTIVE with Nova's hostId and the admin fields for admins", () => {
    const v = serverView(active(), opts({ addresses: nics, isAdmin: true })) as Record<string, unknown>;
    expect(v.status).toBe("ACTIVE");
    expect(v.hostId).toBe(HOST_ID);
    expect(v["OS-EXT-SRV-ATTR:host"]).toBe("compute-1");
    expect(v["OS-EXT-SRV-ATTR:hypervisor_hostname"]).toBe("compute-1.local");
    expect(v["OS-SRV-USG:launched_at"]).toBe("2026-01-02T03:05:00Z");
    const user = serverView(active(), opts({ addresses: nics })) as Record<string, unknown>;
    expect(user.hostId).toBe(HOST_ID);
    for (const k of ADMIN_KEYS) expect(user, k).not.toHaveProperty(k);
  });

  it("groups addresses by network, ordered by device_index", () => {
    const { addresses } = serverView(active(), opts({ addresses: nics }));
    expect(Object.keys(addresses)).toEqual(["private", "mgmt", "public"]);
    expect(addresses).toEqual({
      private: [
        { addr: "10.0.0.5", version: 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:00" },
        { addr: "10.0.0.7", version: 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:03" },
      ],
      mgmt: [{ addr: "192.168.50.4", version: 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01" }],
      public: [{ addr: "203.0.113.9", version: 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:02" }],
    });
  });

  it("does not reorder the rows it was given", () => {
    const input = [...nics];
    addressesView(input);
    expect(input).toEqual(nics);
  });

  it("marks IPv6 addresses version 6", () => {
    const v6 = addressesView([{ network_name: "n", mac_address: "fa:16:3e:00:00:09", ip_address: "fd00::5", device_index: 0 }]);
    expect(v6.n![0]!.version).toBe(6);
  });

  it("has no fault even when one is on record", () => {
    expect(serverView(active(), opts({ addresses: nics, fault: fault(500), isAdmin: true }))).not.toHaveProperty("fault");
  });
});

describe("serverView: an ERROR row with a fault", () => {
  const errored = () => row({ vm_state: "error", task_state: null, power_state: 0 });

  it("shows the fault without details to a non-admin when the code is 500", () => {
    const v = serverView(errored(), opts({ fault: fault(500) }));
    expect(v.status).toBe("ERROR");
    expect(v.fault).toEqual({ code: 500, created: "2026-01-02T03:04:07Z", message: "No valid host was found. " });
    expect(v.fault).not.toHaveProperty("details");
  });

  it("shows the details to an admin when the code is 500", () => {
    const v = serverView(errored(), opts({ fault: fault(500), isAdmin: true }));
    expect(v.fault).toEqual({ code: 500, created: "2026-01-02T03:04:07Z", message: "No valid host was found. ", details: "Traceback: ..." });
  });

  it("always shows the details when the code is not 500", () => {
    for (const isAdmin of [false, true]) {
      const v = serverView(errored(), opts({ fault: fault(404), isAdmin }));
      expect(v.fault, String(isAdmin)).toMatchObject({ code: 404, details: "Traceback: ..." });
    }
  });

  it("shows the fault of a DELETED row too", () => {
    expect(serverView(row({ vm_state: "deleted", task_state: null }), opts({ fault: fault(500) }))).toHaveProperty("fault");
  });

  it("has no fault key when there is none", () => {
    expect(serverView(errored(), opts())).not.toHaveProperty("fault");
  });
});
