// Host filters of the telemetry routes: a host is named by id or name.
import type { Db } from "../db/client.ts";
import { hostWhere } from "../db/hosts.ts";
import { notFound } from "../errors.ts";

export async function resolveHost(db: Db, idOrName: string): Promise<{ id: string; name: string }> {
  const h = await db.host.findUnique({ where: hostWhere(idOrName), select: { id: true, name: true } });
  if (!h) throw notFound(`host "${idOrName}"`);
  return h;
}

export async function resolveHostId(db: Db, idOrName: string | undefined): Promise<string | undefined> {
  return idOrName === undefined ? undefined : (await resolveHost(db, idOrName)).id;
}
