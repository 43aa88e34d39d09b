// Maps every thrown error to the envelope and the right status. Request-shape problems
// are 400 with one detail per problem; unexpected errors are 500 and logged, and their
// message is not sent (it may hold internals).
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { isDatabaseUnavailable } from "./db/unavailable.ts";
import { ApiError, type ErrorDetail } from "./errors.ts";
import { isRedisUnavailable, redisUnavailable } from "./redis.ts";

/** Fastify's own error codes that are the client's fault, and what we call them. */
const FASTIFY_CODES: Record<string, [number, ApiError["code"]]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, "payload_too_large"],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, "malformed_request"],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, "unsupported_media_type"],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, "malformed_request"],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, "malformed_request"],
};

/** Retry-After of a 503 while PostgreSQL does not answer (a pool reconnect is quick). */
const DB_RETRY_AFTER_S = 5;

/** Prisma known-request error codes that are the client's fault. */
const PRISMA_CODES: Record<string, [number, ApiError["code"], string]> = {
  P2002: [409, "conflict", "a record with the same unique value already exists"],
  P2025: [404, "not_found", "record not found"],
};

function validationDetails(err: FastifyError): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  for (const v of err.validation ?? []) {
    const params = v.params as { keys?: string[] } | undefined;
    // One detail per unknown key, pointing at the key itself.
    if (v.keyword === "unrecognized_keys" && params?.keys) {
      const base = v.instancePath === "/" ? "" : v.instancePath;
      for (const k of params.keys)
        out.push({ path: `${base}/${k}`, code: "unknown_field", message: `unknown field "${k}"` });
    } else {
      out.push({
        path: v.instancePath === "/" ? "" : v.instancePath,
        code: v.keyword,
        message: v.message ?? "invalid",
      });
    }
  }
  return out;
}

function toApiError(err: FastifyError & { code?: string }): ApiError | undefined {
  if (err instanceof ApiError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = err.validationContext ?? "request";
    return new ApiError(400, "invalid_request", `the ${where} does not match the schema`, validationDetails(err));
  }
  const code = err.code ?? "";
  const fastify = FASTIFY_CODES[code];
  if (fastify) return new ApiError(fastify[0], fastify[1], err.message);
  if (err instanceof SyntaxError && err.statusCode === 400)
    return new ApiError(400, "malformed_request", `malformed JSON: ${err.message}`);
  // Values PostgreSQL refuses as data (a date outside its range, a NUL byte in text):
  // the request's fault, though only the database could tell.
  const sqlState = (err as { meta?: { driverAdapterError?: { cause?: { originalCode?: string } } } }).meta
    ?.driverAdapterError?.cause?.originalCode;
  if (sqlState === "22008" || sqlState === "22007")
    return new ApiError(
      400,
      "invalid_request",
      "a date or time in the request is outside the range the database can store (years 1-9999)",
    );
  if (sqlState === "22021")
    return new ApiError(
      400,
      "invalid_request",
      "the request contains a byte sequence (such as NUL) the database cannot store",
    );
  const prisma = PRISMA_CODES[code];
  if (prisma && err.name === "PrismaClientKnownRequestError") return new ApiError(prisma[0], prisma[1], prisma[2]);
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return new ApiError(err.statusCode, err.statusCode === 429 ? "rate_limited" : "invalid_request", err.message);
  }
  return undefined;
}

export function handleError(err: FastifyError, req: FastifyRequest, reply: FastifyReply) {
  const api = toApiError(err);
  if (api) {
    if (api.status >= 500) req.log.error({ err }, "request failed");
    return reply.status(api.status).headers(api.headers).type("application/json").send(api.toJSON());
  }
  // Before the database check: both may carry socket errnos, and the message must name the right one.
  if (isRedisUnavailable(err)) {
    req.log.warn({ err: err.message }, "redis unavailable");
    const unavailable = redisUnavailable("this request");
    return reply.status(503).headers(unavailable.headers).type("application/json").send(unavailable.toJSON());
  }
  if (isDatabaseUnavailable(err)) {
    req.log.error({ err }, "database unavailable");
    const unavailable = new ApiError(503, "unavailable", "the database does not answer; retry later", [], {
      "retry-after": String(DB_RETRY_AFTER_S),
    });
    return reply.status(503).headers(unavailable.headers).type("application/json").send(unavailable.toJSON());
  }
  req.log.error({ err }, "unhandled error");
  return reply
    .status(500)
    .type("application/json")
    .send(new ApiError(500, "internal", "internal server error").toJSON());
}
