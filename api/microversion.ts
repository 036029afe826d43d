/**
 * Microversion negotiation. Cirrus serves 2.1 only for now, so it advertises 2.1 as
 * both minimum and maximum; asking for anything else is 406, as Nova answers a
 * version outside its range.
 */
export const MIN_VERSION = "2.1";
export const MAX_VERSION = "2.1";

export type Negotiated =
  | { ok: true; version: string }
  /** malformed: not MAJOR.MINOR (Nova answers 400); otherwise outside the range (406). */
  | { ok: false; requested: string; malformed: boolean };

function requested(headers: Record<string, string | string[] | undefined>): string | null {
  const modern = headers["openstack-api-version"];
  if (typeof modern === "string") {
    for (const part of modern.split(",")) {
      const [service, version] = part.trim().split(/\s+/);
      if (service?.toLowerCase() === "compute" && version) return version;
    }
  }
  const legacy = headers["x-openstack-nova-api-version"];
  return typeof legacy === "string" ? legacy.trim() : null;
}

export function negotiate(headers: Record<string, string | string[] | undefined>): Negotiated {
  const asked = requested(headers);
  if (asked === null || asked.toLowerCase() === "latest") return { ok: true, version: MAX_VERSION };
  const m = /^(\d+)\.(\d+)$/.exec(asked);
  if (m && Number(m[1]) === 2 && Number(m[2]) === 1) return { ok: true, version: "2.1" };
  return { ok: false, requested: asked, malformed: m === null };
}
