import { describe, expect, it } from "vitest";
import { SHARED, bootJson, type BootRows } from "../../api/servers/boot-write.js";

const rows: BootRows = {
  ids: ["0b5c9d4e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"],
  names: ['web "1"'],
  requestId: "req-1",
  projectId: "p1",
  userId: "u1",
  nics: [],
  instance: {
    vm_state: "building",
    task_state: "scheduling",
    power_state: 0,
    description: 'a "quoted" \\ description',
    availability_zone: null,
    flavor: JSON.stringify({ id: "1", vcpus: 1, ram: 512, extra_specs: { "hw:cpu": "x\"y" } }),
    image_id: "7c0b5a8e-6d7e-4f0a-9d7a-1b2c3d4e5f60",
    image: JSON.stringify({ id: "7c0b5a8e-6d7e-4f0a-9d7a-1b2c3d4e5f60", properties: { os: "linux" } }),
    requested_networks: JSON.stringify([{ uuid: "n1", fixed_ip: null }]),
    metadata: JSON.stringify({ a: "1" }),
    config_drive: true,
    user_data: null,
    reservation_id: "r-1",
    access_ip_v4: "10.0.0.1",
    access_ip_v6: null,
    key_name: "k",
    scheduler_hints: "{}",
  },
};

describe("bootJson (the boot write's per-boot columns)", () => {
  it("has exactly the statement's shared columns, with the JSON columns as JSON and the rest as given", () => {
    const parsed = JSON.parse(bootJson(rows, 3)) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual(["boot", ...SHARED.map(([c]) => c)].sort());
    expect(parsed.boot).toBe(3);
    for (const [column, type] of SHARED) {
      const given = column === "project_id" ? rows.projectId : column === "user_id" ? rows.userId : rows.instance[column];
      expect(parsed[column], column).toEqual(type === "jsonb" ? JSON.parse(given as string) : given);
    }
  });
});
