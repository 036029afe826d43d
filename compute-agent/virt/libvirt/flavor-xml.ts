/**
 * Applies a flavor to an existing domain definition (libvirt's own XML, as
 * domainGetXMLDesc returns it): vCPUs, memory and the Nova flavor metadata. Used by
 * resize, which keeps every other part of the definition (disks, NICs, config drive).
 * Pure: the same input always gives the same string.
 */
import type { FlavorSnapshot } from "../../../common/messages.js";
import { escapeXml } from "./domain-xml.js";

function positiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
}

/** Replaces the one element matching `re`; an absent required element is an error. */
function replaceOnce(xml: string, re: RegExp, replacement: (match: string, ...groups: string[]) => string, what: string, required: boolean): string {
  const matches = xml.match(new RegExp(re.source, `${re.flags.replace("g", "")}g`));
  if (!matches || matches.length === 0) {
    if (required) throw new Error(`the domain XML has no ${what}`);
    return xml;
  }
  if (matches.length > 1) throw new Error(`the domain XML has ${matches.length} ${what} elements, expected one`);
  return xml.replace(re, replacement);
}

export function applyFlavorToDomainXml(xml: string, flavor: Pick<FlavorSnapshot, "name" | "vcpus" | "ram" | "disk" | "swap" | "ephemeral">): string {
  positiveInt("vcpus", flavor.vcpus);
  positiveInt("ram", flavor.ram);
  const kib = flavor.ram * 1024;
  let out = xml;
  // <memory> and <currentMemory> (no prefix, so <nova:memory> is not matched); libvirt writes KiB.
  out = replaceOnce(out, /<memory\b[^>]*>\s*\d+\s*<\/memory>/, () => `<memory unit='KiB'>${kib}</memory>`, "<memory>", true);
  out = replaceOnce(out, /<currentMemory\b[^>]*>\s*\d+\s*<\/currentMemory>/, () => `<currentMemory unit='KiB'>${kib}</currentMemory>`, "<currentMemory>", false);
  // Keep placement/cpuset, drop `current` (hot-plug count), which must not exceed the new total.
  out = replaceOnce(
    out,
    /<vcpu\b([^>]*)>\s*\d+\s*<\/vcpu>/,
    (_m, attributes = "") => `<vcpu${attributes.replace(/\s+current=(['"])[^'"]*\1/, "")}>${flavor.vcpus}</vcpu>`,
    "<vcpu>",
    true,
  );
  // A CPU topology must multiply out to the vCPU count; Nova prefers sockets.
  out = replaceOnce(
    out,
    /<topology\b[^>]*\/>/,
    () => `<topology sockets='${flavor.vcpus}' dies='1' cores='1' threads='1'/>`,
    "<topology>",
    false,
  );

  // Nova's flavor metadata, whatever quote style libvirt serialised it with.
  out = out.replace(/(<nova:flavor\b[^>]*\bname=)(['"])[^'"]*\2/, (_m, head: string, q: string) => `${head}${q}${escapeXml(flavor.name)}${q}`);
  const meta: [string, number][] = [
    ["memory", flavor.ram],
    ["disk", flavor.disk],
    ["swap", flavor.swap],
    ["ephemeral", flavor.ephemeral],
    ["vcpus", flavor.vcpus],
  ];
  for (const [tag, value] of meta) {
    out = out.replace(new RegExp(`(<nova:${tag}>)\\s*\\d+\\s*(</nova:${tag}>)`), `$1${value}$2`);
  }
  return out;
}
