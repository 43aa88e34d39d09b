// Request pieces shared by the accounting, quota and log routes.
import { z } from "zod";
import { ApiError } from "../errors.ts";

export const When = z.iso.datetime({ offset: true }).describe("RFC 3339 time");
export const HostFilter = z.string().min(1).max(253).describe("host id or name");
export const TableName = z.string().min(1).max(128);

/** [from, to) from optional query strings; 400 when the range is empty or reversed. */
export function range(q: { from?: string; to?: string }): { from?: Date; to?: Date } {
  const from = q.from ? new Date(q.from) : undefined;
  const to = q.to ? new Date(q.to) : undefined;
  if (from && to && from >= to) {
    throw new ApiError(400, "invalid_request", "from must be before to", [
      { path: "/from", code: "invalid_range", message: "from must be earlier than to" },
    ]);
  }
  return { ...(from && { from }), ...(to && { to }) };
}
