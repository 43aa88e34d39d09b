// Operator conditions in PostgreSQL (docs/conditions.md): one row per (name, selector).
// A host's value for a name is that of the most recently set row whose selector picks it;
// a name no row picks is off (xt_condition: a condition that does not exist is 0). Every
// set is audited in the same transaction.
import { Prisma } from "../../generated/prisma/client.ts";
import { recordAudit, type Actor } from "../audit.ts";
import type { Db } from "../db/client.ts";
import { hasFeature, hostsLacking, selectedHosts, type HostSelector } from "../host-selection.ts";

export type ConditionSelector = HostSelector;

export interface ConditionRow {
  id: string;
  name: string;
  on: boolean;
  hostIds: string[] | null;
  labels: Record<string, string>;
  setBy: string;
  setAt: Date;
}

/** One host's new value of one condition, to send to its agent. */
export interface HostConditionChange {
  hostId: string;
  values: { name: string; on: boolean }[];
}

/** The agent feature that says it applies condition updates (older agents ignore them). */
export const CONDITIONS_CAPABILITY = "conditions";

export const hasConditionsCapability = (caps: unknown) => hasFeature(caps, CONDITIONS_CAPABILITY);

/** Of these hosts, the names of those whose agent is older than conditions (no `conditions` capability). */
export const hostsWithoutConditions = (db: Db, hostIds: string[]) => hostsLacking(db, hostIds, CONDITIONS_CAPABILITY);

const selectorKey = (hostIds: string[] | null, labels: Record<string, string>) =>
  JSON.stringify([hostIds ? [...hostIds].sort() : null, Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1))]);

/** Set NAME on or off for the selector's hosts; returns the stored row and each picked host's value now. */
export async function setCondition(
  db: Db,
  actor: Actor,
  req: { name: string; on: boolean; selector: ConditionSelector },
): Promise<{ row: ConditionRow; changes: HostConditionChange[] }> {
  const hostIds = req.selector.hostIds ? [...new Set(req.selector.hostIds)].sort() : null;
  const labels = req.selector.labels;
  const now = new Date();
  const row = await db.$transaction(async (tx) => {
    const rows = await tx.$queryRaw<RawCondition[]>`
      INSERT INTO condition_values (name, "on", host_ids, labels, selector_key, set_by, set_at)
      VALUES (${req.name}, ${req.on}, ${hostIds}::uuid[], ${JSON.stringify(labels)}::jsonb, ${selectorKey(hostIds, labels)}, ${actor.name}, ${now})
      ON CONFLICT (name, selector_key) DO UPDATE SET "on" = EXCLUDED."on", set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at
      RETURNING ${RETURNING}`;
    await recordAudit(tx, actor, req.on ? "condition.on" : "condition.off", `condition:${req.name}`, {
      name: req.name,
      on: req.on,
      selector: { hostIds, labels },
    });
    return toRow(rows[0]!);
  });
  // The value each picked host has now (a newer row with a narrower selector may still win there).
  const changes: HostConditionChange[] = [];
  for (const h of await selectedHosts(db, { hostIds, labels })) {
    const on = (await conditionsForHost(db, h, req.name)).get(req.name) ?? false;
    changes.push({ hostId: h, values: [{ name: req.name, on }] });
  }
  return { row, changes };
}

/** Rows, ordered by name then newest first; with hostId only those whose selector picks that host. */
export async function listConditions(db: Db, q: { name?: string; hostId?: string }): Promise<ConditionRow[]> {
  const host = q.hostId
    ? await db.host.findUnique({ where: { id: q.hostId }, select: { id: true, labels: true } })
    : undefined;
  const rows = await db.$queryRaw<RawCondition[]>`
    SELECT ${RETURNING} FROM condition_values
     WHERE TRUE
       ${q.name !== undefined ? Prisma.sql`AND name = ${q.name}` : Prisma.empty}
       ${host ? Prisma.sql`AND (host_ids IS NULL OR ${host.id}::uuid = ANY(host_ids)) AND ${JSON.stringify(host.labels)}::jsonb @> labels` : Prisma.empty}
     ORDER BY name, set_at DESC, id LIMIT 10000`;
  return rows.map(toRow);
}

/** Every condition some row sets for the host, with its value there (sent after its agent's Hello). */
export async function conditionsForHost(db: Db, hostId: string, name?: string): Promise<Map<string, boolean>> {
  const rows = await db.$queryRaw<{ name: string; on: boolean }[]>`
    SELECT DISTINCT ON (c.name) c.name, c."on" FROM condition_values c, hosts h
     WHERE h.id = ${hostId}::uuid AND (c.host_ids IS NULL OR h.id = ANY(c.host_ids)) AND h.labels @> c.labels
       ${name !== undefined ? Prisma.sql`AND c.name = ${name}` : Prisma.empty}
     ORDER BY c.name, c.set_at DESC, c.id DESC`;
  return new Map(rows.map((r) => [r.name, r.on]));
}

interface RawCondition {
  id: string;
  name: string;
  on: boolean;
  host_ids: string[] | null;
  labels: Record<string, string>;
  set_by: string;
  set_at: Date;
}
const RETURNING = Prisma.sql`id, name, "on", host_ids, labels, set_by, set_at`;
const toRow = (r: RawCondition): ConditionRow => ({
  id: r.id,
  name: r.name,
  on: r.on,
  hostIds: r.host_ids,
  labels: r.labels,
  setBy: r.set_by,
  setAt: r.set_at,
});
