import type { Knex } from "knex";

// Idempotency keys (one per project and key, stored in the transaction of the work it
// guards) and indexes for the periodic recovery sweeps.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("idempotency_keys", (t) => {
    t.string("project_id", 255).notNullable();
    t.string("key", 255).notNullable();
    /** sha256 of method, path and the canonical JSON body. */
    t.string("fingerprint", 64).notNullable();
    t.integer("status").notNullable();
    t.jsonb("body");
    t.jsonb("headers").notNullable().defaultTo("{}");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(["project_id", "key"]);
    t.index(["created_at"]);
  });
  await knex.raw("CREATE INDEX instances_in_flight_idx ON instances (task_state, updated_at) WHERE task_state IS NOT NULL");
  await knex.raw("CREATE INDEX outbox_job_id_idx ON outbox (job_id)");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP INDEX IF EXISTS outbox_job_id_idx");
  await knex.raw("DROP INDEX IF EXISTS instances_in_flight_idx");
  await knex.schema.dropTable("idempotency_keys");
}
