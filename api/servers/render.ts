/** Renders servers from their rows (serverViewColumns): faults and host states loaded in a fixed number of queries. */
import type { Db } from "../../common/db/knex.js";
import { notFound } from "../../common/errors.js";
import type { RequestContext } from "../context.js";
import { loadFaults, loadHostStatuses, serverViewColumns, type ServerPageRow } from "./load.js";
import { hostIdCache, serverView, type HostStatus } from "./view.js";
import { can } from "../policy.js";

export async function renderRows(db: Db, publicUrl: string, ctx: RequestContext, rows: ServerPageRow[], opts: { serviceDownTimeSec?: number } = {}) {
  const isAdmin = can(ctx, "os_compute_api:os-extended-server-attributes");
  const [faults, hostStatuses] = await Promise.all([
    loadFaults(db, rows),
    // host_status: admins only (Nova 2.16)
    isAdmin ? loadHostStatuses(db, rows.map((r) => r.host), opts.serviceDownTimeSec ?? 60) : Promise.resolve(new Map<string, HostStatus>()),
  ]);
  const hostId = hostIdCache();
  return rows.map((row) =>
    serverView(row, {
      publicUrl,
      isAdmin,
      hostId,
      addresses: row.addresses,
      fault: faults.get(row.id) ?? null,
      ...(isAdmin ? { hostStatus: row.host ? (hostStatuses.get(row.host) ?? "") : "" } : {}),
    }),
  );
}

export async function renderServer(db: Db, publicUrl: string, ctx: RequestContext, id: string) {
  const row: ServerPageRow | undefined = await db("instances").where({ id }).whereNot("vm_state", "deleted").first(serverViewColumns(db));
  if (!row || (!ctx.isAdmin && row.project_id !== ctx.projectId)) throw notFound(`Instance ${id} could not be found.`);
  const [server] = await renderRows(db, publicUrl, ctx, [row]);
  return server!;
}
