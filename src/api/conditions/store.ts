// Operator conditions in PostgreSQL (docs/conditions.md): one row per (name, selector).
// A host's value for a name is that of the most recently set row whose selector picks it;
// a name no row picks is off (xt_condition: a condition that does not exist is 0). Every
// set is audited in the same transaction.
import { Prisma } from "../../generated/prisma/client.ts";
import { recordAudit, type Actor } from "../audit.ts";
import type { Db } from "../db/client.ts";
import { hasFeature, hostsLacking, type HostSelector } from "../host-selection.ts";

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

/**
 * Set NAME on or off for the selector's hosts; returns the stored row, each picked host's
 * value now and what `publish` returned. Sets of one name are serialised by an advisory lock
 * held across the write, the computation of each host's value and `publish`, so the
 * notices of two sets go out in commit order (the later one's value is what the agents
 * keep). A publish whose commit then fails leaves an agent ahead of the database until its
 * next Hello (the full state); a publish is never behind it.
 */
export async function setCondition<P>(
  db: Db,
  actor: Actor,
  req: { name: string; on: boolean; selector: ConditionSelector },
  publish: (changes: HostConditionChange[]) => Promise<P>,
): Promise<{ row: ConditionRow; changes: HostConditionChange[]; published: P }> {
  const hostIds = req.selector.hostIds ? [...new Set(req.selector.hostIds)].sort() : null;
  const labels = req.selector.labels;
  return db.$transaction(
    async (tx) => {
      await tx.$queryRaw`SELECT pg_advisory_xact_lock(hashtext(${"condition:" + req.name}))::text`;
      // Taken under the lock: a set that waited is newer than the one it waited for.
      const now = new Date();
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
      // The value each picked host has now (a newer row with a narrower selector may still win there).
      const values = await tx.$queryRaw<{ host_id: string; on: boolean }[]>`
        SELECT DISTINCT ON (h.id) h.id::text AS host_id, c."on" FROM hosts h
          JOIN condition_values c ON c.name = ${req.name}
           AND (c.host_ids IS NULL OR h.id = ANY(c.host_ids)) AND h.labels @> c.labels
         WHERE h.labels @> ${JSON.stringify(labels)}::jsonb
           AND (${hostIds}::uuid[] IS NULL OR h.id = ANY(${hostIds}::uuid[]))
         ORDER BY h.id, ${newestFirst("c.")}`;
      const changes = values.map((v) => ({ hostId: v.host_id, values: [{ name: req.name, on: v.on }] }));
      const published = await publish(changes);
      return { row: toRow(rows[0]!), changes, published };
    },
    { timeout: 120_000 },
  );
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
     ORDER BY name, ${newestFirst()} LIMIT 10000`;
  return rows.map(toRow);
}

/** Every condition some row sets for the host, with its value there (sent after its agent's Hello). */
export async function conditionsForHost(db: Db, hostId: string, name?: string): Promise<Map<string, boolean>> {
  const rows = await db.$queryRaw<{ name: string; on: boolean }[]>`
    SELECT DISTINCT ON (c.name) c.name, c."on" FROM condition_values c, hosts h
     WHERE h.id = ${hostId}::uuid AND (c.host_ids IS NULL OR h.id = ANY(c.host_ids)) AND h.labels @> c.labels
       ${name !== undefined ? Prisma.sql`AND c.name = ${name}` : Prisma.empty}
     ORDER BY c.name, ${newestFirst("c.")}`;
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
/** The one order of rows that pick a host (GET's `effective`, a set's notices, the Hello's full state). */
const newestFirst = (alias = "") => Prisma.raw(`${alias}set_at DESC, ${alias}id DESC`);
const toRow = (r: RawCondition): ConditionRow => ({
  id: r.id,
  name: r.name,
  on: r.on,
  hostIds: r.host_ids,
  labels: r.labels,
  setBy: r.set_by,
  setAt: r.set_at,
});
