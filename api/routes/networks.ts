/** The network API in Neutron v2.0 shapes: networks, their IPv4 and IPv6 subnets, and ports (read-only). */
import type { FastifyPluginAsync } from "fastify";
import { Type } from "typebox";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Knex } from "knex";
import { badRequest, conflict, NovaError, notFound } from "../../common/errors.js";
import { isUuid, newId } from "../../common/ids.js";
import {
  canonicalIp, cidrLast, defaultGatewayOf, defaultPoolsOf, formatCidr, isHostAddressOf, parseCidr, validatePoolsOf, type Cidr,
} from "../../common/ipam.js";
import type { RouteDeps } from "../app.js";
import type { RequestContext } from "../context.js";
import type { SubnetRow } from "../ports.js";
import { NoBody, errors } from "../schemas/common.js";
import { NameIdQuery, Network, NetworkCreateBody, Port, PortListQuery, Subnet, SubnetCreateBody } from "../schemas/network.js";

export interface NetworkRow {
  id: string;
  name: string;
  description: string;
  project_id: string;
  shared: boolean;
  admin_state_up: boolean;
  mtu: number;
  network_type: string;
  physical_network: string | null;
  segmentation_id: number | null;
  created_at: Date;
  updated_at: Date;
}

const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

export function networkView(row: NetworkRow, subnetIds: string[]) {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    tenant_id: row.project_id,
    project_id: row.project_id,
    status: "ACTIVE",
    subnets: subnetIds,
    shared: row.shared,
    admin_state_up: row.admin_state_up,
    mtu: row.mtu,
    "router:external": false,
    "provider:network_type": row.network_type,
    "provider:physical_network": row.physical_network,
    "provider:segmentation_id": row.segmentation_id,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

function subnetView(row: SubnetRow) {
  return {
    id: row.id,
    name: row.name,
    network_id: row.network_id,
    tenant_id: row.project_id,
    project_id: row.project_id,
    ip_version: row.ip_version,
    cidr: row.cidr,
    gateway_ip: row.gateway_ip,
    allocation_pools: row.allocation_pools,
    dns_nameservers: row.dns_nameservers,
    host_routes: row.host_routes ?? [],
    enable_dhcp: row.enable_dhcp,
    ipv6_address_mode: row.ipv6_address_mode ?? null,
    ipv6_ra_mode: row.ipv6_ra_mode ?? null,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

/** Networks a caller may see: shared ones and their project's own. */
export function visibleNetworks(q: Knex.QueryBuilder, ctx: RequestContext): Knex.QueryBuilder {
  if (ctx.isAdmin) return q;
  return q.where((w) => w.where("shared", true).orWhere("project_id", ctx.projectId));
}

const Params = Type.Object({ id: Type.String() });

export const networkRoutes: FastifyPluginAsync<RouteDeps> = async (plain, { db }) => {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>();

  const subnetIdsByNetwork = async (ids: string[]) => {
    const rows: { id: string; network_id: string }[] = ids.length ? await db("subnets").whereIn("network_id", ids).select("id", "network_id") : [];
    const map = new Map<string, string[]>();
    for (const r of rows) map.set(r.network_id, [...(map.get(r.network_id) ?? []), r.id]);
    return map;
  };

  const findNetwork = async (id: string, ctx: RequestContext): Promise<NetworkRow> => {
    const row = isUuid(id) ? await visibleNetworks(db("networks").where({ id }), ctx).first() : undefined;
    if (!row) throw notFound(`Network ${id} could not be found.`);
    return row;
  };

  const ownerOf = (ctx: RequestContext, asked: { tenant_id?: string; project_id?: string }) => {
    const wanted = asked.project_id ?? asked.tenant_id;
    if (wanted !== undefined && wanted !== ctx.projectId && !ctx.isAdmin) {
      throw new NovaError(403, "Only admins may create resources on behalf of another project.");
    }
    return wanted ?? ctx.projectId;
  };

  app.post(
    "/v2.0/networks",
    {
      schema: {
        summary: "Create a network",
        tags: ["networks"],
        body: NetworkCreateBody,
        response: { 201: Type.Object({ network: Network }), ...errors(400, 403) },
      },
    },
    async (req, reply) => {
      const n = req.body.network;
      const type = n["provider:network_type"] ?? "flat";
      const segmentation = n["provider:segmentation_id"] ?? null;
      if (type === "vlan" && segmentation === null) throw badRequest("provider:segmentation_id is required for a vlan network.");
      if (type === "flat" && segmentation !== null) throw badRequest("provider:segmentation_id is not allowed for a flat network.");
      const [row] = await db("networks")
        .insert({
          id: newId(),
          name: n.name ?? "",
          description: n.description ?? "",
          project_id: ownerOf(req.ctx, n),
          shared: n.shared ?? false,
          admin_state_up: n.admin_state_up ?? true,
          mtu: n.mtu ?? 1500,
          network_type: type,
          physical_network: n["provider:physical_network"] ?? null,
          segmentation_id: segmentation,
        })
        .returning("*");
      return reply.status(201).send({ network: networkView(row as NetworkRow, []) });
    },
  );

  app.get(
    "/v2.0/networks",
    {
      schema: {
        summary: "List networks",
        tags: ["networks"],
        querystring: NameIdQuery,
        response: { 200: Type.Object({ networks: Type.Array(Network) }) },
      },
    },
    async (req) => {
      let q = visibleNetworks(db("networks"), req.ctx).orderBy("created_at").orderBy("id");
      if (req.query.name !== undefined) q = q.where("name", req.query.name);
      if (req.query.id !== undefined) q = isUuid(req.query.id) ? q.where("id", req.query.id) : q.whereRaw("false");
      const rows: NetworkRow[] = await q;
      const subnets = await subnetIdsByNetwork(rows.map((r) => r.id));
      return { networks: rows.map((r) => networkView(r, subnets.get(r.id) ?? [])) };
    },
  );

  app.get(
    "/v2.0/networks/:id",
    {
      schema: { summary: "Show a network", tags: ["networks"], params: Params, response: { 200: Type.Object({ network: Network }), ...errors(404) } },
    },
    async (req) => {
      const row = await findNetwork(req.params.id, req.ctx);
      const subnets = await subnetIdsByNetwork([row.id]);
      return { network: networkView(row, subnets.get(row.id) ?? []) };
    },
  );

  app.delete(
    "/v2.0/networks/:id",
    {
      schema: {
        summary: "Delete a network (and its subnet)",
        tags: ["networks"],
        params: Params,
        response: { 204: NoBody("Deleted"), ...errors(404, 409) },
      },
    },
    async (req, reply) => {
      const row = await findNetwork(req.params.id, req.ctx);
      if (row.project_id !== req.ctx.projectId && !req.ctx.isAdmin) throw notFound(`Network ${row.id} could not be found.`);
      await db.transaction(async (trx) => {
        await trx("networks").where({ id: row.id }).forUpdate().first();
        const inUse = await trx("ports").where({ network_id: row.id }).first();
        if (inUse) {
          throw conflict(`Unable to complete operation on network ${row.id}. There are one or more ports still in use on the network.`);
        }
        await trx("networks").where({ id: row.id }).delete();
      });
      return reply.status(204).send();
    },
  );

  app.post(
    "/v2.0/subnets",
    {
      schema: {
        summary: "Create a subnet (IPv4 or IPv6; a network may hold several that do not overlap)",
        tags: ["networks"],
        body: SubnetCreateBody,
        response: { 201: Type.Object({ subnet: Subnet }), ...errors(400, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      const s = req.body.subnet;
      const network = await findNetwork(s.network_id, req.ctx);
      let cidr: Cidr;
      try {
        cidr = parseCidr(s.cidr);
      } catch (err) {
        throw badRequest(`Invalid input for cidr. Reason: '${s.cidr}' is not a valid IP subnet. ${(err as Error).message}`);
      }
      const version = s.ip_version ?? 4;
      if (cidr.version !== version) throw badRequest(`Invalid input for cidr: ${s.cidr} is not an IPv${version} subnet (ip_version ${version}).`);
      if (cidr.bits - cidr.prefix < 2) throw badRequest(`Invalid input for cidr: ${s.cidr} leaves no room for instances.`);
      if (version === 4 && (s.ipv6_address_mode !== undefined || s.ipv6_ra_mode !== undefined)) {
        throw badRequest("ipv6_ra_mode and ipv6_address_mode are only valid for IPv6 subnets.");
      }
      let gateway = s.gateway_ip === undefined ? defaultGatewayOf(cidr) : s.gateway_ip;
      if (gateway !== null) {
        if (!isHostAddressOf(cidr, gateway)) throw badRequest(`Gateway is not valid on subnet: ${gateway} is not a host address of ${s.cidr}.`);
        gateway = canonicalIp(gateway);
      }
      const asked = s.allocation_pools?.map((p) => ({ start: canonicalIp(p.start) ?? p.start, end: canonicalIp(p.end) ?? p.end }));
      const pools = asked ?? defaultPoolsOf(cidr, gateway);
      const poolError = validatePoolsOf(cidr, pools, gateway);
      if (poolError) throw badRequest(poolError);
      const dns: string[] = [];
      for (const server of s.dns_nameservers ?? []) {
        const c = canonicalIp(server);
        if (c === null) throw badRequest(`Invalid input for dns_nameservers: '${server}' is not a valid IP address.`);
        if (dns.includes(c)) throw badRequest(`Duplicate nameserver '${server}'.`);
        dns.push(c);
      }
      const projectId = ownerOf(req.ctx, s);
      const inserted = await db.transaction(async (trx) => {
        // The network row serialises subnet creation, so two overlapping subnets cannot both pass.
        await trx("networks").where({ id: network.id }).forUpdate().first();
        const siblings: SubnetRow[] = await trx("subnets").where({ network_id: network.id });
        for (const other of siblings) {
          const o = parseCidr(other.cidr);
          if (o.version === cidr.version && o.network <= cidrLast(cidr) && cidr.network <= cidrLast(o)) {
            throw badRequest(`Invalid input for operation: Requested subnet with cidr: ${formatCidr(cidr)} for network: ${network.id} overlaps with another subnet (${other.cidr}).`);
          }
        }
        return trx("subnets")
          .insert({
            id: newId(),
            network_id: network.id,
            name: s.name ?? "",
            project_id: projectId,
            ip_version: version,
            cidr: formatCidr(cidr),
            gateway_ip: gateway ?? null,
            allocation_pools: JSON.stringify(pools),
            dns_nameservers: JSON.stringify(dns),
            enable_dhcp: s.enable_dhcp ?? true,
            ipv6_address_mode: s.ipv6_address_mode ?? null,
            ipv6_ra_mode: s.ipv6_ra_mode ?? null,
          })
          .returning("*");
      });
      return reply.status(201).send({ subnet: subnetView(inserted[0] as SubnetRow) });
    },
  );

  app.get(
    "/v2.0/subnets",
    {
      schema: { summary: "List subnets", tags: ["networks"], querystring: NameIdQuery, response: { 200: Type.Object({ subnets: Type.Array(Subnet) }) } },
    },
    async (req) => {
      let q = db("subnets")
        .join("networks", "networks.id", "subnets.network_id")
        .select("subnets.*")
        .orderBy("subnets.created_at");
      if (!req.ctx.isAdmin) q = q.where((w) => w.where("networks.shared", true).orWhere("networks.project_id", req.ctx.projectId));
      if (req.query.name !== undefined) q = q.where("subnets.name", req.query.name);
      if (req.query.id !== undefined) q = isUuid(req.query.id) ? q.where("subnets.id", req.query.id) : q.whereRaw("false");
      return { subnets: ((await q) as SubnetRow[]).map(subnetView) };
    },
  );

  app.get(
    "/v2.0/subnets/:id",
    {
      schema: { summary: "Show a subnet", tags: ["networks"], params: Params, response: { 200: Type.Object({ subnet: Subnet }), ...errors(404) } },
    },
    async (req) => {
      const row: SubnetRow | undefined = isUuid(req.params.id) ? await db("subnets").where({ id: req.params.id }).first() : undefined;
      if (!row) throw notFound(`Subnet ${req.params.id} could not be found.`);
      await findNetwork(row.network_id, req.ctx).catch(() => {
        throw notFound(`Subnet ${req.params.id} could not be found.`);
      });
      return { subnet: subnetView(row) };
    },
  );

  app.delete(
    "/v2.0/subnets/:id",
    {
      schema: {
        summary: "Delete a subnet",
        tags: ["networks"],
        params: Params,
        response: { 204: NoBody("Deleted"), ...errors(404, 409) },
      },
    },
    async (req, reply) => {
      const row: SubnetRow | undefined = isUuid(req.params.id) ? await db("subnets").where({ id: req.params.id }).first() : undefined;
      if (!row || (row.project_id !== req.ctx.projectId && !req.ctx.isAdmin)) throw notFound(`Subnet ${req.params.id} could not be found.`);
      await db.transaction(async (trx) => {
        await trx("subnets").where({ id: row.id }).forUpdate().first();
        if (await trx("ip_allocations").where({ subnet_id: row.id }).first()) {
          throw conflict(`Unable to complete operation on subnet ${row.id}: one or more ports have an IP allocation from this subnet.`);
        }
        await trx("subnets").where({ id: row.id }).delete();
      });
      return reply.status(204).send();
    },
  );

  const portsQuery = (ctx: RequestContext) => {
    let q = db("ports").orderBy("created_at").orderBy("id");
    if (!ctx.isAdmin) q = q.where("project_id", ctx.projectId);
    return q;
  };

  const withIps = async (rows: Record<string, unknown>[]) => {
    const ids = rows.map((r) => r.id as string);
    const ips: { port_id: string; subnet_id: string; ip_address: string }[] = ids.length
      ? await db("ip_allocations").whereIn("port_id", ids).select("port_id", "subnet_id", "ip_address")
      : [];
    return rows.map((r) => ({
      id: r.id as string,
      name: r.name as string,
      network_id: r.network_id as string,
      tenant_id: r.project_id as string,
      project_id: r.project_id as string,
      mac_address: r.mac_address as string,
      fixed_ips: ips.filter((i) => i.port_id === r.id).map((i) => ({ subnet_id: i.subnet_id, ip_address: i.ip_address })),
      device_id: (r.device_id as string | null) ?? "",
      device_owner: r.device_owner as string,
      status: r.status as string,
      admin_state_up: r.admin_state_up as boolean,
      created_at: iso(r.created_at as Date),
      updated_at: iso(r.updated_at as Date),
    }));
  };

  app.get(
    "/v2.0/ports",
    {
      schema: { summary: "List ports", tags: ["networks"], querystring: PortListQuery, response: { 200: Type.Object({ ports: Type.Array(Port) }) } },
    },
    async (req) => {
      let q = portsQuery(req.ctx);
      if (req.query.device_id !== undefined) q = isUuid(req.query.device_id) ? q.where("device_id", req.query.device_id) : q.whereRaw("false");
      if (req.query.network_id !== undefined) q = isUuid(req.query.network_id) ? q.where("network_id", req.query.network_id) : q.whereRaw("false");
      return { ports: await withIps(await q) };
    },
  );

  app.get(
    "/v2.0/ports/:id",
    { schema: { summary: "Show a port", tags: ["networks"], params: Params, response: { 200: Type.Object({ port: Port }), ...errors(404) } } },
    async (req) => {
      const row = isUuid(req.params.id) ? await portsQuery(req.ctx).where("id", req.params.id).first() : undefined;
      if (!row) throw notFound(`Port ${req.params.id} could not be found.`);
      const [port] = await withIps([row]);
      return { port: port! };
    },
  );
};
