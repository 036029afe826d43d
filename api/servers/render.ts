/** Renders servers from their rows: addresses and faults loaded in a fixed number of queries. */
import type { Db } from "../../common/db/knex.js";
import { notFound } from "../../common/errors.js";
import type { RequestContext } from "../context.js";
import { loadAddresses, loadFaults, loadHostStatuses } from "./load.js";
import { serverView, type HostStatus, type InstanceRow } from "./view.js";
import { can } from "../policy.js";

export async function renderRows(db: Db, publicUrl: string, ctx: RequestContext, rows: InstanceRow[], opts: { serviceDownTimeSec?: number } = {}) {
  const isAdmin = can(ctx, "os_compute_api:os-extended-server-attributes");
  const [addresses, faults, hostStatuses] = await Promise.all([
    loadAddresses(db, rows.map((r) => r.id)),
    loadFaults(db, rows),
    // host_status: admins only (Nova 2.16)
    isAdmin ? loadHostStatuses(db, rows.map((r) => r.host), opts.serviceDownTimeSec ?? 60) : Promise.resolve(new Map<string, HostStatus>()),
  ]);
  return rows.map((row) =>
    serverView(row, {
      publicUrl,
      isAdmin,
      addresses: addresses.get(row.id) ?? [],
      fault: faults.get(row.id) ?? null,
      ...(isAdmin ? { hostStatus: row.host ? (hostStatuses.get(row.host) ?? "") : "" } : {}),
    }),
  );
}

export async function renderServer(db: Db, publicUrl: string, ctx: RequestContext, id: string) {
  const row: InstanceRow | undefined = await db("instances").where({ id }).whereNot("vm_state", "deleted").first();
  if (!row || (!ctx.isAdmin && row.project_id !== ctx.projectId)) throw notFound(`Instance ${id} could not be found.`);
  const [server] = await renderRows(db, publicUrl, ctx, [row]);
  return server!;
}
