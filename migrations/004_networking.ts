import type { Knex } from "knex";

// IPv6 subnets, several subnets per network, image cache bookkeeping (owned by the images and networks work).
export async function up(_knex: Knex): Promise<void> {}

export async function down(_knex: Knex): Promise<void> {}
