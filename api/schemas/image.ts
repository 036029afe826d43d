import { Type } from "typebox";
import { Nullable } from "./common.js";

const RESERVED = [
  "id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo", "os_hash_value", "owner", "size",
  "virtual_size", "min_ram", "min_disk", "disk_format", "container_format", "created_at", "updated_at", "tags",
  "self", "file", "schema", "location", "locations", "direct_url",
];
export const RESERVED_IMAGE_KEYS = new Set(RESERVED);

export const ImageCreateBody = Type.Object(
  {
    id: Type.Optional(Type.String({ format: "uuid" })),
    name: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
    disk_format: Type.Optional(Nullable(Type.Union([Type.Literal("qcow2"), Type.Literal("raw"), Type.Literal("iso")]))),
    container_format: Type.Optional(Nullable(Type.Union([Type.Literal("bare"), Type.Literal("ovf")]))),
    visibility: Type.Optional(
      Type.Union([Type.Literal("public"), Type.Literal("private"), Type.Literal("shared"), Type.Literal("community")]),
    ),
    protected: Type.Optional(Type.Boolean()),
    min_disk: Type.Optional(Type.Integer({ minimum: 0 })),
    min_ram: Type.Optional(Type.Integer({ minimum: 0 })),
    tags: Type.Optional(Type.Array(Type.String({ maxLength: 255 }))),
  },
  {
    additionalProperties: Type.String({ maxLength: 65535 }),
    description: "Any other key is an image property (string value), e.g. hw_disk_bus, os_type.",
  },
);

export const Image = Type.Object(
  {
    id: Type.String(),
    name: Nullable(Type.String()),
    status: Type.String(),
    visibility: Type.String(),
    protected: Type.Boolean(),
    checksum: Nullable(Type.String()),
    os_hash_algo: Nullable(Type.String()),
    os_hash_value: Nullable(Type.String()),
    owner: Nullable(Type.String()),
    size: Nullable(Type.Integer()),
    virtual_size: Nullable(Type.Integer()),
    min_ram: Type.Integer(),
    min_disk: Type.Integer(),
    disk_format: Nullable(Type.String()),
    container_format: Nullable(Type.String()),
    created_at: Type.String(),
    updated_at: Type.String(),
    tags: Type.Array(Type.String()),
    self: Type.String(),
    file: Type.String(),
    schema: Type.String(),
  },
  { additionalProperties: Type.String() },
);

export const ImageListQuery = Type.Object({
  name: Type.Optional(Type.String()),
  status: Type.Optional(Type.String()),
  visibility: Type.Optional(Type.String()),
  limit: Type.Optional(Type.Integer({ minimum: 0 })),
  marker: Type.Optional(Type.String()),
});
