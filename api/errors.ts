/**
 * Every error leaves in Nova's envelope. Validation problems and malformed bodies are
 * 400 badRequest; only a bug is a 500 computeFault, and its detail stays in the log.
 */
import type { FastifyError, FastifyInstance } from "fastify";
import { NovaError, errorBody } from "../common/errors.js";
import { isUnavailable } from "../common/db/unavailable.js";

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

function describeValidation(err: FastifyError): string {
  const first = (err.validation?.[0] ?? {}) as ValidationIssue;
  const where = (err.validationContext ?? "body") + (first.instancePath ?? "").replace(/\//g, ".");
  const extra = first.params?.additionalProperty;
  if (extra) return `Invalid input for field/attribute ${where}. Additional properties are not allowed ('${String(extra)}' was unexpected)`;
  const missing = first.params?.missingProperty;
  if (missing) return `Invalid input for field/attribute ${where}. '${String(missing)}' is a required property`;
  return `Invalid input for field/attribute ${where}. Value: ${first.message ?? "invalid"}`;
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof NovaError) {
      return reply.status(err.statusCode).send(err.body());
    }
    // Postgres data exceptions (SQLSTATE class 22: a NUL byte in a name, a number out of range,
    // text that is no timestamp) mean the input was bad, not the server.
    const sqlState = (err as { code?: unknown }).code;
    if (typeof sqlState === "string" && /^22[0-9A-Z]{3}$/.test(sqlState)) {
      return reply.status(400).send(errorBody(400, "Invalid input: a value cannot be stored or compared as given (for example a NUL character)."));
    }
    if (err.validation) {
      return reply.status(400).send(errorBody(400, describeValidation(err)));
    }
    const status = err.statusCode ?? 500;
    if (err.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
      return reply.status(415).send(errorBody(415, `Unsupported Content-Type: ${req.headers["content-type"] ?? "none"}`));
    }
    if (err.code === "FST_ERR_CTP_EMPTY_JSON_BODY" || err.code === "FST_ERR_CTP_INVALID_JSON_BODY" || err instanceof SyntaxError) {
      return reply.status(400).send(errorBody(400, "Malformed request body"));
    }
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return reply.status(413).send(errorBody(413, "Request is too large."));
    }
    if (status >= 400 && status < 500) {
      return reply.status(status).send(errorBody(status, err.message));
    }
    // Postgres restarting or unreachable: a quick 503 the client can retry, not a 500 or a hang.
    if (isUnavailable(err)) {
      req.log.warn({ err: String(err) }, "backing service unavailable");
      return reply.status(503).header("retry-after", "1").send(errorBody(503, "The service is temporarily unavailable (database unreachable); retry shortly."));
    }
    req.log.error({ err }, "unexpected error");
    return reply
      .status(500)
      .send(errorBody(500, "Unexpected API Error. Please report this at the Cirrus issue tracker and attach the request id."));
  });

  app.setNotFoundHandler((_req, reply) => {
    return reply.status(404).send(errorBody(404, "The resource could not be found."));
  });
}
