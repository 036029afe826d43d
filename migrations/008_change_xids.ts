import type { Knex } from "knex";

// The transaction that last changed a provider or a service (what the filters read of it),
// beside migration 006's changed_at: the host-state view reads the rows changed since the
// oldest transaction still running at its previous read (pg_snapshot_xmin), which the
// same statement that reads the changes can return. With timestamps, that mark had to be
// read in a statement of its own before each refresh (scheduler/host-state-view.ts).
const providerChanged = (stamp: string) => `
  CREATE OR REPLACE FUNCTION cirrus_provider_changed() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN ${stamp} RETURN NEW; END $$`;

const SERVICE_FIELDS = `NEW.status, NEW.disabled_reason, NEW.forced_down, NEW.availability_zone, NEW.hypervisor_type,
             NEW.hypervisor_hostname, NEW.cpu_arch, NEW.failed_builds, NEW.host`;

const serviceChanged = (stamp: string) => `
  CREATE OR REPLACE FUNCTION cirrus_service_changed() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF ROW(${SERVICE_FIELDS}) IS DISTINCT FROM ROW(${SERVICE_FIELDS.replaceAll("NEW.", "OLD.")}) THEN
      ${stamp}
    END IF;
    RETURN NEW;
  END $$`;

// What the triggers stamp: migration 006's time alone (down), and the transaction too (up).
const STAMP_TIME = "NEW.changed_at := clock_timestamp();";
const STAMP_BOTH = `${STAMP_TIME} NEW.changed_xid := pg_current_xact_id();`;

export async function up(knex: Knex): Promise<void> {
  for (const table of ["resource_providers", "compute_services"]) {
    await knex.raw(`ALTER TABLE ${table} ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id()`);
    await knex.raw(`CREATE INDEX ${table}_changed_xid_index ON ${table} (changed_xid)`);
  }
  await knex.raw(providerChanged(STAMP_BOTH));
  await knex.raw(serviceChanged(STAMP_BOTH));
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(providerChanged(STAMP_TIME));
  await knex.raw(serviceChanged(STAMP_TIME));
  for (const table of ["resource_providers", "compute_services"]) await knex.raw(`ALTER TABLE ${table} DROP COLUMN changed_xid`);
}
