/**
 * Everything a boot request names, read in one statement: the flavor, the image (as the
 * caller may see it), the networks (the requested ones, or the ones "auto" could pick)
 * and every subnet of those networks, and the project's quota overrides. Judging what was found (not found, not active,
 * too small, ...) is left to the caller, in the order the errors must come in.
 */
import type { Db } from "../../common/db/knex.js";
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
}

// The same visibility rules as visibleNetworks / visibleImages (api/routes/), with the
// admin (and, for images, service) bypass as a boolean binding.
const NETWORKS: Record<NetworkAsk["kind"], string> = {
  none: `SELECT * FROM networks WHERE false`,
  auto: `SELECT * FROM networks n WHERE (?::boolean OR n.shared OR n.project_id = ?) ORDER BY n.created_at LIMIT 2`,
  ids: `SELECT * FROM networks n WHERE n.id = ANY(?::uuid[]) AND (?::boolean OR n.shared OR n.project_id = ?)`,
};

const lookupSql = (networks: string) => `
  WITH nets AS (${networks})
  SELECT (SELECT row_to_json(f) FROM flavors f WHERE f.id = ?) AS flavor,
         (SELECT row_to_json(i) FROM images i
           WHERE i.id = ?::uuid AND i.status <> 'deleted'
             AND (?::boolean OR i.visibility IN ('public', 'community') OR i.owner = ?)) AS image,
         (SELECT coalesce(json_agg(n), '[]') FROM nets n) AS networks,
         (SELECT coalesce(json_agg(s ORDER BY s.created_at, s.id), '[]') FROM subnets s
           WHERE s.network_id IN (SELECT id FROM nets)) AS subnets,
         (SELECT coalesce(json_object_agg(q.resource, q.hard_limit), '{}') FROM quotas q WHERE q.project_id = ?) AS limits`;

export async function lookUpBoot(db: Db, ctx: RequestContext, flavorRef: string | number, imageRef: string | undefined, networks: NetworkAsk): Promise<BootLookup> {
  const netBindings =
    networks.kind === "none" ? [] : networks.kind === "auto" ? [ctx.isAdmin, ctx.projectId] : [networks.ids.filter(isUuid), ctx.isAdmin, ctx.projectId];
  const imageId = imageRef === undefined || imageRef === "" ? "" : idFromRef(imageRef);
  const { rows } = await db.raw(lookupSql(NETWORKS[networks.kind]), [
    ...netBindings,
    idFromRef(String(flavorRef)),
    isUuid(imageId) ? imageId : null,
    ctx.isAdmin || isService(ctx),
    ctx.projectId,
    ctx.projectId,
  ]);
  const row = rows[0] as BootLookup;
  return { flavor: row.flavor, image: row.image, networks: row.networks, subnets: row.subnets, limits: row.limits };
}
