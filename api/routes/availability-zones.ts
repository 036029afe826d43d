/**
 * Availability zones (os-availability-zone) as Nova derives them: a compute host is in
 * the zone of the aggregate it belongs to that has one, else in the zone its service
 * registered with, else in the default zone "nova". A zone is available when at least
 * one enabled compute service is in it.
 */
import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Knex } from "knex";
import { DEFAULT_AZ } from "../compute-hosts.js";
import type { RouteDeps } from "../app.js";
import { requireAdmin } from "../policy.js";
import { errors, Nullable } from "../schemas/common.js";

type Tx = Knex | Knex.Transaction;

export interface HostZoneRow {
  host: string;
  zone: string;
  status: string;
  forced_down: boolean;
  is_up: boolean;
  last_seen_at: Date;
}

/** SQL for a compute host's zone; `cs` is the compute_services alias. */
export const EFFECTIVE_ZONE_SQL = `COALESCE(
  (SELECT a.availability_zone FROM aggregates a JOIN aggregate_hosts ah ON ah.aggregate_id = a.id
    WHERE ah.host = cs.host AND a.availability_zone IS NOT NULL ORDER BY a.id LIMIT 1),
  cs.availability_zone, '${DEFAULT_AZ}')`;

export async function hostZones(db: Tx, downAfterSec: number): Promise<HostZoneRow[]> {
  const { rows } = (await db.raw(
    `SELECT cs.host, ${EFFECTIVE_ZONE_SQL} AS zone, cs.status, cs.forced_down, cs.last_seen_at,
            (cs.last_seen_at > now() - make_interval(secs => ?)) AND NOT cs.forced_down AS is_up
       FROM compute_services cs ORDER BY cs.host`,
    [downAfterSec],
  )) as { rows: HostZoneRow[] };
  return rows;
}

/** Zones a boot may ask for: those with at least one enabled compute service. */
export async function availableZones(db: Tx): Promise<Set<string>> {
  const { rows } = (await db.raw(`SELECT DISTINCT ${EFFECTIVE_ZONE_SQL} AS zone FROM compute_services cs WHERE cs.status = 'enabled'`)) as {
    rows: { zone: string }[];
  };
  return new Set(rows.map((r) => r.zone));
}

const ZoneState = Type.Object({ available: Type.Boolean() });
const ServiceState = Type.Object({ active: Type.Boolean(), available: Type.Boolean(), updated_at: Nullable(Type.String()) });

const ZoneInfo = Type.Object({ zoneName: Type.String(), zoneState: ZoneState, hosts: Type.Null() });
const ZoneDetail = Type.Object({
  zoneName: Type.String(),
  zoneState: ZoneState,
  hosts: Type.Union([Type.Record(Type.String(), Type.Record(Type.String(), ServiceState)), Type.Null()], {
    description: "host -> binary -> state; null for a zone that is not available",
  }),
});

function groupZones(rows: HostZoneRow[]) {
  const available = new Map<string, HostZoneRow[]>();
  const unavailable = new Set<string>();
  const enabledZones = new Set(rows.filter((r) => r.status === "enabled").map((r) => r.zone));
  for (const r of rows) {
    if (enabledZones.has(r.zone)) available.set(r.zone, [...(available.get(r.zone) ?? []), r]);
    else unavailable.add(r.zone);
  }
  return { available, unavailable: [...unavailable].sort() };
}

export const availabilityZoneRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db, config }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    "/v2.1/os-availability-zone",
    {
      schema: {
        summary: "List availability zones",
        tags: ["availability-zones"],
        response: { 200: Type.Object({ availabilityZoneInfo: Type.Array(ZoneInfo) }), ...errors() },
      },
    },
    async () => {
      const { available, unavailable } = groupZones(await hostZones(db, config.serviceDownTimeSec));
      return {
        availabilityZoneInfo: [
          ...[...available.keys()].sort().map((zoneName) => ({ zoneName, zoneState: { available: true }, hosts: null })),
          ...unavailable.map((zoneName) => ({ zoneName, zoneState: { available: false }, hosts: null })),
        ],
      };
    },
  );

  app.get(
    "/v2.1/os-availability-zone/detail",
    {
      schema: {
        summary: "List availability zones with their hosts (admin)",
        tags: ["availability-zones"],
        response: { 200: Type.Object({ availabilityZoneInfo: Type.Array(ZoneDetail) }), ...errors(403) },
      },
    },
    async (req) => {
      requireAdmin(req, "os_compute_api:os-availability-zone:detail");
      const { available, unavailable } = groupZones(await hostZones(db, config.serviceDownTimeSec));
      return {
        availabilityZoneInfo: [
          ...[...available.keys()].sort().map((zoneName) => ({
            zoneName,
            zoneState: { available: true },
            hosts: Object.fromEntries(
              available.get(zoneName)!.map((h) => [
                h.host,
                {
                  "nova-compute": {
                    active: h.status === "enabled",
                    available: h.is_up,
                    updated_at: h.last_seen_at.toISOString().replace("Z", "000"),
                  },
                },
              ]),
            ),
          })),
          ...unavailable.map((zoneName) => ({ zoneName, zoneState: { available: false }, hosts: null })),
        ],
      };
    },
  );
};
