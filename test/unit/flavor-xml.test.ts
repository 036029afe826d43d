import { describe, expect, it } from "vitest";
import { applyFlavorToDomainXml } from "../../compute-agent/virt/libvirt/flavor-xml.js";

const flavor = { name: "m1.<big>", vcpus: 4, ram: 2048, disk: 20, swap: 0, ephemeral: 0 };

// Shaped as libvirt returns it: its own attribute order, metadata with double quotes.
const xml = `<domain type='qemu'>
  <name>instance-00000001</name>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:flavor name="m1.tiny">
        <nova:memory>512</nova:memory>
        <nova:disk>1</nova:disk>
        <nova:swap>0</nova:swap>
        <nova:ephemeral>0</nova:ephemeral>
        <nova:vcpus>1</nova:vcpus>
      </nova:flavor>
    </nova:instance>
  </metadata>
  <memory unit='KiB'>524288</memory>
  <currentMemory unit='KiB'>524288</currentMemory>
  <memoryBacking><nosharepages/></memoryBacking>
  <vcpu placement='static' current='1'>2</vcpu>
  <cpu mode='host-model'><topology sockets='1' dies='1' cores='2' threads='1'/></cpu>
</domain>`;

describe("applyFlavorToDomainXml", () => {
  it("sets memory, vCPUs, topology and the Nova flavor metadata, leaving the rest", () => {
    const out = applyFlavorToDomainXml(xml, flavor);
    expect(out).toContain("<memory unit='KiB'>2097152</memory>");
    expect(out).toContain("<currentMemory unit='KiB'>2097152</currentMemory>");
    expect(out).toContain("<vcpu placement='static'>4</vcpu>");
    expect(out).toContain("<topology sockets='4' dies='1' cores='1' threads='1'/>");
    expect(out).toContain(`<nova:flavor name="m1.&lt;big&gt;">`);
    expect(out).toContain("<nova:memory>2048</nova:memory>");
    expect(out).toContain("<nova:disk>20</nova:disk>");
    expect(out).toContain("<nova:vcpus>4</nova:vcpus>");
    expect(out).toContain("<memoryBacking><nosharepages/></memoryBacking>");
    expect(out).toContain("<name>instance-00000001</name>");
  });

  it("rejects a definition without <memory> or <vcpu>, and nonsense flavors", () => {
    expect(() => applyFlavorToDomainXml(xml.replace(/<memory unit='KiB'>524288<\/memory>/, ""), flavor)).toThrow(/no <memory>/);
    expect(() => applyFlavorToDomainXml(xml.replace(/<vcpu[^>]*>2<\/vcpu>/, ""), flavor)).toThrow(/no <vcpu>/);
    expect(() => applyFlavorToDomainXml(xml, { ...flavor, vcpus: 0 })).toThrow(RangeError);
  });
});
