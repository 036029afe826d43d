/** The config drive's contents (pure) and the ISO genisoimage makes of them. */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import type { SpawnSpec } from "../../common/messages.js";
import { genisoimageArgs, writeConfigDrive } from "../../compute-agent/config-drive/iso.js";
import { configDriveFiles, decodeUserData, metaData, networkData, tapName } from "../../compute-agent/config-drive/metadata.js";

const PORT_ID = "5b8a9c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d";

function spec(): SpawnSpec {
  return {
    instance_id: "3f1c2b7e-8d4a-4e6f-9a0b-1c2d3e4f5a6b",
    instance_name: "instance-0000000a",
    project_id: "p-7",
    user_id: "u-42",
    name: "Web 1",
    hostname: "web-1",
    availability_zone: null,
    launch_index: 0,
    flavor: { id: "1", name: "m1.tiny", vcpus: 1, ram: 128, disk: 1, ephemeral: 0, swap: 0, extra_specs: {} },
    image: { id: "img", name: "guest", disk_format: "qcow2", location: "/x", size: null, checksum: null, properties: {} },
    ports: [
      {
        id: PORT_ID,
        network_id: "net-1",
        network_name: "private",
        mac_address: "fa:16:3e:11:22:33",
        mtu: 1450,
        fixed_ips: [
          { subnet_id: "s4", ip_address: "10.0.0.5", version: 4, cidr: "10.0.0.0/24", gateway_ip: "10.0.0.1", dns_nameservers: ["10.0.0.2", "9.9.9.9"] },
          { subnet_id: "s6", ip_address: "fd00:1::5", version: 6, cidr: "fd00:1::/64", gateway_ip: "fd00:1::1", dns_nameservers: ["9.9.9.9"] },
        ],
      },
    ],
    metadata: { role: "web" },
    config_drive: true,
    user_data: Buffer.from("#!/bin/sh\necho hello from user data\n").toString("base64"),
    key_name: "mykey",
    public_keys: [{ name: "mykey", type: "ssh", data: "ssh-ed25519 AAAAC3Nza test@host" }],
  };
}

describe("meta_data.json", () => {
  it("carries Nova's keys for the latest version", () => {
    expect(metaData(spec(), "latest", { defaultAvailabilityZone: "az1", randomSeed: "c2VlZA==" })).toEqual({
      uuid: "3f1c2b7e-8d4a-4e6f-9a0b-1c2d3e4f5a6b",
      name: "Web 1",
      hostname: "web-1",
      launch_index: 0,
      availability_zone: "az1",
      meta: { role: "web" },
      public_keys: { mykey: "ssh-ed25519 AAAAC3Nza test@host" },
      keys: [{ name: "mykey", type: "ssh", data: "ssh-ed25519 AAAAC3Nza test@host" }],
      project_id: "p-7",
      random_seed: "c2VlZA==",
      devices: [],
    });
  });

  it("leaves out what older versions did not have, and defaults the zone to nova", () => {
    const md = metaData(spec(), "2012-08-10");
    expect(md).not.toHaveProperty("project_id");
    expect(md).not.toHaveProperty("keys");
    expect(md).not.toHaveProperty("random_seed");
    expect(md.availability_zone).toBe("nova");
    expect(metaData({ ...spec(), availability_zone: "zone-b" }, "latest").availability_zone).toBe("zone-b");
  });
});

describe("network_data.json", () => {
  it("describes links, IPv4 and IPv6 networks with netmasks, default routes and DNS services", () => {
    const nd = networkData(spec().ports);
    expect(nd.links).toEqual([{ id: `tap${PORT_ID.slice(0, 11)}`, vif_id: PORT_ID, type: "bridge", ethernet_mac_address: "fa:16:3e:11:22:33", mtu: 1450 }]);
    expect(nd.networks).toEqual([
      {
        id: "network0", type: "ipv4", link: tapName(PORT_ID), ip_address: "10.0.0.5", netmask: "255.255.255.0",
        routes: [{ network: "0.0.0.0", netmask: "0.0.0.0", gateway: "10.0.0.1" }], network_id: "net-1",
        services: [{ type: "dns", address: "10.0.0.2" }, { type: "dns", address: "9.9.9.9" }],
      },
      {
        id: "network1", type: "ipv6", link: tapName(PORT_ID), ip_address: "fd00:1::5", netmask: "ffff:ffff:ffff:ffff::",
        routes: [{ network: "::", netmask: "::", gateway: "fd00:1::1" }], network_id: "net-1",
        services: [{ type: "dns", address: "9.9.9.9" }],
      },
    ]);
    expect(nd.services).toEqual([{ type: "dns", address: "10.0.0.2" }, { type: "dns", address: "9.9.9.9" }]);
  });

  it("writes no route without a gateway", () => {
    const s = spec();
    s.ports[0]!.fixed_ips[0]!.gateway_ip = null;
    expect(networkData(s.ports).networks[0]!.routes).toEqual([]);
  });
});

describe("the drive's files", () => {
  it("lays out openstack/<version>/ as Nova does, with the decoded user data", () => {
    const files = configDriveFiles(spec());
    expect([...files.keys()].sort()).toEqual([
      "openstack/2012-08-10/meta_data.json", "openstack/2012-08-10/user_data", "openstack/2012-08-10/vendor_data.json",
      "openstack/2015-10-15/meta_data.json", "openstack/2015-10-15/network_data.json", "openstack/2015-10-15/user_data", "openstack/2015-10-15/vendor_data.json",
      "openstack/latest/meta_data.json", "openstack/latest/network_data.json", "openstack/latest/user_data", "openstack/latest/vendor_data.json",
    ]);
    expect(files.get("openstack/latest/user_data")!.toString()).toBe("#!/bin/sh\necho hello from user data\n");
    expect(JSON.parse(files.get("openstack/latest/meta_data.json")!.toString()).uuid).toBe(spec().instance_id);
  });

  it("has no user_data file when there is none, and decodes base64 with line breaks", () => {
    expect([...configDriveFiles({ ...spec(), user_data: null }).keys()].some((k) => k.endsWith("user_data"))).toBe(false);
    expect(decodeUserData("aGVs\nbG8=")!.toString()).toBe("hello");
    expect(decodeUserData("")).toBeNull();
  });

  it("is pure", () => {
    expect(configDriveFiles(spec())).toEqual(configDriveFiles(spec()));
  });
});

describe("the ISO", () => {
  it("uses Nova's genisoimage options", () => {
    expect(genisoimageArgs("/i/disk.config", "/tmp/cd")).toEqual([
      "-o", "/i/disk.config", "-ldots", "-allow-lowercase", "-allow-multidot", "-l", "-publisher", "Cirrus", "-quiet", "-J", "-r", "-V", "config-2", "/tmp/cd",
    ]);
  });

  it("is a config-2 volume whose meta_data.json isoinfo reads back", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "cirrus-cd-"));
    try {
      const iso = path.join(dir, "disk.config");
      await writeConfigDrive(configDriveFiles(spec()), iso);
      const run = promisify(execFile);
      expect((await run("isoinfo", ["-d", "-i", iso])).stdout).toMatch(/Volume id: config-2/);
      const md = (await run("isoinfo", ["-R", "-i", iso, "-x", "/openstack/latest/meta_data.json"])).stdout;
      expect(JSON.parse(md).uuid).toBe(spec().instance_id);
      const ud = (await run("isoinfo", ["-R", "-i", iso, "-x", "/openstack/latest/user_data"])).stdout;
      expect(ud).toContain("hello from user data");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
