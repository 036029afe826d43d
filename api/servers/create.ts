/**
 * Accepting a boot request: one Postgres transaction writes the instance (building /
 * scheduling), its ports and fixed IPs, the instance action and the outbox row that
 * becomes the schedule job. Bad input is refused before anything is written.
 */
import { randomBytes } from "node:crypto";
import type { Static } from "typebox";
import { badRequest, conflict } from "../../common/errors.js";
import { isUuid, newId } from "../../common/ids.js";
import type { Db } from "../../common/db/knex.js";
import { startAction } from "../../common/db/instance-records.js";
import type { FlavorSnapshot, ImageSnapshot } from "../../common/messages.js";
import { enqueue } from "../../common/outbox.js";
import { SCHEDULE_QUEUE } from "../../common/queues.js";
import { transition } from "../../common/state-machine.js";
import { PowerState } from "../../common/power-state.js";
import type { RequestContext } from "../context.js";
import { idFromRef } from "../links.js";
import { createPort } from "../ports.js";
import type { FlavorRow } from "../routes/flavors.js";
import { visibleImages, type ImageRow } from "../routes/images.js";
import { visibleNetworks, type NetworkRow } from "../routes/networks.js";
import type { ServerCreateBody } from "../schemas/server.js";
// compute extras: keypair, availability zone, server group, quota (api/quotas/boot-admission.ts)
import { admitBoot, checkBootExtras, recordBootExtras } from "../quotas/boot-admission.js";
import { parseHostHints } from "./scheduler-hints.js";

type Body = Static<typeof ServerCreateBody>;

interface RequestedNic {
  network: NetworkRow;
  fixedIp?: string;
}

