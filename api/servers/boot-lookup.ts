/**
 * Everything a boot request names, read in one statement: the flavor, the image (as the
 * caller may see it), the networks (the requested ones, or the ones "auto" could pick)
 * and every subnet of those networks, and the project's quota overrides. Judging what was
 * found (not found, not active, too small, ...) is left to the caller, in the order the
 * errors must come in. Look-ups of concurrent boots are read together.
 *
 * Each look-up also reads its fingerprint: the row versions (xmin) of every row it read,
 * and of the rows whose appearance would change its answer (the networks' subnets, the
 * project's quota rows). The same expression, evaluated again inside the boot's write
 * (boot-write.ts), tells whether a remembered look-up (lookup-cache.ts) still holds.
 */
import type { Knex } from "knex";
import type { Db } from "../../common/db/knex.js";
import { prepared } from "../../common/db/prepared.js";
import { ReadBatcher } from "../../common/read-batch.js";
import { isUuid } from "../../common/ids.js";
import type { RequestContext } from "../context.js";
import { idFromRef } from "../links.js";
import { isService } from "../policy.js";
import type { SubnetRow } from "../ports.js";
import type { FlavorRow } from "../routes/flavors.js";
import type { ImageRow } from "../routes/images.js";
import type { NetworkRow } from "../routes/networks.js";

/** How the request names its networks: none, the one "auto" finds, or a list of ids. */
export type NetworkAsk = { kind: "none" } | { kind: "auto" } | { kind: "ids"; ids: string[] };

export interface BootLookup {
  flavor: FlavorRow | null;
  image: ImageRow | null;
  /** Unordered for "ids" (the caller matches them by id); by created_at, at most 2, for "auto". */
  networks: NetworkRow[];
  /** Every subnet of those networks, by (created_at, id) as api/ports.ts orders them. */
  subnets: SubnetRow[];
  /** The caller's project's quota overrides (quotas rows: resource → hard limit); defaults apply to the rest. */
  limits: Record<string, number>;
  /** The versions of the rows this answer was read from (lookupFingerprintSql), in the same snapshot. */
  fingerprint: string;
}

/**
 * The fingerprint of a look-up key `k` (a row with flavor text, image uuid, net_ids uuid[],
 * project text): the xmin of the flavor, the image, each named network, each subnet of those
 * networks, each quota row of the project and the project's access row for the flavor. Any
 * update or delete of one of those rows, and any insert of a subnet, quota or access row that
 * the look-up would have read, changes it; so does a network or image appearing under an id
 * that was missing. Unchanged, the look-up reads the same answer.
 */
export function lookupFingerprintSql(k: string): string {
  const versions = (table: string, alias: string, id: string, where: string) =>
    `coalesce((SELECT string_agg(${alias}.${id}::text || ':' || ${alias}.xmin::text, ',' ORDER BY ${alias}.${id}) FROM ${table} ${alias} WHERE ${where}), '-')`;
  return `concat_ws('|',
    ${versions("flavors", "vf", "id", `vf.id = ${k}.flavor`)},
    ${versions("images", "vi", "id", `vi.id = ${k}.image`)},
    ${versions("networks", "vn", "id", `vn.id = ANY(${k}.net_ids)`)},
    ${versions("subnets", "vs", "id", `vs.network_id = ANY(${k}.net_ids)`)},
    ${versions("quotas", "vq", "resource", `vq.project_id = ${k}.project`)},
    ${versions("flavor_access", "va", "project_id", `va.flavor_id = ${k}.flavor AND va.project_id = ${k}.project`)})`;
}

/**
 * What a write checks of a remembered look-up (boot-write.ts): the key's fields that
 * lookupFingerprintSql reads and the fingerprint they had, as one JSON object.
 */
export function fingerprintCheck(key: LookupKey, fingerprint: string): string {
  const { flavor, image, net_ids, project } = key;
  return JSON.stringify({ flavor, image, net_ids, project, fingerprint });
}

