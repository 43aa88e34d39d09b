// Every error the API sends has one shape: { error: { code, message, details } }.
// Handlers throw ApiError; the error handler in app.ts turns everything else into it.
import { z } from "zod";

export const ErrorDetail = z.object({
  path: z.string().describe("JSON pointer into the request part (body, query) or policy document"),
  code: z.string(),
  message: z.string(),
});
export type ErrorDetail = z.infer<typeof ErrorDetail>;

export const ErrorEnvelope = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.array(ErrorDetail) }),
});
export type ErrorEnvelope = z.infer<typeof ErrorEnvelope>;
z.globalRegistry.add(ErrorEnvelope, { id: "Error" });

export type ErrorCode =
  | "malformed_request"
  | "invalid_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  | "unsupported_media_type"
  | "invalid_policy"
  /** An Idempotency-Key sent again with a different request. */
  | "idempotency_key_reused"
  | "rate_limited"
  | "busy"
  | "unavailable"
  /** The server lacks a capability the request needs (e.g. CAP_NET_ADMIN for traces). */
  | "not_capable"
  /** The host's agent has no stream up (dynamic sets are read from its kernel, live). */
  | "host_offline"
  /**
   * The host's agent is too old for the request, or (deploys) its kernel lacks a feature the
   * version needs (the detail's code names it: queue_unsupported).
   */
  | "unsupported"
  /** The host's agent did not answer in time. */
  | "agent_timeout"
  /** Country data refused whole (a bad line, named in the message): nothing stored. */
  | "invalid_geoip_data"
  /** Country data that would leave countries a deployed version tests with no ranges (allowEmpty overrides). */
  | "geoip_would_empty"
  /** The country data package is not installed beside the server. */
  | "geoip_package_missing"
  | "internal";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetail[] = [],
    /** Response headers that go with this error (e.g. Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }

  toJSON(): ErrorEnvelope {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export const notFound = (what: string) => new ApiError(404, "not_found", `${what} not found`);
export const conflict = (message: string, details: ErrorDetail[] = []) =>
  new ApiError(409, "conflict", message, details);

/** What each error status means, for the OpenAPI document's response descriptions. */
const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "The request is invalid: `error.details` names every problem (path, code, message).",
  401: "No bearer token, or an unknown or revoked one.",
  403: "The token's role may not do this (the message names the role needed).",
  404: "A resource named in the path or query does not exist.",
  409: "Conflicts with the current state (the message says which).",
  413: "The body is larger than the configured limit, a YAML body expands past the alias limit, or its work ran past the time limit.",
  415: "The body's content type is not accepted here.",
  422: "The policy document is invalid (`invalid_policy`: `error.details` lists every error with its path), or an Idempotency-Key was reused for a different request (`idempotency_key_reused`).",
  429: "Rate limit exceeded; retry after the time given in the message.",
  504: "The host's agent did not answer in time (`agent_timeout`).",
  503: "A dependency (PostgreSQL or Redis) does not answer, or the queue of expensive work is full (`busy`, with Retry-After).",
};

/** Response schemas for the error statuses a route can answer, for the OpenAPI document. */
export function errorResponses(
  ...statuses: number[]
): Record<number, { description: string; content: { "application/json": { schema: typeof ErrorEnvelope } } }> {
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      { description: ERROR_DESCRIPTIONS[s] ?? `HTTP ${s}`, content: { "application/json": { schema: ErrorEnvelope } } },
    ]),
  );
}
