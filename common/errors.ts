/**
 * Nova's error envelope: {"<faultName>": {"code": <status>, "message": "..."}}.
 * Anything thrown as a NovaError reaches the client with its status and message;
 * anything else is a bug and becomes a computeFault 500.
 */
const FAULT_NAMES: Record<number, string> = {
  400: "badRequest",
  401: "unauthorized",
  403: "forbidden",
  404: "itemNotFound",
  405: "badMethod",
  409: "conflictingRequest",
  413: "overLimit",
  415: "badMediaType",
  422: "unprocessableEntity",
  429: "overLimit",
  501: "notImplemented",
  503: "serviceUnavailable",
};

export function faultName(status: number): string {
  return FAULT_NAMES[status] ?? "computeFault";
}

export class NovaError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = "NovaError";
  }

  body(): Record<string, { code: number; message: string }> {
    return errorBody(this.statusCode, this.message);
  }
}

export function errorBody(status: number, message: string): Record<string, { code: number; message: string }> {
  return { [faultName(status)]: { code: status, message } };
}

export const badRequest = (message: string) => new NovaError(400, message);
export const forbidden = (message: string) => new NovaError(403, message);
export const notFound = (message: string) => new NovaError(404, message);
export const conflict = (message: string) => new NovaError(409, message);
