import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { buildDomainXml, escapeXml, instanceNameFromSeq } from "../../compute-agent/virt/libvirt/domain-xml.js";
import type { DomainXmlInput } from "../../compute-agent/virt/libvirt/domain-xml.js";

const golden = (name: string) => readFileSync(new URL(`./golden/${name}`, import.meta.url), "utf8");

const UUID = "3f1c2b7e-8d4a-4e6f-9a0b-1c2d3e4f5a6b";
const DIR = `/var/lib/cirrus/instances/${UUID}`;

function qemuInput(): DomainXmlInput {
  return {
    type: "qemu",
    name: "instance-0000000a",
    uuid: UUID,
    memoryMiB: 512,
    vcpus: 2,
    arch: "x86_64",
    machine: "pc",
    disks: [
      { path: `${DIR}/disk`, format: "qcow2", bus: "virtio", device: "disk" },
      { path: `${DIR}/disk.config`, format: "raw", bus: "ide", device: "cdrom", readonly: true, dev: "hdd" },
    ],
    interfaces: [
      { mac: "fa:16:3e:11:22:33", model: "virtio", attach: { type: "user" } },
      {
        mac: "fa:16:3e:44:55:66",
        model: "e1000",
        attach: { type: "bridge", bridge: "br-int" },
        mtu: 1450,
        targetDev: "tap5b8a9c1d-2e",
      },
    ],
    consoleLogPath: `${DIR}/console.log`,
    metadata: {
      displayName: "web-1",
      creationTime: new Date("2026-11-26T09:30:15.123Z"),
      packageVersion: "0.1.0",
      flavor: { name: "m1.small", memoryMiB: 512, diskGiB: 1, swapMiB: 0, ephemeralGiB: 0, vcpus: 2 },
      owner: { userId: "u-42", userName: "alice", projectId: "p-7", projectName: "demo" },
      imageId: "0b6e6c3a-5f0e-4a5b-9d7e-2f3a4b5c6d7e",
      ports: [
        { id: "5b8a9c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d", ips: [{ address: "10.0.0.5", version: 4 }, { address: "fd00::5", version: 6 }] },
      ],
    },
    smbios: { manufacturer: "Cirrus", product: "OpenStack Nova", version: "0.1.0" },
  };
}

function testInput(): DomainXmlInput {
  return {
    type: "test",
    name: "instance-000000ff",
    uuid: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
    memoryMiB: 64,
    vcpus: 1,
    arch: "i686",
    disks: [{ path: "/tmp/cirrus/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d/disk", format: "qcow2", bus: "virtio", device: "disk" }],
    interfaces: [{ mac: "fa:16:3e:aa:bb:cc", model: "virtio", attach: { type: "user" } }],
    consoleLogPath: "/tmp/cirrus/9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d/console.log",
    metadata: {
      displayName: "sim-1",
      creationTime: new Date("2026-01-02T03:04:05Z"),
      flavor: { name: "tiny", memoryMiB: 64, diskGiB: 0, swapMiB: 0, ephemeralGiB: 0, vcpus: 1 },
      owner: { userId: "user-1", projectId: "project-1" },
      imageId: "11111111-2222-4333-8444-555555555555",
    },
    smbios: { manufacturer: "Cirrus", product: "OpenStack Nova" },
  };
}

