// Hosts are addressed by id or by name everywhere (SPEC §3).
import type { Prisma } from "./client.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Prisma filter for "the host with this id or name". */
export function hostWhere(idOrName: string): Prisma.HostWhereInput {
  return UUID.test(idOrName) ? { OR: [{ id: idOrName.toLowerCase() }, { name: idOrName }] } : { name: idOrName };
}