export async function resolveFlavor(db: Db, ref: string | number): Promise<FlavorSnapshot> {
  const id = idFromRef(String(ref));
  const row: FlavorRow | undefined = await db("flavors").where({ id }).first();
  if (!row) throw badRequest(`Flavor ${id} could not be found.`);
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

export async function resolveImage(db: Db, ctx: RequestContext, ref: string | undefined, flavor: FlavorSnapshot): Promise<ImageSnapshot> {
  if (ref === undefined || ref === "") throw badRequest("Missing imageRef attribute; booting from a volume is not supported.");
  const id = idFromRef(ref);
  const row: ImageRow | undefined = isUuid(id)
    ? await visibleImages(db("images").where({ id }).whereNot("status", "deleted"), ctx).first()
    : undefined;
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

async function resolveNetworks(db: Db, ctx: RequestContext, requested: Body["server"]["networks"]): Promise<RequestedNic[]> {
  if (requested === "none") return [];
  if (requested === undefined || requested === "auto") {
    // Nova without an explicit request: the one network the project can use, if exactly one.
    const visible: NetworkRow[] = await visibleNetworks(db("networks"), ctx).orderBy("created_at").limit(2);
    if (visible.length > 1) throw conflict("Multiple possible networks found, use a Network ID to be more specific.");
    return visible.map((network) => ({ network }));
  }
  const nics: RequestedNic[] = [];
  for (const item of requested) {
    if (item.port !== undefined && item.port !== null) throw badRequest("Booting with an existing port is not supported yet; pass a network uuid.");
    if (item.uuid === undefined) throw badRequest("Bad networks format: network uuid is required.");
    const network: NetworkRow | undefined = await visibleNetworks(db("networks").where({ id: item.uuid }), ctx).first();
    if (!network) throw badRequest(`Network ${item.uuid} could not be found.`);
    nics.push({ network, ...(item.fixed_ip !== undefined ? { fixedIp: item.fixed_ip } : {}) });
  }
  return nics;
}

function validateScalars(s: Body["server"]): void {
  if (s.name.trim() === "") throw badRequest("Invalid input for field/attribute name. Value: must not be blank.");
  const min = s.min_count ?? 1;
  const max = s.max_count ?? min;
  if (min > max) throw badRequest("min_count must be <= max_count");
  if (max > MAX_COUNT) throw badRequest(`max_count may be at most ${MAX_COUNT}`);
  if (s.block_device_mapping_v2 !== undefined && s.block_device_mapping_v2.length > 0) {
    throw badRequest("Block device mapping is not supported yet.");
  }
  if (s.user_data !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(s.user_data.replace(/\s/g, ""))) {
    throw badRequest("User data needs to be valid base 64.");
  }
  for (const group of s.security_groups ?? []) {
    if (group.name !== "default") throw badRequest(`Security group ${group.name} not found.`);
  }
  if (typeof s.config_drive === "string" && !/^(true|false|1|0|yes|no|)$/i.test(s.config_drive)) {
    throw badRequest(`Invalid input for field/attribute config_drive. Value: ${s.config_drive}.`);
  }
}

/** How many servers one request may create (each also needs its quota). */
const MAX_COUNT = 1000;

const truthy = (v: boolean | string | undefined) => (typeof v === "string" ? /^(true|1|yes)$/i.test(v) : v === true);

export interface Accepted {
  /** The first server's id; the others share its reservation id. */
  id: string;
  ids: string[];
  reservationId: string;
  adminPass: string;
}

export async function acceptBoot(db: Db, ctx: RequestContext, requestId: string, body: Body, options: { enforceQuotas: boolean }): Promise<Accepted> {
  const s = body.server;
  validateScalars(s);
  const flavor = await resolveFlavor(db, s.flavorRef);
  const image = await resolveImage(db, ctx, s.imageRef, flavor);
  const nics = await resolveNetworks(db, ctx, s.networks);
  const extras = await checkBootExtras(db, ctx, body); // compute extras
  const hostHints = parseHostHints(body);
  const state = transition({ vm_state: "building", task_state: null, power_state: PowerState.NOSTATE }, { type: "create_accepted" });
  // Nova's multi-create: max_count servers named <name>-1..N (a fixed IP cannot be shared, so one only).
  const count = s.max_count ?? s.min_count ?? 1;
  if (count > 1 && nics.some((n) => n.fixedIp !== undefined)) throw badRequest("Unable to launch multiple instances with a single configured port or fixed IP.");
  const ids = Array.from({ length: count }, () => newId());
  const reservationId = `r-${randomBytes(4).toString("hex")}`;

  await db.transaction(async (trx) => {
    for (const [launchIndex, id] of ids.entries()) {
      await admitBoot(trx, ctx, flavor, s.metadata, options.enforceQuotas); // compute extras: quota
      await trx("instances").insert({
        id,
        name: count > 1 ? `${s.name}-${launchIndex + 1}` : s.name,
        description: s.description ?? null,
        project_id: ctx.projectId,
        user_id: ctx.userId,
        ...state,
        availability_zone: s.availability_zone ?? null,
        flavor: JSON.stringify(flavor),
        image_id: image.id,
        image: JSON.stringify(image),
        requested_networks: JSON.stringify(nics.map((n) => ({ uuid: n.network.id, fixed_ip: n.fixedIp ?? null }))),
        metadata: JSON.stringify(s.metadata ?? {}),
        config_drive: truthy(s.config_drive),
        user_data: s.user_data ?? null,
        reservation_id: reservationId,
        launch_index: launchIndex,
        access_ip_v4: s.accessIPv4 ?? null,
        access_ip_v6: s.accessIPv6 ?? null,
        key_name: extras.keyName, // compute extras
        scheduler_hints: JSON.stringify(hostHints),
      });
      await recordBootExtras(trx, id, extras); // compute extras: server group membership
      for (const [index, nic] of nics.entries()) {
        await createPort(trx, {
          networkId: nic.network.id,
          projectId: ctx.projectId,
          deviceId: id,
          deviceOwner: "compute:nova",
          deviceIndex: index,
          ...(nic.fixedIp !== undefined ? { fixedIp: nic.fixedIp } : {}),
        });
      }
      await startAction(trx, { instanceId: id, action: "create", requestId, projectId: ctx.projectId, userId: ctx.userId });
      await enqueue(trx, { queue: SCHEDULE_QUEUE, name: "schedule", jobId: `schedule-${id}`, payload: { instance_id: id, request_id: requestId } });
    }
  });
  return { id: ids[0]!, ids, reservationId, adminPass: s.adminPass ?? randomBytes(9).toString("base64url") };
}
