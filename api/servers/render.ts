/** Renders servers from their rows: addresses and faults loaded in a fixed number of queries. */
import type { Db } from "../../common/db/knex.js";
import { notFound } from "../../common/errors.js";
import type { RequestContext } from "../context.js";
import { loadAddresses, loadFaults } from "./load.js";
import { serverView, type InstanceRow } from "./view.js";

export async function renderRows(db: Db, publicUrl: string, ctx: RequestContext, rows: InstanceRow[]) {
  const [addresses, faults] = await Promise.all([loadAddresses(db, rows.map((r) => r.id)), loadFaults(db, rows)]);
  return rows.map((row) =>
    serverView(row, { publicUrl, isAdmin: ctx.isAdmin, addresses: addresses.get(row.id) ?? [], fault: faults.get(row.id) ?? null }),
  );
}

export async function renderServer(db: Db, publicUrl: string, ctx: RequestContext, id: string) {
  const row: InstanceRow | undefined = await db("instances").where({ id }).whereNot("vm_state", "deleted").first();
  if (!row || (!ctx.isAdmin && row.project_id !== ctx.projectId)) throw notFound(`Instance ${id} could not be found.`);
  const [server] = await renderRows(db, publicUrl, ctx, [row]);
  return server!;
}