// One row of answers per key. The same visibility rules as visibleNetworks / visibleImages
// (api/routes/) and Nova's for flavors (a private one only with the project's access), with
// the admin (and, for images, service) bypass as a boolean per key;
// "auto" takes the first two networks by created_at, "none" none.
const LOOKUP_SQL = `
  SELECT (SELECT row_to_json(f) FROM flavors f
           WHERE f.id = k.flavor
             AND (k.admin OR f.is_public OR EXISTS (SELECT 1 FROM flavor_access fa WHERE fa.flavor_id = f.id AND fa.project_id = k.project))) AS flavor,
         (SELECT row_to_json(i) FROM images i
           WHERE i.id = k.image AND i.status <> 'deleted'
             AND (k.image_bypass OR i.visibility IN ('public', 'community') OR i.owner = k.project)) AS image,
         nets.networks,
         (SELECT coalesce(json_agg(s ORDER BY s.created_at, s.id), '[]') FROM subnets s
           WHERE s.network_id = ANY(nets.ids)) AS subnets,
         (SELECT coalesce(json_object_agg(q.resource, q.hard_limit), '{}') FROM quotas q WHERE q.project_id = k.project) AS limits,
         ${lookupFingerprintSql("k")} AS fingerprint
    FROM json_to_recordset(?::json)
         AS k(ord int, kind text, net_ids uuid[], admin boolean, project text, flavor text, image uuid, image_bypass boolean)
   CROSS JOIN LATERAL (
         SELECT coalesce(array_agg(x.id), '{}') AS ids, coalesce(json_agg(x ORDER BY x.created_at), '[]') AS networks
           FROM (SELECT * FROM networks n
                  WHERE ((k.kind = 'ids' AND n.id = ANY(k.net_ids)) OR k.kind = 'auto')
                    AND (k.admin OR n.shared OR n.project_id = k.project)
                  ORDER BY n.created_at
                  LIMIT CASE WHEN k.kind = 'auto' THEN 2 END) x) nets
   ORDER BY k.ord`;

export interface LookupKey {
  ord?: number;
  kind: NetworkAsk["kind"];
  net_ids: string[];
  admin: boolean;
  project: string;
  flavor: string;
  image: string | null;
  image_bypass: boolean;
}

async function readLookups(db: Db, keys: LookupKey[]): Promise<BootLookup[]> {
  const { rows } = await prepared(db.raw(LOOKUP_SQL, [JSON.stringify(keys.map((k, ord) => ({ ...k, ord })))]));
  return (rows as BootLookup[]).map((r) => ({ flavor: r.flavor, image: r.image, networks: r.networks, subnets: r.subnets, limits: r.limits, fingerprint: r.fingerprint }));
}

// Concurrent boots share one look-up statement (common/read-batch.ts), one batcher per pool.
const batchers = new WeakMap<Db, ReadBatcher<LookupKey, BootLookup>>();

/** What a boot request asks the look-up for, as the caller may see it. */
export function bootLookupKey(ctx: RequestContext, flavorRef: string | number, imageRef: string | undefined, networks: NetworkAsk): LookupKey {
  const imageId = imageRef === undefined || imageRef === "" ? "" : idFromRef(imageRef);
  return {
    kind: networks.kind,
    net_ids: networks.kind === "ids" ? networks.ids.filter(isUuid) : [],
    admin: ctx.isAdmin,
    project: ctx.projectId,
    flavor: idFromRef(String(flavorRef)),
    image: isUuid(imageId) ? imageId : null,
    image_bypass: ctx.isAdmin || isService(ctx),
  };
}

/** Reads the look-up now (never from lookup-cache.ts). */
export async function lookUpBoot(db: Db, key: LookupKey): Promise<BootLookup> {
  // Inside a transaction (an Idempotency-Key boot) the read must see that transaction.
  if ((db as Knex.Transaction).isTransaction) return (await readLookups(db, [key]))[0]!;
  let batcher = batchers.get(db);
  if (!batcher) batchers.set(db, (batcher = new ReadBatcher((keys) => readLookups(db, keys))));
  return batcher.load(key);
}
