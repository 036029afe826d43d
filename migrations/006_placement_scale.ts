import type { Knex } from "knex";

// What the scheduler's host-state view and the newer filters and weighers read:
// - resource_providers.changed_at, set by a trigger whenever a provider row changes (every
//   claim and release bumps its generation), so a scheduler re-reads only the providers
//   that changed since its last look instead of every host per request;
// - compute_services.cpu_arch for the image architecture filter, failed_builds for the
//   build-failure weigher (consecutive failed builds, reset by a successful one);
// - compute_services.changed_at, set by a trigger when anything the scheduler filters on
//   changes (status, forced down, zone, hypervisor, failed builds) but not by heartbeats;
// - scheduler_epochs.aggregates_changed_at, bumped by any write to aggregates or their
//   hosts, so the view reloads aggregate metadata only when it changed;
// - instances.scheduler_hints: the boot's same_host / different_host hints.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable("resource_providers", (t) => {
    t.timestamp("changed_at", { useTz: true }).notNullable().defaultTo(knex.raw("clock_timestamp()"));
    t.index(["changed_at"]);
  });
  await knex.raw(`
    CREATE FUNCTION cirrus_provider_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN NEW.changed_at := clock_timestamp(); RETURN NEW; END $$`);
  await knex.raw(`
    CREATE TRIGGER resource_providers_changed BEFORE UPDATE ON resource_providers
    FOR EACH ROW EXECUTE FUNCTION cirrus_provider_changed()`);
  // An inventory written without a generation bump (a hand-made host) still marks its provider.
  await knex.raw(`
    CREATE FUNCTION cirrus_inventory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE resource_providers SET changed_at = clock_timestamp()
       WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.provider_id ELSE NEW.provider_id END;
      RETURN NULL;
    END $$`);
  await knex.raw(`
    CREATE TRIGGER inventories_changed AFTER INSERT OR UPDATE OR DELETE ON inventories
    FOR EACH ROW EXECUTE FUNCTION cirrus_inventory_changed()`);
  await knex.schema.alterTable("compute_services", (t) => {
    t.string("cpu_arch", 32);
    t.integer("failed_builds").notNullable().defaultTo(0);
    t.timestamp("changed_at", { useTz: true }).notNullable().defaultTo(knex.raw("clock_timestamp()"));
    t.index(["changed_at"]);
  });
  await knex.raw(`
    CREATE FUNCTION cirrus_service_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF ROW(NEW.status, NEW.disabled_reason, NEW.forced_down, NEW.availability_zone, NEW.hypervisor_type,
             NEW.hypervisor_hostname, NEW.cpu_arch, NEW.failed_builds, NEW.host)
         IS DISTINCT FROM
         ROW(OLD.status, OLD.disabled_reason, OLD.forced_down, OLD.availability_zone, OLD.hypervisor_type,
             OLD.hypervisor_hostname, OLD.cpu_arch, OLD.failed_builds, OLD.host) THEN
        NEW.changed_at := clock_timestamp();
      END IF;
      RETURN NEW;
    END $$`);
  await knex.raw(`
    CREATE TRIGGER compute_services_changed BEFORE UPDATE ON compute_services
    FOR EACH ROW EXECUTE FUNCTION cirrus_service_changed()`);
  await knex.schema.createTable("scheduler_epochs", (t) => {
    t.integer("id").primary();
    t.timestamp("aggregates_changed_at", { useTz: true }).notNullable().defaultTo(knex.raw("clock_timestamp()"));
  });
  await knex("scheduler_epochs").insert({ id: 1 });
  await knex.raw(`
    CREATE FUNCTION cirrus_aggregates_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN UPDATE scheduler_epochs SET aggregates_changed_at = clock_timestamp() WHERE id = 1; RETURN NULL; END $$`);
  for (const table of ["aggregates", "aggregate_hosts"]) {
    await knex.raw(`
      CREATE TRIGGER ${table}_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${table}
      FOR EACH STATEMENT EXECUTE FUNCTION cirrus_aggregates_changed()`);
  }
  await knex.schema.alterTable("instances", (t) => {
    t.jsonb("scheduler_hints").notNullable().defaultTo("{}");
    t.index(["reservation_id"]); // a multi-create is placed in one pass
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable("instances", (t) => {
    t.dropIndex(["reservation_id"]);
    t.dropColumn("scheduler_hints");
  });
  for (const table of ["aggregates", "aggregate_hosts"]) await knex.raw(`DROP TRIGGER IF EXISTS ${table}_changed ON ${table}`);
  await knex.raw("DROP FUNCTION IF EXISTS cirrus_aggregates_changed()");
  await knex.schema.dropTable("scheduler_epochs");
  await knex.raw("DROP TRIGGER IF EXISTS compute_services_changed ON compute_services");
  await knex.raw("DROP FUNCTION IF EXISTS cirrus_service_changed()");
  await knex.schema.alterTable("compute_services", (t) => {
    t.dropColumn("changed_at");
    t.dropColumn("failed_builds");
    t.dropColumn("cpu_arch");
  });
  await knex.raw("DROP TRIGGER IF EXISTS inventories_changed ON inventories");
  await knex.raw("DROP FUNCTION IF EXISTS cirrus_inventory_changed()");
  await knex.raw("DROP TRIGGER IF EXISTS resource_providers_changed ON resource_providers");
  await knex.raw("DROP FUNCTION IF EXISTS cirrus_provider_changed()");
  await knex.schema.alterTable("resource_providers", (t) => t.dropColumn("changed_at"));
}