describe("buildDomainXml", () => {
  it("builds a qemu domain with a qcow2 disk, a config drive and two NICs (golden)", () => {
    expect(buildDomainXml(qemuInput())).toBe(golden("qemu-domain.xml"));
  });

  it("builds a test-driver domain (golden)", () => {
    expect(buildDomainXml(testInput())).toBe(golden("test-domain.xml"));
  });

  it("is pure: the same input gives the same XML", () => {
    expect(buildDomainXml(qemuInput())).toBe(buildDomainXml(qemuInput()));
  });

  it("escapes every value it writes", () => {
    const input = qemuInput();
    input.metadata.displayName = `<script>"a" & 'b'</script>`;
    input.metadata.flavor.name = `x' evil='1`;
    input.disks[0]!.path = `/tmp/a'b"&<c>/disk`;
    input.interfaces[1]!.attach = { type: "bridge", bridge: "br'><foo/>" };
    const xml = buildDomainXml(input);
    expect(xml).toContain("<nova:name>&lt;script&gt;&quot;a&quot; &amp; &apos;b&apos;&lt;/script&gt;</nova:name>");
    expect(xml).toContain("<nova:flavor name='x&apos; evil=&apos;1'>");
    expect(xml).toContain("<source file='/tmp/a&apos;b&quot;&amp;&lt;c&gt;/disk'/>");
    expect(xml).toContain("<source bridge='br&apos;&gt;&lt;foo/&gt;'/>");
    expect(xml).not.toContain("<script>");
    expect(xml).not.toContain("<foo/>");
  });

  it("drops characters XML 1.0 cannot carry", () => {
    expect(escapeXml("a\u0000b\u001bc\ud800d\tz")).toBe("abcd\tz");
    expect(escapeXml("emoji \ud83d\ude00 stays")).toBe("emoji \ud83d\ude00 stays");
    const input = qemuInput();
    input.metadata.displayName = "bell\u0007";
    expect(buildDomainXml(input)).toContain("<nova:name>bell</nova:name>");
  });

  it("never writes graphics, and writes no serial console without a log path", () => {
    const input = qemuInput();
    delete input.consoleLogPath;
    const xml = buildDomainXml(input);
    expect(xml).not.toContain("<graphics");
    expect(xml).not.toContain("<serial");
    expect(xml).not.toContain("<console");
    expect(xml).toContain("<memballoon model='virtio'>");
  });

  it("leaves features and clock timers out of test-driver domains but keeps sysinfo", () => {
    const xml = buildDomainXml(testInput());
    expect(xml).not.toContain("<features>");
    expect(xml).not.toContain("<timer");
    expect(xml).toContain("<clock offset='utc'/>");
    expect(xml).toContain("<smbios mode='sysinfo'/>");
    expect(xml).toContain("<sysinfo type='smbios'>");
  });

  it("leaves optional parts out when they are not given", () => {
    const xml = buildDomainXml(testInput());
    expect(xml).not.toContain("machine=");
    expect(xml).not.toContain("nova:package");
    expect(xml).not.toContain("nova:ports");
    expect(xml).not.toContain("<entry name='version'>");
    expect(xml).not.toContain("<readonly/>");
  });

  it("writes an MTU and target only for network and bridge attachments", () => {
    const input = qemuInput();
    input.interfaces = [
      { mac: "fa:16:3e:00:00:01", model: "virtio", attach: { type: "user" }, mtu: 1400, targetDev: "tapx" },
      { mac: "fa:16:3e:00:00:02", model: "virtio", attach: { type: "network", network: "default" }, mtu: 1400 },
    ];
    const xml = buildDomainXml(input);
    expect(xml.match(/<mtu size='1400'\/>/g)).toHaveLength(1);
    expect(xml).not.toContain("tapx");
    expect(xml).toContain("<source network='default'/>");
  });

  it("names disk targets per bus, skipping names given explicitly", () => {
    const input = testInput();
    input.disks = [
      { path: "/d/1", format: "qcow2", bus: "virtio", device: "disk", dev: "vda" },
      { path: "/d/2", format: "raw", bus: "virtio", device: "disk" },
      { path: "/d/3", format: "raw", bus: "ide", device: "cdrom" },
      { path: "/d/4", format: "raw", bus: "scsi", device: "disk" },
      { path: "/d/5", format: "raw", bus: "sata", device: "disk" },
    ];
    const targets = [...buildDomainXml(input).matchAll(/<target dev='(\w+)' bus='(\w+)'\/>/g)].map((m) => `${m[1]}:${m[2]}`);
    expect(targets).toEqual(["vda:virtio", "vdb:virtio", "hda:ide", "sda:scsi", "sdb:sata"]);
  });

  it("converts MiB to KiB and writes the cache mode asked for", () => {
    const input = testInput();
    input.memoryMiB = 2048;
    input.disks[0]!.cache = "writethrough";
    const xml = buildDomainXml(input);
    expect(xml).toContain("<memory unit='KiB'>2097152</memory>");
    expect(xml).toContain("<driver name='qemu' type='qcow2' cache='writethrough'/>");
  });

  it("rejects memory and vcpus that are not positive integers", () => {
    expect(() => buildDomainXml({ ...testInput(), memoryMiB: 0 })).toThrow(/memoryMiB/);
    expect(() => buildDomainXml({ ...testInput(), vcpus: 1.5 })).toThrow(/vcpus/);
  });
});

describe("instanceNameFromSeq", () => {
  it("follows Nova's instance-%08x", () => {
    expect(instanceNameFromSeq(10)).toBe("instance-0000000a");
    expect(instanceNameFromSeq(0)).toBe("instance-00000000");
    expect(instanceNameFromSeq(0xdeadbeef)).toBe("instance-deadbeef");
  });

  it("rejects what %08x cannot represent", () => {
    expect(() => instanceNameFromSeq(-1)).toThrow(RangeError);
    expect(() => instanceNameFromSeq(1.5)).toThrow(RangeError);
    expect(() => instanceNameFromSeq(2 ** 32)).toThrow(RangeError);
  });
});
