/**
 * Request validation with two Ajv instances. Query strings and path parameters arrive
 * as text, so they are coerced to the schema's types; bodies are JSON and are taken as
 * sent (Nova refuses a number where it wants a string), and nothing is silently dropped.
 */
import { Ajv, type Options } from "ajv";
import addFormatsPkg from "ajv-formats";
import type { FastifySchemaCompiler } from "fastify";

const addFormats = addFormatsPkg as unknown as (ajv: Ajv) => Ajv;

function make(options: Options): Ajv {
  const ajv = new Ajv({ removeAdditional: false, useDefaults: true, allErrors: false, strict: false, ...options });
  return addFormats(ajv);
}

export function validatorCompiler(): FastifySchemaCompiler<unknown> {
  const coercing = make({ coerceTypes: true });
  const strict = make({ coerceTypes: false });
  return ({ schema, httpPart }) => (httpPart === "body" ? strict : coercing).compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
}
