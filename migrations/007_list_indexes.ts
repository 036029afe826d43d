import type { Knex } from "knex";

// Indexes for the hot paths measured in docs/benchmarks.md (B1, B3):
// - live servers in the list's default order (created_at desc, id desc, as
//   api/servers/sort.ts writes it, NULLS LAST included, or the planner cannot use them), per
//   project and across projects (all_tenants): a page is an index range, not a sort of
//   every server;
// - ip_allocations by (subnet, address as inet): a boot finds the address after the
//   highest one in use with one index probe (api/ports.ts), not a walk over the pool.
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    `CREATE INDEX instances_live_project_order_idx ON instances (project_id, created_at DESC NULLS LAST, id DESC NULLS LAST)
     WHERE vm_state <> 'deleted'`,
  );
  await knex.raw("CREATE INDEX instances_live_order_idx ON instances (created_at DESC NULLS LAST, id DESC NULLS LAST) WHERE vm_state <> 'deleted'");
  await knex.raw("CREATE INDEX ip_allocations_subnet_inet_idx ON ip_allocations (subnet_id, (ip_address::inet))");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP INDEX IF EXISTS ip_allocations_subnet_inet_idx");
  await knex.raw("DROP INDEX IF EXISTS instances_live_order_idx");
  await knex.raw("DROP INDEX IF EXISTS instances_live_project_order_idx");
}
