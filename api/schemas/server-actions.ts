import { Type } from "typebox";

const NullOrEmpty = Type.Union([Type.Null(), Type.Object({}, { additionalProperties: false })]);
const Metadata = Type.Record(Type.String({ minLength: 1, maxLength: 255 }), Type.String({ maxLength: 255 }));

/** Exactly one action per request, as Nova's action dispatcher takes it. */
export const ServerActionBody = Type.Object(
  {
    "os-start": Type.Optional(NullOrEmpty),
    "os-stop": Type.Optional(NullOrEmpty),
    reboot: Type.Optional(
      Type.Object({ type: Type.Union([Type.Literal("SOFT"), Type.Literal("HARD"), Type.Literal("soft"), Type.Literal("hard")]) }, { additionalProperties: false }),
    ),
    pause: Type.Optional(NullOrEmpty),
    unpause: Type.Optional(NullOrEmpty),
    suspend: Type.Optional(NullOrEmpty),
    resume: Type.Optional(NullOrEmpty),
    lock: Type.Optional(
      Type.Union([Type.Null(), Type.Object({ locked_reason: Type.Optional(Type.String({ maxLength: 255 })) }, { additionalProperties: false })]),
    ),
    unlock: Type.Optional(NullOrEmpty),
    rebuild: Type.Optional(
      Type.Object(
        {
          imageRef: Type.String({ minLength: 1 }),
          name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
          adminPass: Type.Optional(Type.String()),
          metadata: Type.Optional(Metadata),
          preserve_ephemeral: Type.Optional(Type.Boolean()),
          accessIPv4: Type.Optional(Type.String({ format: "ipv4" })),
          accessIPv6: Type.Optional(Type.String({ format: "ipv6" })),
          "OS-DCF:diskConfig": Type.Optional(Type.Union([Type.Literal("AUTO"), Type.Literal("MANUAL")])),
          description: Type.Optional(Type.Union([Type.String({ maxLength: 255 }), Type.Null()])),
        },
        { additionalProperties: false },
      ),
    ),
    resize: Type.Optional(
      Type.Object(
        {
          flavorRef: Type.Union([Type.String({ minLength: 1 }), Type.Integer()]),
          "OS-DCF:diskConfig": Type.Optional(Type.Union([Type.Literal("AUTO"), Type.Literal("MANUAL")])),
        },
        { additionalProperties: false },
      ),
    ),
    confirmResize: Type.Optional(NullOrEmpty),
    revertResize: Type.Optional(NullOrEmpty),
    createImage: Type.Optional(
      Type.Object({ name: Type.String({ minLength: 1, maxLength: 255 }), metadata: Type.Optional(Metadata) }, { additionalProperties: false }),
    ),
    "os-getConsoleOutput": Type.Optional(
      Type.Union([
        Type.Null(),
        Type.Object(
          { length: Type.Optional(Type.Union([Type.Integer({ minimum: -1 }), Type.String({ pattern: "^-?[0-9]+$" }), Type.Null()])) },
          { additionalProperties: false },
        ),
      ]),
    ),
  },
  { additionalProperties: false, minProperties: 1, maxProperties: 1 },
);
