// The one rule for host names, shared by the agent's --name and the API's enrollment.
// A name must never look like a host id (a UUID): ids and names share one address space
// (`/v1/hosts/:id`, deployment selectors), and a UUID-shaped string is only ever an id,
// so a host named like another host's id could otherwise receive that host's changes.
import * as z from "zod";

export const HOST_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `ref` can only be a host id (UUID-shaped); anything else is a name. */
export const isHostId = (ref: string): boolean => HOST_ID_PATTERN.test(ref);

export const HostName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "letters, digits, dot, dash, underscore, starting with a letter or digit")
  .refine((s) => !isHostId(s), "must not look like a host id (a UUID): UUID-shaped strings always address hosts by id");
