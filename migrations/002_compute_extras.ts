import type { Knex } from "knex";

// Keypairs, server groups, aggregates, quotas, flavor access (owned by the compute extensions work).
export async function up(_knex: Knex): Promise<void> {}

export async function down(_knex: Knex): Promise<void> {}
