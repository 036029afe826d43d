/**
 * Accepting a boot request. Bad input is refused before anything is written. The common
 * boot (image, flavor, networks with IPv4 subnets; no fixed IP, server group or enforced
 * quota, or quotas enforced for a project unlimited in instances, cores and RAM), also a
 * multi-create, costs two statements: one read of everything the request names
 * (boot-lookup.ts) and one write of the instances, their ports and fixed IPs, the
 * instance actions and the outbox rows that become the schedule jobs (boot-write.ts);
 * boots accepted at the same time share that write (group commit, boot-batch.ts). A boot
 * that asks what an accepted one asked skips the read: it is judged on the remembered
 * look-up (lookup-cache.ts), which its write checks is still what the database holds.
 * With an enforced quota, one server adds a short transaction for the quota check; the
 * other boots write in a transaction of several statements (boot-transaction.ts says why).
 */
import type { Knex } from "knex";
import type { Static } from "typebox";
import { badRequest } from "../../common/errors.js";
import { isUuid, newId } from "../../common/ids.js";
import { pooledRandomBytes } from "../../common/random-bytes.js";
import type { Db } from "../../common/db/knex.js";
import type { FlavorSnapshot, ImageSnapshot } from "../../common/messages.js";
import { transition } from "../../common/state-machine.js";
import { PowerState } from "../../common/power-state.js";
import type { RequestContext } from "../context.js";
import { idFromRef } from "../links.js";
import type { SubnetRow } from "../ports.js";
import { visibleFlavor } from "../routes/flavor-extras.js";
import { visibleImages, type ImageRow } from "../routes/images.js";
import type { ServerCreateBody } from "../schemas/server.js";
// compute extras: keypair, availability zone, server group, quota (api/quotas/boot-admission.ts)
import { admitBoot, checkBootExtras, checkMetadataItems } from "../quotas/boot-admission.js";
import { QUOTA_DEFAULTS } from "../quotas/quota.js";
import { flavorSnapshot, imageRefMissing, imageSnapshot, networkAsk, pickNetworks } from "./boot-input.js";
import { bootLookupKey, fingerprintCheck, lookUpBoot, type BootLookup, type LookupKey } from "./boot-lookup.js";
import { LookupCache } from "./lookup-cache.js";
import { writeBootInTransaction } from "./boot-transaction.js";
import { submitBoot } from "./boot-batch.js";
import { StaleLookup, writeBoot, type BootRows } from "./boot-write.js";
import { parseHostHints } from "./scheduler-hints.js";

type Body = Static<typeof ServerCreateBody>;

/** The flavor by ref as the caller may see it (a private one only with access), for resize (api/servers/actions.ts). */
export async function resolveFlavor(db: Db, ctx: RequestContext, ref: string | number): Promise<FlavorSnapshot> {
  return flavorSnapshot(ref, await visibleFlavor(db, ctx, idFromRef(String(ref))));
}

