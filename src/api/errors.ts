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
  | "rate_limited"
  | "internal";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
    this.name = "ApiError";
  }

  toJSON(): ErrorEnvelope {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export const notFound = (what: string) => new ApiError(404, "not_found", `${what} not found`);
export const conflict = (message: string, details: ErrorDetail[] = []) => new ApiError(409, "conflict", message, details);

/** Response schemas for the error statuses a route can answer, for the OpenAPI document. */
export function errorResponses(...statuses: number[]): Record<number, typeof ErrorEnvelope> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorEnvelope]));
}
