// Hosts are addressed by id or by name, never by a lookup that could match one
// host's name against another host's id: a UUID-shaped reference is only ever an id, and
// host names may not be UUID-shaped (HostName in the engine, checked at enrollment).
import { isHostId } from "../../engine/index.ts";
import type { Prisma } from "./client.ts";

/** Prisma filter for "the host this reference addresses": by id when UUID-shaped, else by name. */
export function hostWhere(ref: string): Prisma.HostWhereUniqueInput {
  return isHostId(ref) ? { id: ref.toLowerCase() } : { name: ref };
}
