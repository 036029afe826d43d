import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { buildDomainXml, escapeXml, instanceNameFromSeq } from "../../compute-agent/virt/libvirt/domain-xml.js";
import type { DomainXmlInput } from "../../compute-agent/virt/libvirt/domain-xml.js";

const goldenDir = fileURLToPath(new URL("./golden/", import.meta.url));
/** UPDATE_GOLDEN=1 rewrites the files; review the diff before committing it. */
const golden = (name: string, actual?: string) => {
  const file = `${goldenDir}${name}`;
  if (process.env.UPDATE_GOLDEN === "1" && actual !== undefined) writeFileSync(file, actual);
  return readFileSync(file, "utf8");
};

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
    const xml = buildDomainXml(qemuInput());
    expect(xml).toBe(golden("qemu-domain.xml", xml));
  });

  it("builds a test-driver domain (golden)", () => {
    const xml = buildDomainXml(testInput());
    expect(xml).toBe(golden("test-domain.xml", xml));
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
    expect(xml).toContain("<driver name='qemu' type='qcow2' cache='writethrough' io='threads'/>");
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

/** m1.large-style flavor with every tuning extra spec, on KVM, NICs on an OVS bridge (VLAN) and a Linux bridge. */
function kvmTunedInput(): DomainXmlInput {
  return {
    ...qemuInput(),
    type: "kvm",
    name: "instance-0000beef",
    memoryMiB: 4096,
    vcpus: 4,
    machine: "pc-i440fx-7.2",
    interfaces: [
      {
        mac: "fa:16:3e:01:02:03",
        model: "virtio",
        attach: { type: "bridge", bridge: "br-int", ovsInterfaceId: "5b8a9c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d", vlan: 101 },
        mtu: 1450,
        targetDev: "tap5b8a9c1d-2e",
      },
      { mac: "fa:16:3e:04:05:06", model: "virtio", attach: { type: "bridge", bridge: "brq7c1e2d3f-4a" }, mtu: 1500, targetDev: "tap0a1b2c3d-4e" },
    ],
    extraSpecs: {
      "quota:cpu_shares": "2048",
      "quota:cpu_period": "100000",
      "quota:cpu_quota": "200000",
      "hw:numa_nodes": "2",
      "quota:vif_inbound_average": "10240",
      "quota:vif_inbound_peak": "20480",
      "quota:vif_inbound_burst": "1024",
      "quota:vif_outbound_average": "5120",
      "hw_rng:rate_bytes": "2048",
      "hw_rng:rate_period": "1000",
    },
    imageProperties: { hw_video_model: "qxl", os_type: "windows" },
    hostNumaNodes: [0, 1],
  };
}

/** A Xen (libxl) HVM guest, as an agent on xen:///system builds it. */
function xenInput(): DomainXmlInput {
  const dir = "/var/lib/cirrus/instances/6d5c4b3a-2e1f-4a0b-9c8d-7e6f5a4b3c2d";
  return {
    type: "xen",
    name: "instance-00000100",
    uuid: "6d5c4b3a-2e1f-4a0b-9c8d-7e6f5a4b3c2d",
    memoryMiB: 1024,
    vcpus: 1,
    arch: "x86_64",
    disks: [
      { path: `${dir}/disk`, format: "qcow2", bus: "xen", device: "disk" },
      { path: `${dir}/disk.config`, format: "raw", bus: "xen", device: "cdrom", readonly: true },
    ],
    interfaces: [{ mac: "fa:16:3e:aa:00:01", model: "e1000", attach: { type: "bridge", bridge: "xenbr0" }, targetDev: "tap11111111-22" }],
    consoleLogPath: `${dir}/console.log`,
    metadata: {
      displayName: "xen-1",
      creationTime: new Date("2026-11-26T10:00:00Z"),
      flavor: { name: "m1.small", memoryMiB: 1024, diskGiB: 10, swapMiB: 0, ephemeralGiB: 0, vcpus: 1 },
      owner: { userId: "u-1", projectId: "p-1" },
      imageId: "22222222-3333-4444-8555-666666666666",
    },
    smbios: { manufacturer: "Cirrus", product: "OpenStack Nova" },
  };
}

describe("buildDomainXml: production details", () => {
  it("builds a tuned KVM domain (golden): cputune, numatune and NUMA cells, bandwidth, OVS virtualport, VLAN, qxl, Windows clock", () => {
    const xml = buildDomainXml(kvmTunedInput());
    expect(xml).toBe(golden("kvm-tuned-domain.xml", xml));
    expect(xml).toContain("<cputune>\n    <shares>2048</shares>\n    <period>100000</period>\n    <quota>200000</quota>\n  </cputune>");
    expect(xml).toContain("<memory mode='strict' nodeset='0,1'/>");
    expect(xml).toContain("<cell id='1' cpus='2-3' memory='2097152' unit='KiB'/>");
    expect(xml).toContain("<parameters interfaceid='5b8a9c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d'/>");
    expect(xml).toContain("<tag id='101'/>");
    expect(xml).toContain("<inbound average='10240' peak='20480' burst='1024'/>");
    expect(xml).toContain("<outbound average='5120'/>");
    expect(xml).toContain("<cpu mode='host-model' match='exact'>");
    expect(xml).toContain("<clock offset='localtime'>");
    expect(xml).toContain("<timer name='hypervclock' present='yes'/>");
    expect(xml).toContain("<model type='qxl'/>");
    expect(xml).toContain("<rate bytes='2048' period='1000'/>");
  });

  it("builds a Xen HVM domain (golden)", () => {
    const xml = buildDomainXml(xenInput());
    expect(xml).toBe(golden("xen-domain.xml", xml));
    expect(xml).toContain("<domain type='xen'>");
    expect(xml).toContain("<type arch='x86_64' machine='xenfv'>hvm</type>");
    expect(xml).toContain("<loader type='rom'>/usr/lib/xen/boot/hvmloader</loader>");
    expect(xml).toContain("<memballoon model='xen'/>");
    expect(xml).not.toContain("<rng");
  });

  it("writes memory and currentMemory, static vCPU placement, pm, video, tablet and rng on a plain qemu domain", () => {
    const xml = buildDomainXml(qemuInput());
    expect(xml).toContain("<currentMemory unit='KiB'>524288</currentMemory>");
    expect(xml).toContain("<vcpu placement='static'>2</vcpu>");
    expect(xml).toContain("<suspend-to-mem enabled='no'/>");
    expect(xml).toContain("<input type='tablet' bus='usb'/>");
    expect(xml).toContain("<model type='virtio'/>\n    </video>");
    expect(xml).toContain("<backend model='random'>/dev/urandom</backend>");
    expect(xml).toContain("<driver name='qemu' type='qcow2' cache='none' io='native'/>");
    expect(xml).not.toContain("<cputune>");
    expect(xml).not.toContain("<numatune>");
    expect(xml).not.toContain("<bandwidth>");
  });

  it("puts bandwidth only on tap-backed interfaces", () => {
    const input = qemuInput();
    input.extraSpecs = { "quota:vif_outbound_average": "100" };
    const xml = buildDomainXml(input);
    expect(xml.match(/<bandwidth>/g)).toHaveLength(1);
  });

  it("refuses extra specs and image properties it cannot honour, naming them", () => {
    const bad: [Partial<DomainXmlInput>, RegExp][] = [
      [{ extraSpecs: { "quota:cpu_shares": "lots" } }, /quota:cpu_shares/],
      [{ extraSpecs: { "quota:cpu_period": "10" } }, /quota:cpu_period/],
      [{ extraSpecs: { "hw:numa_nodes": "3" } }, /hw:numa_nodes=3 cannot split/],
      [{ extraSpecs: { "quota:vif_inbound_peak": "10" } }, /quota:vif_inbound_average is required/],
      [{ imageProperties: { hw_video_model: "matrox" } }, /hw_video_model matrox/],
      [{ imageProperties: { hw_rng_model: "egd" } }, /hw_rng_model egd/],
    ];
    for (const [patch, re] of bad) expect(() => buildDomainXml({ ...qemuInput(), ...patch }), String(re)).toThrow(re);
  });

  it("leaves out the rng when the image says hw_rng_model=none and honours video none", () => {
    const xml = buildDomainXml({ ...qemuInput(), imageProperties: { hw_rng_model: "none", hw_video_model: "none" } });
    expect(xml).not.toContain("<rng");
    expect(xml).toContain("<model type='none'/>");
  });
});

const haveValidator = existsSync("/usr/bin/virt-xml-validate");

describe.skipIf(!haveValidator)("every golden document passes libvirt's own schema (virt-xml-validate)", () => {
  const files = readdirSync(goldenDir).filter((f) => f.endsWith(".xml"));
  it("has goldens for every domain type", () => {
    const types = files.map((f) => /<domain type='(\w+)'>/.exec(readFileSync(`${goldenDir}${f}`, "utf8"))?.[1]);
    expect(new Set(types)).toEqual(new Set(["qemu", "kvm", "test", "xen"]));
  });
  it.each(files)("%s", async (file) => {
    // Exit status 0 is the verdict; it says "<file> validates" on stderr.
    const { stdout, stderr } = await promisify(execFile)("virt-xml-validate", [`${goldenDir}${file}`, "domain"]);
    expect(stdout + stderr).toMatch(/validates/);
  });
});
