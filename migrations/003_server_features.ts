import type { Knex } from "knex";

// Server locks, tags, and the bookkeeping of resize (old flavor, the vm_state to return
// to, the consumer id that holds the old flavor's allocation while a resize is verified).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable("instances", (t) => {
    t.boolean("locked").notNullable().defaultTo(false);
    t.text("locked_reason");
    t.string("locked_by", 16); // owner | admin, as Nova records it
    t.string("old_vm_state", 32);
    t.jsonb("old_flavor");
    t.uuid("migration_id");
  });
  await knex.schema.createTable("instance_tags", (t) => {
    t.uuid("instance_id").notNullable().references("instances.id").onDelete("CASCADE");
    t.string("tag", 60).notNullable();
    t.primary(["instance_id", "tag"]);
    t.index(["tag"]);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("instance_tags");
  await knex.schema.alterTable("instances", (t) => {
    t.dropColumns("locked", "locked_reason", "locked_by", "old_vm_state", "old_flavor", "migration_id");
  });
}
