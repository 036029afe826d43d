import type { Knex } from "knex";

// Server locks, tags, resize bookkeeping (owned by the server actions work).
export async function up(_knex: Knex): Promise<void> {}

export async function down(_knex: Knex): Promise<void> {}
