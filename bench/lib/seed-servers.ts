/**
 * Seeds many ACTIVE servers in bulk SQL for the list benchmarks (B3), copied from rows a
 * real boot wrote: one server is booted through the API, and its instance, port, fixed
 * IP and instance action rows are the template. Each copy gets its own id, name, MAC,
 * address and creation time, and looks as the conductor leaves a built server: ACTIVE,
 * running, on one of `hosts` compute hosts (which get compute service rows), launched.
 * Allocations are not seeded: no list or show reads them.
 */
import type { Knex } from "knex";

export interface SeedTemplate {
  instanceId: string;
  subnetId: string;
  /** The subnet's first address: copy n gets this plus its seq. */
  baseAddress: string;
}

export async function seedComputeHosts(db: Knex, hosts: number): Promise<void> {
  await db.raw(
    `INSERT INTO compute_services (id, host, hypervisor_type, hypervisor_version, hypervisor_hostname, host_ip, libvirt_uri)
     SELECT gen_random_uuid(), 'bench-host-' || n, 'QEMU', 8002000, 'bench-host-' || n, '192.168.0.' || (n % 250), 'test:///default'
       FROM generate_series(0, ? - 1) AS n
     ON CONFLICT (host) DO NOTHING`,
    [hosts],
  );
}

/** Adds `count` servers in batches; creation times go back from now, 10 ms apart. */
export async function seedServers(db: Knex, t: SeedTemplate, count: number, opts: { hosts: number; batch?: number }): Promise<void> {
  const batch = opts.batch ?? 10_000;
  const [{ n: existing }] = (await db("instances").count<{ n: number }[]>("* as n")) as [{ n: number }];
  for (let done = 0; done < count; done += batch) {
    const size = Math.min(batch, count - done);
    const offset = existing + done;
    await db.transaction(async (trx) => {
      await trx.raw(
        `WITH tpl AS (SELECT * FROM instances WHERE id = :instance),
         inst AS (
           INSERT INTO instances (id, name, description, project_id, user_id, vm_state, task_state, power_state, host, node,
                                  availability_zone, flavor, image_id, image, requested_networks, metadata, config_drive, user_data,
                                  key_name, reservation_id, launch_index, progress, attempts, alternates, tried_hosts,
                                  launched_at, created_at, updated_at)
           SELECT gen_random_uuid(), 'bench-' || (:offset + g.n), tpl.description, tpl.project_id, tpl.user_id, 'active', NULL, 1,
                  'bench-host-' || ((:offset + g.n) % :hosts), 'bench-host-' || ((:offset + g.n) % :hosts),
                  tpl.availability_zone, tpl.flavor, tpl.image_id, tpl.image, tpl.requested_networks,
                  tpl.metadata || jsonb_build_object('index', (:offset + g.n)::text), tpl.config_drive, tpl.user_data,
                  tpl.key_name, 'r-' || substr(md5((:offset + g.n)::text), 1, 8), 0, 0, 1,
                  jsonb_build_array('bench-host-' || ((:offset + g.n + 1) % :hosts), 'bench-host-' || ((:offset + g.n + 2) % :hosts)), '[]',
                  c.at + interval '30 seconds', c.at, c.at + interval '30 seconds'
             FROM tpl, generate_series(1, :size) AS g(n),
                  LATERAL (SELECT now() - ((:offset + g.n) * interval '10 milliseconds') - interval '1 day' AS at) c
           RETURNING id, seq, project_id, created_at),
         port AS (
           INSERT INTO ports (id, network_id, project_id, name, mac_address, device_id, device_owner, device_index, status, created_at, updated_at)
           SELECT gen_random_uuid(), p.network_id, inst.project_id, '', 'fa:16:3f:' || lpad(to_hex((inst.seq >> 16) & 255), 2, '0') || ':' ||
                  lpad(to_hex((inst.seq >> 8) & 255), 2, '0') || ':' || lpad(to_hex(inst.seq & 255), 2, '0'),
                  inst.id, p.device_owner, 0, 'ACTIVE', inst.created_at, inst.created_at
             FROM inst, (SELECT * FROM ports WHERE device_id = :instance LIMIT 1) p
           RETURNING id, device_id, mac_address),
         addr AS (
           INSERT INTO ip_allocations (subnet_id, ip_address, port_id)
           SELECT :subnet, host(:base::inet + 16 + inst.seq), port.id FROM port JOIN inst ON inst.id = port.device_id
           RETURNING port_id)
         INSERT INTO instance_actions (instance_id, action, request_id, project_id, user_id, start_time, finish_time, updated_at)
         SELECT inst.id, 'create', 'req-' || gen_random_uuid(), inst.project_id, 'admin', inst.created_at, inst.created_at + interval '30 seconds',
                inst.created_at + interval '30 seconds'
           FROM inst`,
        { instance: t.instanceId, subnet: t.subnetId, base: t.baseAddress, offset, size, hosts: opts.hosts },
      );
    });
  }
  await db.raw("ANALYZE instances, ports, ip_allocations, networks, instance_actions, compute_services");
}
