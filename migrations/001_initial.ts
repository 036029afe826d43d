import type { Knex } from "knex";

const now = (knex: Knex) => knex.fn.now();

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("flavors", (t) => {
    t.string("id", 255).primary();
    t.string("name", 255).notNullable().unique();
    t.integer("vcpus").notNullable();
    t.integer("ram").notNullable(); // MiB
    t.integer("disk").notNullable(); // GiB
    t.integer("ephemeral").notNullable().defaultTo(0);
    t.integer("swap").notNullable().defaultTo(0);
    t.float("rxtx_factor").notNullable().defaultTo(1.0);
    t.boolean("is_public").notNullable().defaultTo(true);
    t.text("description");
    t.jsonb("extra_specs").notNullable().defaultTo("{}");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
  });

  await knex.schema.createTable("images", (t) => {
    t.uuid("id").primary();
    t.string("name", 255);
    t.string("status", 32).notNullable(); // queued, saving, active, killed, deleted
    t.string("disk_format", 32);
    t.string("container_format", 32);
    t.bigInteger("size");
    t.bigInteger("virtual_size");
    t.string("checksum", 32); // md5
    t.string("os_hash_algo", 64);
    t.text("os_hash_value");
    t.integer("min_disk").notNullable().defaultTo(0);
    t.integer("min_ram").notNullable().defaultTo(0);
    t.string("visibility", 16).notNullable().defaultTo("shared");
    t.boolean("protected").notNullable().defaultTo(false);
    t.string("owner", 255);
    t.jsonb("properties").notNullable().defaultTo("{}");
    t.jsonb("tags").notNullable().defaultTo("[]");
    // Where the bytes are: a path agents on this machine can read.
    t.text("location");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(now(knex));
  });

  await knex.schema.createTable("networks", (t) => {
    t.uuid("id").primary();
    t.string("name", 255).notNullable().defaultTo("");
    t.string("project_id", 255).notNullable();
    t.boolean("shared").notNullable().defaultTo(false);
    t.boolean("admin_state_up").notNullable().defaultTo(true);
    t.integer("mtu").notNullable().defaultTo(1500);
    t.string("network_type", 16).notNullable().defaultTo("flat");
    t.string("physical_network", 64);
    t.integer("segmentation_id");
    t.text("description").notNullable().defaultTo("");
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(now(knex));
  });

  await knex.schema.createTable("subnets", (t) => {
    t.uuid("id").primary();
    // One subnet per network for now.
    t.uuid("network_id").notNullable().unique().references("networks.id").onDelete("CASCADE");
    t.string("name", 255).notNullable().defaultTo("");
    t.string("project_id", 255).notNullable();
    t.integer("ip_version").notNullable();
    t.string("cidr", 64).notNullable();
    t.string("gateway_ip", 64);
    t.jsonb("allocation_pools").notNullable(); // [{start, end}]
    t.jsonb("dns_nameservers").notNullable().defaultTo("[]");
    t.boolean("enable_dhcp").notNullable().defaultTo(true);
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(now(knex));
  });

  await knex.schema.createTable("instances", (t) => {
    t.uuid("id").primary();
    // Source of the libvirt domain name instance-%08x.
    t.bigIncrements("seq", { primaryKey: false });
    t.string("name", 255).notNullable();
    t.text("description");
    t.string("project_id", 255).notNullable();
    t.string("user_id", 255).notNullable();
    t.string("vm_state", 32).notNullable();
    t.string("task_state", 32);
    t.integer("power_state").notNullable().defaultTo(0);
    t.string("host", 255);
    t.string("node", 255);
    t.string("availability_zone", 255);
    t.jsonb("flavor").notNullable(); // snapshot at boot time
    t.uuid("image_id");
    t.jsonb("image").notNullable(); // snapshot at boot time
    t.jsonb("requested_networks").notNullable();
    t.jsonb("metadata").notNullable().defaultTo("{}");
    t.boolean("config_drive").notNullable().defaultTo(false);
    t.text("user_data");
    t.string("key_name", 255);
    t.string("reservation_id", 32).notNullable();
    t.integer("launch_index").notNullable().defaultTo(0);
    t.string("access_ip_v4", 64);
    t.string("access_ip_v6", 64);
    t.integer("progress").notNullable().defaultTo(0);
    // Placement bookkeeping: hosts tried and alternates left for this build.
    t.integer("attempts").notNullable().defaultTo(0);
    t.jsonb("alternates").notNullable().defaultTo("[]");
    t.jsonb("tried_hosts").notNullable().defaultTo("[]");
    t.timestamp("launched_at", { useTz: true });
    t.timestamp("terminated_at", { useTz: true });
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("deleted_at", { useTz: true });
    t.index(["project_id", "created_at"]);
    t.index(["host"]);
  });

  await knex.schema.createTable("ports", (t) => {
    t.uuid("id").primary();
    t.uuid("network_id").notNullable().references("networks.id");
    t.string("project_id", 255).notNullable();
    t.string("name", 255).notNullable().defaultTo("");
    t.string("mac_address", 17).notNullable().unique();
    t.uuid("device_id"); // the instance
    t.string("device_owner", 255).notNullable().defaultTo("");
    t.integer("device_index"); // the NIC's position on the instance
    t.string("status", 16).notNullable().defaultTo("DOWN");
    t.boolean("admin_state_up").notNullable().defaultTo(true);
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.index(["device_id"]);
    t.index(["network_id"]);
  });

  // One row per fixed IP; the primary key is what makes two ports never share an address.
  await knex.schema.createTable("ip_allocations", (t) => {
    t.uuid("subnet_id").notNullable().references("subnets.id").onDelete("CASCADE");
    t.string("ip_address", 64).notNullable();
    t.uuid("port_id").notNullable().references("ports.id").onDelete("CASCADE");
    t.primary(["subnet_id", "ip_address"]);
    t.index(["port_id"]);
  });

  await knex.schema.createTable("instance_faults", (t) => {
    t.bigIncrements("id");
    t.uuid("instance_id").notNullable().references("instances.id");
    t.integer("code").notNullable();
    t.text("message").notNullable();
    t.text("details").notNullable().defaultTo("");
    t.string("host", 255);
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.index(["instance_id", "created_at"]);
  });

  await knex.schema.createTable("instance_actions", (t) => {
    t.bigIncrements("id");
    t.uuid("instance_id").notNullable().references("instances.id");
    t.string("action", 64).notNullable();
    t.string("request_id", 64).notNullable();
    t.string("project_id", 255).notNullable();
    t.string("user_id", 255).notNullable();
    t.text("message");
    t.timestamp("start_time", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("finish_time", { useTz: true });
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.unique(["instance_id", "request_id"]);
  });

  await knex.schema.createTable("instance_action_events", (t) => {
    t.bigIncrements("id");
    t.bigInteger("action_id").notNullable().references("instance_actions.id").onDelete("CASCADE");
    t.string("event", 64).notNullable();
    t.string("result", 16); // Success | Error, null while running
    t.text("traceback");
    t.text("details");
    t.string("host", 255);
    t.timestamp("start_time", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("finish_time", { useTz: true });
    t.index(["action_id"]);
  });

  await knex.schema.createTable("compute_services", (t) => {
    t.uuid("id").primary();
    t.string("host", 255).notNullable().unique();
    t.string("binary", 64).notNullable().defaultTo("nova-compute");
    t.string("status", 16).notNullable().defaultTo("enabled");
    t.text("disabled_reason");
    t.boolean("forced_down").notNullable().defaultTo(false);
    t.string("availability_zone", 255);
    t.string("hypervisor_type", 64).notNullable();
    t.bigInteger("hypervisor_version").notNullable();
    t.string("hypervisor_hostname", 255).notNullable();
    t.string("host_ip", 64).notNullable();
    t.string("libvirt_uri", 255).notNullable();
    t.timestamp("last_seen_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("started_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(now(knex));
  });

  await knex.schema.createTable("resource_providers", (t) => {
    t.uuid("id").primary();
    t.string("name", 255).notNullable().unique();
    t.uuid("compute_service_id").notNullable().unique().references("compute_services.id").onDelete("CASCADE");
    // Bumped by every change of this provider's allocations or inventory: the claim's compare-and-set.
    t.bigInteger("generation").notNullable().defaultTo(0);
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
  });

  await knex.schema.createTable("inventories", (t) => {
    t.uuid("provider_id").notNullable().references("resource_providers.id").onDelete("CASCADE");
    t.string("resource_class", 64).notNullable();
    t.integer("total").notNullable();
    t.integer("reserved").notNullable().defaultTo(0);
    t.integer("min_unit").notNullable().defaultTo(1);
    t.integer("max_unit").notNullable();
    t.integer("step_size").notNullable().defaultTo(1);
    t.float("allocation_ratio").notNullable().defaultTo(1.0);
    t.primary(["provider_id", "resource_class"]);
  });

  await knex.schema.createTable("allocations", (t) => {
    t.uuid("provider_id").notNullable().references("resource_providers.id").onDelete("CASCADE");
    t.uuid("consumer_id").notNullable(); // the instance
    t.string("resource_class", 64).notNullable();
    t.integer("used").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.primary(["consumer_id", "provider_id", "resource_class"]);
    t.index(["provider_id", "resource_class"]);
  });

  // Jobs that must follow a committed write; the relay publishes them to BullMQ.
  await knex.schema.createTable("outbox", (t) => {
    t.bigIncrements("id");
    t.string("queue", 255).notNullable();
    t.string("job_name", 64).notNullable();
    t.string("job_id", 255).notNullable();
    t.jsonb("payload").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable().defaultTo(now(knex));
    t.timestamp("published_at", { useTz: true });
    t.integer("attempts").notNullable().defaultTo(0);
    t.text("last_error");
  });
  await knex.raw("CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL");
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    "outbox", "allocations", "inventories", "resource_providers", "compute_services",
    "instance_action_events", "instance_actions", "instance_faults", "ip_allocations", "ports",
    "instances", "subnets", "networks", "images", "flavors",
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
