import { Type, type TSchema } from "typebox";

export const Link = Type.Object({ rel: Type.String(), href: Type.String(), type: Type.Optional(Type.String()) });
export const Links = Type.Array(Link);

/** Nova's error envelope: one key (badRequest, itemNotFound, ...) holding code and message. */
export const ErrorBody = Type.Record(
  Type.String(),
  Type.Object({ code: Type.Integer(), message: Type.String(), retryAfter: Type.Optional(Type.String()) }),
  { description: 'Nova error envelope, e.g. {"itemNotFound": {"code": 404, "message": "..."}}' },
);

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "badRequest: the request is malformed or names something that does not exist",
  401: "unauthorized: no valid token",
  403: "forbidden: the caller may not do this",
  404: "itemNotFound",
  409: "conflictingRequest: the resource is in a state that does not allow this",
  413: "overLimit: the request body is too large",
  415: "badMediaType: unsupported Content-Type",
  422: "unprocessableEntity: the Idempotency-Key was used with another request",
  503: "serviceUnavailable: a backing service (database, queue) is briefly unavailable; retry",
};

export function errors(...codes: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const code of [401, ...codes]) out[code] = { ...ErrorBody, description: ERROR_DESCRIPTIONS[code] ?? "error" };
  return out;
}

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const IdParams = Type.Object({ id: Type.String({ maxLength: 255 }) });

export const PaginationQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 0, description: "Page size; at most 1000 items are returned" })),
  marker: Type.Optional(Type.String({ description: "The id of the last item of the previous page" })),
};

/** A response without a body (202 or 204). */
export const NoBody = (description: string) => Type.Unsafe<undefined>({ description });
