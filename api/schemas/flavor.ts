import { Type, type Static } from "typebox";
import { Links } from "./common.js";

// Nova accepts integers or digit strings for the sizes of a flavor.
const Count = (min: number, description: string) =>
  Type.Union([Type.Integer({ minimum: min }), Type.String({ pattern: min > 0 ? "^0*[1-9][0-9]*$" : "^[0-9]+$" })], { description });

export const FlavorCreateBody = Type.Object(
  {
    flavor: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 255 }),
        id: Type.Optional(
          Type.Union([Type.String({ minLength: 1, maxLength: 255, pattern: "^(?! )[a-zA-Z0-9. _-]+(?<! )$" }), Type.Null()], {
            description: "null or absent: a UUID is generated",
          }),
        ),
        ram: Count(1, "MiB"),
        vcpus: Count(1, "virtual CPUs"),
        disk: Count(0, "GiB of root disk"),
        swap: Type.Optional(Type.Union([Count(0, "MiB"), Type.Literal("")])),
        "OS-FLV-EXT-DATA:ephemeral": Type.Optional(Count(0, "GiB")),
        rxtx_factor: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
        "os-flavor-access:is_public": Type.Optional(Type.Boolean()),
        description: Type.Optional(Type.Union([Type.String({ maxLength: 65535 }), Type.Null()])),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type FlavorCreateBody = Static<typeof FlavorCreateBody>;

export const FlavorSummary = Type.Object({ id: Type.String(), name: Type.String(), links: Links });

export const Flavor = Type.Object({
  id: Type.String(),
  name: Type.String(),
  ram: Type.Integer(),
  vcpus: Type.Integer(),
  disk: Type.Integer(),
  swap: Type.Union([Type.Integer(), Type.Literal("")], { description: '"" when the flavor has no swap (before 2.75)' }),
  "OS-FLV-EXT-DATA:ephemeral": Type.Integer(),
  "OS-FLV-DISABLED:disabled": Type.Boolean(),
  "os-flavor-access:is_public": Type.Boolean(),
  rxtx_factor: Type.Number(),
  links: Links,
});

export const FlavorListQuery = Type.Object({
  is_public: Type.Optional(Type.String({ description: "true, false or none (admin: none lists every flavor)" })),
  minRam: Type.Optional(Type.Integer({ minimum: 0 })),
  minDisk: Type.Optional(Type.Integer({ minimum: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 0 })),
  marker: Type.Optional(Type.String()),
});