/** The image by ref as the caller may see it, for rebuild (api/servers/actions.ts). */
export async function resolveImage(db: Db, ctx: RequestContext, ref: string | undefined, flavor: FlavorSnapshot): Promise<ImageSnapshot> {
  const id = imageRefMissing(ref) ? "" : idFromRef(ref!);
  const row: ImageRow | undefined = isUuid(id)
    ? await visibleImages(db("images").where({ id }).whereNot("status", "deleted"), ctx).first()
    : undefined;
  return imageSnapshot(ref, row, flavor);
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

// Per pool, the look-ups of boots accepted before (lookup-cache.ts).
const lookupCaches = new WeakMap<Db, LookupCache>();

function lookupCacheFor(db: Db): LookupCache | null {
  if ((db as Knex.Transaction).isTransaction) return null; // an Idempotency-Key boot reads inside its transaction
  let cache = lookupCaches.get(db);
  if (!cache) lookupCaches.set(db, (cache = new LookupCache()));
  return cache;
}

export async function acceptBoot(db: Db, ctx: RequestContext, requestId: string, body: Body, options: { enforceQuotas: boolean }): Promise<Accepted> {
  validateScalars(body.server);
  const key = bootLookupKey(ctx, body.server.flavorRef, body.server.imageRef, networkAsk(body.server.networks));
  const cache = lookupCacheFor(db);
  const cacheKey = cache ? LookupCache.keyOf(key) : null;
  const remembered = cacheKey !== null ? cache!.get(cacheKey) : undefined;
  if (remembered) {
    // Judged on what an earlier boot read; the write checks that it still holds. Any doubt
    // (an error while judging, a changed row) and the boot is judged again on a fresh read,
    // so its answer is the one a fresh look-up gives.
    // A boot whose write cannot check it (the transactional path) reads afresh too.
    const plan = await planBoot(db, ctx, requestId, body, options, remembered).catch(() => null);
    if (plan?.checksLookup) {
      try {
        await plan.write(checkOf(key, remembered));
        return plan.accepted;
      } catch (err) {
        if (!(err instanceof StaleLookup)) throw err;
        cache!.forget(cacheKey!);
      }
    } else if (plan === null) cache!.forget(cacheKey!);
  }
  // One read for flavor, image, networks and subnets (boot-lookup.ts).
  const found = await lookUpBoot(db, key);
  const plan = await planBoot(db, ctx, requestId, body, options, found);
  await plan.write();
  if (cacheKey !== null && plan.checksLookup) cache!.remember(cacheKey, found);
  return plan.accepted;
}

// Per remembered look-up, what its writes check (the same for every boot it answers: the
// cache holds it under the key the check is made of).
const checksOfLookup = new WeakMap<BootLookup, string>();

function checkOf(key: LookupKey, remembered: BootLookup): string {
  let check = checksOfLookup.get(remembered);
  if (check === undefined) checksOfLookup.set(remembered, (check = fingerprintCheck(key, remembered.fingerprint)));
  return check;
}

/** The rows, to be written only if the remembered look-up `verify` (when given) still holds. */
function checked(rows: BootRows, verify: BootRows["verify"]): BootRows {
  if (verify !== undefined) rows.verify = verify;
  return rows;
}

interface BootPlan {
  accepted: Accepted;
  /** Written by boot-write.ts, which can check a remembered look-up's fingerprint. */
  checksLookup: boolean;
  write(verify?: BootRows["verify"]): Promise<void>;
}

interface Snapshots {
  flavor: FlavorSnapshot;
  image: ImageSnapshot;
  flavorJson: string;
  imageJson: string;
}

// Per look-up (a remembered one answers many boots), its flavor and image snapshots with
// their JSON: they depend only on the rows read. Serialising them was the largest part of
// judging a boot (perf, 27 November).
const snapshotsOfLookup = new WeakMap<BootLookup, Snapshots>();

function snapshotsOf(s: Body["server"], found: BootLookup): Snapshots {
  let snapshots = snapshotsOfLookup.get(found);
  if (!snapshots) {
    const flavor = flavorSnapshot(s.flavorRef, found.flavor);
    const image = imageSnapshot(s.imageRef, found.image, flavor);
    snapshots = { flavor, image, flavorJson: JSON.stringify(flavor), imageJson: JSON.stringify(image) };
    snapshotsOfLookup.set(found, snapshots);
  }
  return snapshots;
}

/** Judges the request on `found` (in the order Nova's errors come in) and plans its write; writes nothing. */
async function planBoot(db: Db, ctx: RequestContext, requestId: string, body: Body, options: { enforceQuotas: boolean }, found: BootLookup): Promise<BootPlan> {
  const s = body.server;
  const { flavor, image, flavorJson, imageJson } = snapshotsOf(s, found);
  const nics = pickNetworks(s.networks, found.networks);
  const extras = await checkBootExtras(db, ctx, body); // compute extras: reads only when key_name, zone or group is given
  const hostHints = parseHostHints(body);
  const state = transition({ vm_state: "building", task_state: null, power_state: PowerState.NOSTATE }, { type: "create_accepted" });
  // Nova's multi-create: max_count servers named <name>-1..N (a fixed IP cannot be shared, so one only).
  const count = s.max_count ?? s.min_count ?? 1;
  if (count > 1 && nics.some((n) => n.fixedIp !== undefined)) throw badRequest("Unable to launch multiple instances with a single configured port or fixed IP.");
  const ids = Array.from({ length: count }, () => newId());
  const reservationId = `r-${pooledRandomBytes(4).toString("hex")}`;

  const subnetsOf = (networkId: string): SubnetRow[] => found.subnets.filter((sub) => sub.network_id === networkId);
  const rows: BootRows = {
    ids,
    names: ids.map((_, launchIndex) => (count > 1 ? `${s.name}-${launchIndex + 1}` : s.name)),
    requestId,
    projectId: ctx.projectId,
    userId: ctx.userId,
    nics: nics.map((n) => ({ networkId: n.network.id, subnets: subnetsOf(n.network.id) })),
    verify: undefined, // set by `checked`, on the object's own shape
    // Every property written out: an object literal that starts with a spread defines the
    // rest one by one through the runtime (V8's DefineNamedOwnIC misses: 4 % of the API's
    // CPU under B1, perf).
    instance: {
      vm_state: state.vm_state,
      task_state: state.task_state,
      power_state: state.power_state,
      description: s.description ?? null,
      availability_zone: s.availability_zone ?? null,
      flavor: flavorJson,
      image_id: image.id,
      image: imageJson,
      requested_networks: JSON.stringify(nics.map((n) => ({ uuid: n.network.id, fixed_ip: n.fixedIp ?? null }))),
      metadata: JSON.stringify(s.metadata ?? {}),
      config_drive: truthy(s.config_drive),
      user_data: s.user_data ?? null,
      reservation_id: reservationId,
      access_ip_v4: s.accessIPv4 ?? null,
      access_ip_v6: s.accessIPv6 ?? null,
      key_name: extras.keyName, // compute extras
      scheduler_hints: JSON.stringify(hostHints),
    },
  };
  const accepted = { id: ids[0]!, ids, reservationId, adminPass: s.adminPass ?? pooledRandomBytes(9).toString("base64url") };
  const oneStatement =
    extras.group === null && nics.every((n) => n.fixedIp === undefined) && rows.nics.every((n) => n.subnets.every((sub) => sub.ip_version === 4));
  // A project unlimited in instances, cores and RAM takes no quota lock and counts nothing
  // (enforceBootQuota), so with quotas enforced its boots need only the metadata check.
  const limit = (resource: keyof typeof QUOTA_DEFAULTS) => found.limits[resource] ?? QUOTA_DEFAULTS[resource];
  const unlimited = limit("instances") < 0 && limit("cores") < 0 && limit("ram") < 0;
  if (oneStatement && (!options.enforceQuotas || unlimited)) {
    if (options.enforceQuotas) checkMetadataItems(s.metadata, limit("metadata_items"));
    // Grouped with boots accepted at the same time into one statement (boot-batch.ts).
    return { accepted, checksLookup: true, write: (verify) => submitBoot(db, checked(rows, verify)) };
  }
  if (oneStatement && count === 1) {
    // The quota check (its lock row held) and the write share a short transaction. A
    // multi-create keeps the loop below: each server is checked against the usage that
    // includes the ones before it, and the 403 names that usage.
    return { accepted, checksLookup: true, write: (verify) => writeBoot(db, checked(rows, verify), (trx) => admitBoot(trx, ctx, flavor, s.metadata, true)) };
  }
  return {
    accepted,
    checksLookup: false,
    write: () => writeBootInTransaction(db, ctx, { rows, nics, flavor, metadata: s.metadata, extras, enforceQuotas: options.enforceQuotas }),
  };
}
