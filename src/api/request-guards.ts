// Input PostgreSQL cannot store or compare, refused as the client's mistake (400 with the
// path) before a handler runs: a NUL byte in a query or path value (PostgreSQL text has no
// NUL; the driver fails the whole query with a 500 otherwise).
import type { FastifyRequest } from "fastify";
import { ApiError, type ErrorDetail } from "./errors.ts";

function nulDetails(part: unknown, where: string): ErrorDetail[] {
  if (!part || typeof part !== "object") return [];
  const out: ErrorDetail[] = [];
  for (const [k, v] of Object.entries(part as Record<string, unknown>)) {
    const values = Array.isArray(v) ? v : [v];
    if (values.some((x) => typeof x === "string" && x.includes("\u0000"))) {
      out.push({ path: `/${k}`, code: "nul_byte", message: `the ${where} value "${k}" contains a NUL byte` });
    }
  }
  return out;
}

/** preValidation hook: runs after auth, before schema validation and the handler. */
export async function refuseNulBytes(req: FastifyRequest): Promise<void> {
  const details = [...nulDetails(req.params, "path"), ...nulDetails(req.query, "query")];
  if (details.length)
    throw new ApiError(
      400,
      "invalid_request",
      "the request contains a NUL byte, which cannot be stored or matched",
      details,
    );
}
