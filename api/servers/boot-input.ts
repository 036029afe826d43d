/**
 * Judging what a boot request names, once it has been read: Nova's 400/409 for a flavor,
 * image or network that is missing, not visible, not active or too small. Pure functions,
 * so the one-statement look-up (boot-lookup.ts) and the single reads of rebuild and resize
 * (api/servers/actions.ts through create.ts) give the same answers.
 */
import type { Static } from "typebox";
import { badRequest, conflict } from "../../common/errors.js";
import type { FlavorSnapshot, ImageSnapshot } from "../../common/messages.js";
import { idFromRef } from "../links.js";
import type { FlavorRow } from "../routes/flavors.js";
import type { ImageRow } from "../routes/images.js";
import type { NetworkRow } from "../routes/networks.js";
import type { ServerCreateBody } from "../schemas/server.js";
import type { NetworkAsk } from "./boot-lookup.js";

type Networks = Static<typeof ServerCreateBody>["server"]["networks"];

export interface RequestedNic {
  network: NetworkRow;
  fixedIp?: string;
}

export function flavorSnapshot(ref: string | number, row: FlavorRow | null | undefined): FlavorSnapshot {
  if (!row) throw badRequest(`Flavor ${idFromRef(String(ref))} could not be found.`);
  return {
    id: row.id,
    name: row.name,
    vcpus: row.vcpus,
    ram: row.ram,
    disk: row.disk,
    ephemeral: row.ephemeral,
    swap: row.swap,
    extra_specs: row.extra_specs,
  };
}

export const imageRefMissing = (ref: string | undefined): boolean => ref === undefined || ref === "";

/** `row` is the image with the ref's id as the caller may see it (not deleted), if any. */
export function imageSnapshot(ref: string | undefined, row: ImageRow | null | undefined, flavor: FlavorSnapshot): ImageSnapshot {
  if (imageRefMissing(ref)) throw badRequest("Missing imageRef attribute; booting from a volume is not supported.");
  const id = idFromRef(ref!);
  if (!row) throw badRequest(`Image ${id} could not be found.`);
  if (row.status !== "active" || !row.location) throw badRequest(`Image ${id} is not active.`);
  if (row.min_ram > flavor.ram) throw badRequest("Flavor's memory is too small for requested image.");
  if (flavor.disk > 0 && row.min_disk > flavor.disk) throw badRequest("Flavor's disk is too small for requested image.");
  if (flavor.disk > 0 && row.size !== null && row.size > flavor.disk * 1024 ** 3) {
    throw badRequest("Flavor's disk is too small for requested image.");
  }
  return {
    id: row.id,
    name: row.name ?? "",
    disk_format: row.disk_format ?? "raw",
    location: row.location,
    size: row.size,
    checksum: row.checksum,
    // In the snapshot, so the scheduler need not read the image again for the spawn job.
    os_hash_value: row.os_hash_algo === "sha256" ? row.os_hash_value : null,
    properties: row.properties,
  };
}

/** What to read for the request's networks; its items are judged later (pickNetworks), in order. */
export function networkAsk(requested: Networks): NetworkAsk {
  if (requested === "none") return { kind: "none" };
  if (requested === undefined || requested === "auto") return { kind: "auto" };
  return { kind: "ids", ids: requested.flatMap((item) => (item.uuid !== undefined ? [item.uuid] : [])) };
}

/** `found`: the networks read for networkAsk(requested) (visible ones only). */
export function pickNetworks(requested: Networks, found: NetworkRow[]): RequestedNic[] {
  if (requested === "none") return [];
  if (requested === undefined || requested === "auto") {
    // Nova without an explicit request: the one network the project can use, if exactly one.
    if (found.length > 1) throw conflict("Multiple possible networks found, use a Network ID to be more specific.");
    return found.map((network) => ({ network }));
  }
  const byId = new Map(found.map((n) => [n.id.toLowerCase(), n]));
  const nics: RequestedNic[] = [];
  for (const item of requested) {
    if (item.port !== undefined && item.port !== null) throw badRequest("Booting with an existing port is not supported yet; pass a network uuid.");
    if (item.uuid === undefined) throw badRequest("Bad networks format: network uuid is required.");
    const network = byId.get(item.uuid.toLowerCase());
    if (!network) throw badRequest(`Network ${item.uuid} could not be found.`);
    nics.push({ network, ...(item.fixed_ip !== undefined ? { fixedIp: item.fixed_ip } : {}) });
  }
  return nics;
}
