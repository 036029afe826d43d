import { Type } from "typebox";
import { Nullable } from "./common.js";

export const NetworkCreateBody = Type.Object(
  {
    network: Type.Object(
      {
        name: Type.Optional(Type.String({ maxLength: 255 })),
        description: Type.Optional(Type.String({ maxLength: 255 })),
        shared: Type.Optional(Type.Boolean()),
        admin_state_up: Type.Optional(Type.Boolean()),
        mtu: Type.Optional(Type.Integer({ minimum: 68, maximum: 9216 })),
        "provider:network_type": Type.Optional(Type.Union([Type.Literal("flat"), Type.Literal("vlan")])),
        "provider:physical_network": Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
        "provider:segmentation_id": Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 4094 }))),
        tenant_id: Type.Optional(Type.String()),
        project_id: Type.Optional(Type.String()),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

export const Network = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  tenant_id: Type.String(),
  project_id: Type.String(),
  status: Type.String(),
  subnets: Type.Array(Type.String()),
  shared: Type.Boolean(),
  admin_state_up: Type.Boolean(),
  mtu: Type.Integer(),
  "router:external": Type.Boolean(),
  "provider:network_type": Type.String(),
  "provider:physical_network": Nullable(Type.String()),
  "provider:segmentation_id": Nullable(Type.Integer()),
  created_at: Type.String(),
  updated_at: Type.String(),
});

const AllocationPool = Type.Object({ start: Type.String(), end: Type.String() });
const Ipv6Mode = Type.Union([Type.Literal("slaac"), Type.Literal("dhcpv6-stateful"), Type.Literal("dhcpv6-stateless")]);
const HostRoute = Type.Object({ destination: Type.String(), nexthop: Type.String() });

export const SubnetCreateBody = Type.Object(
  {
    subnet: Type.Object(
      {
        network_id: Type.String(),
        cidr: Type.String(),
        ip_version: Type.Optional(Type.Union([Type.Literal(4), Type.Literal(6)])),
        name: Type.Optional(Type.String({ maxLength: 255 })),
        gateway_ip: Type.Optional(Nullable(Type.String())),
        allocation_pools: Type.Optional(Type.Array(AllocationPool)),
        dns_nameservers: Type.Optional(Type.Array(Type.String(), { maxItems: 5 })),
        enable_dhcp: Type.Optional(Type.Boolean()),
        ipv6_address_mode: Type.Optional(Ipv6Mode),
        ipv6_ra_mode: Type.Optional(Ipv6Mode),
        tenant_id: Type.Optional(Type.String()),
        project_id: Type.Optional(Type.String()),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

export const Subnet = Type.Object({
  id: Type.String(),
  name: Type.String(),
  network_id: Type.String(),
  tenant_id: Type.String(),
  project_id: Type.String(),
  ip_version: Type.Integer(),
  cidr: Type.String(),
  gateway_ip: Nullable(Type.String()),
  allocation_pools: Type.Array(AllocationPool),
  dns_nameservers: Type.Array(Type.String()),
  host_routes: Type.Array(HostRoute),
  enable_dhcp: Type.Boolean(),
  ipv6_address_mode: Nullable(Type.String()),
  ipv6_ra_mode: Nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
});

export const Port = Type.Object({
  id: Type.String(),
  name: Type.String(),
  network_id: Type.String(),
  tenant_id: Type.String(),
  project_id: Type.String(),
  mac_address: Type.String(),
  fixed_ips: Type.Array(Type.Object({ subnet_id: Type.String(), ip_address: Type.String() })),
  device_id: Type.String(),
  device_owner: Type.String(),
  status: Type.String(),
  admin_state_up: Type.Boolean(),
  created_at: Type.String(),
  updated_at: Type.String(),
});

export const NameIdQuery = Type.Object({
  name: Type.Optional(Type.String()),
  id: Type.Optional(Type.String()),
});

export const PortListQuery = Type.Object({
  device_id: Type.Optional(Type.String()),
  network_id: Type.Optional(Type.String()),
});
