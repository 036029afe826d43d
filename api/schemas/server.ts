import { Type } from "typebox";
import { Links, Nullable } from "./common.js";

const NetworkRequest = Type.Object(
  {
    uuid: Type.Optional(Type.String({ format: "uuid" })),
    fixed_ip: Type.Optional(Type.Union([Type.String({ format: "ipv4" }), Type.String({ format: "ipv6" })])),
    port: Type.Optional(Nullable(Type.String({ format: "uuid" }))),
  },
  { additionalProperties: false },
);

export const ServerCreateBody = Type.Object(
  {
    server: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 255 }),
        flavorRef: Type.Union([Type.String({ minLength: 1 }), Type.Integer()]),
        imageRef: Type.Optional(Type.String()),
        networks: Type.Optional(
          Type.Union([Type.Literal("none"), Type.Literal("auto"), Type.Array(NetworkRequest)], {
            description: '"none", "auto", or a list of {uuid, fixed_ip}',
          }),
        ),
        metadata: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 255 }), Type.String({ maxLength: 255 }))),
        config_drive: Type.Optional(Type.Union([Type.Boolean(), Type.String()])),
        user_data: Type.Optional(Type.String({ maxLength: 65535, description: "base64" })),
        availability_zone: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
        key_name: Type.Optional(Type.String()),
        adminPass: Type.Optional(Type.String()),
        accessIPv4: Type.Optional(Type.String({ format: "ipv4" })),
        accessIPv6: Type.Optional(Type.String({ format: "ipv6" })),
        description: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
        min_count: Type.Optional(Type.Integer({ minimum: 1 })),
        max_count: Type.Optional(Type.Integer({ minimum: 1 })),
        return_reservation_id: Type.Optional(Type.Boolean()),
        security_groups: Type.Optional(Type.Array(Type.Object({ name: Type.String() }))),
        "OS-DCF:diskConfig": Type.Optional(Type.Union([Type.Literal("AUTO"), Type.Literal("MANUAL")])),
        block_device_mapping_v2: Type.Optional(Type.Array(Type.Record(Type.String(), Type.Unknown()))),
      },
      { additionalProperties: false },
    ),
    "os:scheduler_hints": Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    "OS-SCH-HNT:scheduler_hints": Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);

export const ServerCreated = Type.Object({
  server: Type.Object({
    id: Type.String(),
    links: Links,
    "OS-DCF:diskConfig": Type.String(),
    security_groups: Type.Array(Type.Object({ name: Type.String() })),
    adminPass: Type.String(),
  }),
});

const Address = Type.Object({
  addr: Type.String(),
  version: Type.Integer(),
  "OS-EXT-IPS:type": Type.String(),
  "OS-EXT-IPS-MAC:mac_addr": Type.String(),
});

const Fault = Type.Object({
  code: Type.Integer(),
  created: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.String()),
});

export const Server = Type.Object({
  id: Type.String(),
  name: Type.String(),
  status: Type.String({ description: "Derived from vm_state and task_state: BUILD, ACTIVE, ERROR, SHUTOFF, ..." }),
  tenant_id: Type.String(),
  user_id: Type.String(),
  metadata: Type.Record(Type.String(), Type.String()),
  hostId: Type.String(),
  image: Type.Union([Type.Object({ id: Type.String(), links: Links }), Type.Literal("")]),
  flavor: Type.Object({ id: Type.String(), links: Links }),
  created: Type.String(),
  updated: Type.String(),
  addresses: Type.Record(Type.String(), Type.Array(Address)),
  accessIPv4: Type.String(),
  accessIPv6: Type.String(),
  links: Links,
  "OS-DCF:diskConfig": Type.String(),
  progress: Type.Integer(),
  "OS-EXT-AZ:availability_zone": Type.String(),
  config_drive: Type.String(),
  key_name: Nullable(Type.String()),
  "OS-SRV-USG:launched_at": Nullable(Type.String()),
  "OS-SRV-USG:terminated_at": Nullable(Type.String()),
  "OS-EXT-STS:task_state": Nullable(Type.String()),
  "OS-EXT-STS:vm_state": Type.String(),
  "OS-EXT-STS:power_state": Type.Integer(),
  "OS-EXT-SRV-ATTR:host": Type.Optional(Nullable(Type.String())),
  "OS-EXT-SRV-ATTR:hypervisor_hostname": Type.Optional(Nullable(Type.String())),
  "OS-EXT-SRV-ATTR:instance_name": Type.Optional(Type.String()),
  host_status: Type.Optional(
    Type.Union([Type.Literal("UP"), Type.Literal("DOWN"), Type.Literal("MAINTENANCE"), Type.Literal("UNKNOWN"), Type.Literal("")], {
      description: "Admins only (Nova 2.16): the state of the server's compute host",
    }),
  ),
  "os-extended-volumes:volumes_attached": Type.Array(Type.Object({ id: Type.String() })),
  security_groups: Type.Optional(Type.Array(Type.Object({ name: Type.String() }))),
  fault: Type.Optional(Fault),
});

export const ServerSummary = Type.Object({ id: Type.String(), name: Type.String(), links: Links });

const OneOrMany = (description: string) => Type.Union([Type.String(), Type.Array(Type.String())], { description });

export const ServerListQuery = Type.Object({
  name: Type.Optional(Type.String({ description: "A regular expression matched against the name" })),
  status: Type.Optional(Type.String()),
  image: Type.Optional(Type.String({ description: "Image id" })),
  flavor: Type.Optional(Type.String({ description: "Flavor id" })),
  ip: Type.Optional(Type.String({ description: "A regular expression matched against the IPv4 addresses" })),
  ip6: Type.Optional(Type.String({ description: "A regular expression matched against the IPv6 addresses" })),
  "changes-since": Type.Optional(Type.String({ description: "ISO 8601 time; also lists servers deleted since then" })),
  tags: Type.Optional(Type.String({ description: "Comma-separated: servers with all of these tags" })),
  "tags-any": Type.Optional(Type.String({ description: "Comma-separated: servers with any of these tags" })),
  "not-tags": Type.Optional(Type.String({ description: "Comma-separated: servers without all of these tags" })),
  "not-tags-any": Type.Optional(Type.String({ description: "Comma-separated: servers with none of these tags" })),
  locked: Type.Optional(Type.String({ description: "true or false" })),
  reservation_id: Type.Optional(Type.String()),
  availability_zone: Type.Optional(Type.String()),
  host: Type.Optional(Type.String({ description: "Admin only; ignored for others" })),
  sort_key: Type.Optional(OneOrMany("Repeatable; default created_at")),
  sort_dir: Type.Optional(OneOrMany("asc or desc, repeatable; default desc")),
  limit: Type.Optional(Type.Integer({ minimum: 0 })),
  marker: Type.Optional(Type.String()),
  all_tenants: Type.Optional(Type.String({ description: "Admin only: servers of every project" })),
});

export const ServerUpdateBody = Type.Object(
  {
    server: Type.Object(
      {
        name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
        description: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
        accessIPv4: Type.Optional(Type.String({ format: "ipv4" })),
        accessIPv6: Type.Optional(Type.String({ format: "ipv6" })),
        "OS-DCF:diskConfig": Type.Optional(Type.Union([Type.Literal("AUTO"), Type.Literal("MANUAL")])),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
