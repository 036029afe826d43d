import type { Knex } from "knex";

const now = (knex: Knex) => knex.fn.now();

// Keypairs, server groups, aggregates, quotas, flavor access (owned by the compute extensions work).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("flavor_access", (t) => {
    t.string("flavor_id", 255).notNullable().references("flavors.id").onDelete("CASCADE");
    t.string("project_id", 255).notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.primary(["flavor_id", "project_id"]);
    t.index(["project_id"]);
  });

  await knex.schema.createTable("key_pairs", (t) => {
    t.bigIncrements("id");
    t.string("user_id", 255).notNullable();
    t.string("project_id", 255).notNullable();
    t.string("name", 255).notNullable();
    t.string("type", 16).notNullable().defaultTo("ssh");
    t.text("public_key").notNullable();
    t.string("fingerprint", 255).notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.unique(["user_id", "name"]);
  });

  await knex.schema.createTable("server_groups", (t) => {
    t.uuid("id").primary();
    t.string("name", 255).notNullable();
    t.string("project_id", 255).notNullable();
    t.string("user_id", 255).notNullable();
    // affinity, anti-affinity, soft-affinity, soft-anti-affinity
    t.string("policy", 32).notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.index(["project_id"]);
  });

  // A server is in at most one group; a deleted server no longer counts as a member.
  await knex.schema.createTable("server_group_members", (t) => {
    t.uuid("group_id").notNullable().references("server_groups.id").onDelete("CASCADE");
    t.uuid("instance_id").notNullable().unique().references("instances.id").onDelete("CASCADE");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.primary(["group_id", "instance_id"]);
  });

  await knex.schema.createTable("aggregates", (t) => {
    t.increments("id");
    t.uuid("uuid").notNullable().unique();
    t.string("name", 255).notNullable().unique();
    // Also shown in metadata as "availability_zone", as Nova does; kept here for queries.
    t.string("availability_zone", 255);
    t.jsonb("metadata").notNullable().defaultTo("{}");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("updated_at", { useTz: true });
  });

  await knex.schema.createTable("aggregate_hosts", (t) => {
    t.integer("aggregate_id").notNullable().references("aggregates.id").onDelete("CASCADE");
    t.string("host", 255).notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.primary(["aggregate_id", "host"]);
    t.index(["host"]);
  });

  // Per-project limits that differ from the defaults.
  await knex.schema.createTable("quotas", (t) => {
    t.string("project_id", 255).notNullable();
    t.string("resource", 64).notNullable();
    t.integer("hard_limit").notNullable();
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.primary(["project_id", "resource"]);
  });

  // One row per project, locked FOR UPDATE by every boot of that project so that the
  // usage count and the new instance row are decided together.
  await knex.schema.createTable("quota_locks", (t) => {
    t.string("project_id", 255).primary();
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ["quota_locks", "quotas", "aggregate_hosts", "aggregates", "server_group_members", "server_groups", "key_pairs", "flavor_access"]) {
    await knex.schema.dropTableIfExists(table);
  }
}
