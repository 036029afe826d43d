import type { Knex } from "knex";

// Several subnets per network (one IPv4 and IPv6 ones side by side), IPv6 address modes.
// The image cache needs no table: the agent keeps it on its own disk.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable("subnets", (t) => {
    t.dropUnique(["network_id"]);
    t.index(["network_id"]);
    t.string("ipv6_address_mode", 16);
    t.string("ipv6_ra_mode", 16);
    t.jsonb("host_routes").notNullable().defaultTo("[]");
  });
}

export async function down(knex: Knex): Promise<void> {
  // Keeps the first subnet of each network, as the one-subnet schema allows.
  await knex.raw(`DELETE FROM subnets s USING subnets o WHERE s.network_id = o.network_id AND (s.created_at, s.id) > (o.created_at, o.id)`);
  await knex.schema.alterTable("subnets", (t) => {
    t.dropIndex(["network_id"]);
    t.dropColumn("ipv6_address_mode");
    t.dropColumn("ipv6_ra_mode");
    t.dropColumn("host_routes");
    t.unique(["network_id"]);
  });
}
