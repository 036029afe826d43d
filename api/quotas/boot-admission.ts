/**
 * What a boot request must pass besides flavor, image and networks: its key_name names
 * a keypair of the caller, its availability zone has a host, its `group` scheduler
 * hint names a server group of the caller's project; and, inside the boot transaction,
 * the project's quota (instances, cores, ram, metadata_items) and the group's member
 * count. api/servers/create.ts calls these three functions.
 */
import type { Knex } from "knex";
import { badRequest, forbidden } from "../../common/errors.js";
import type { Db } from "../../common/db/knex.js";
import type { RequestContext } from "../context.js";
import { availableZones } from "../routes/availability-zones.js";
import { findKeypair } from "../routes/keypairs.js";
import { joinServerGroup, resolveGroupHint, type ServerGroupRow } from "../routes/server-groups.js";
import { enforceBootQuota } from "./quota.js";

export interface BootExtras {
  keyName: string | null;
  group: ServerGroupRow | null;
}

interface BootBody {
  server: { key_name?: string; availability_zone?: string; metadata?: Record<string, string> };
  "os:scheduler_hints"?: Record<string, unknown>;
  "OS-SCH-HNT:scheduler_hints"?: Record<string, unknown>;
}

/** Checks made before the transaction; nothing is written. */
export async function checkBootExtras(db: Db, ctx: RequestContext, body: BootBody): Promise<BootExtras> {
  const s = body.server;
  let keyName: string | null = null;
  if (s.key_name !== undefined) {
    if (!(await findKeypair(db, ctx, s.key_name))) throw badRequest("Invalid key_name provided.");
    keyName = s.key_name;
  }
  if (s.availability_zone !== undefined && !(await availableZones(db)).has(s.availability_zone)) {
    throw badRequest("The requested availability zone is not available");
  }
  const group = await resolveGroupHint(db, ctx, body);
  return { keyName, group };
}


/** In the boot transaction, before the instance row: the project's quota, with its lock row held. */
export async function admitBoot(
  trx: Knex.Transaction,
  ctx: RequestContext,
  flavor: { vcpus: number; ram: number },
  metadata: Record<string, string> | undefined,
  enforce: boolean,
): Promise<void> {
  if (!enforce) return;
  const limits = await enforceBootQuota(trx, ctx.projectId, flavor);
  checkMetadataItems(metadata, limits.metadata_items);
}

/** Nova's 403 for more metadata items than the project's limit allows (-1: unlimited). */
export function checkMetadataItems(metadata: Record<string, string> | undefined, allowed: number): void {
  const items = Object.keys(metadata ?? {}).length;
  if (allowed >= 0 && items > allowed) throw forbidden(`Maximum number of metadata items exceeds ${allowed}`);
}

/** In the boot transaction, after the instance row: group membership. */
export async function recordBootExtras(trx: Knex.Transaction, instanceId: string, extras: BootExtras): Promise<void> {
  if (extras.group) await joinServerGroup(trx, extras.group, instanceId);
}
