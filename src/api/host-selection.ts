// Per-host state set for the hosts a selector picks (bans, conditions): the selector itself,
// which hosts it picks, which of them run an agent too old for the feature, and the API's
// view of a stored selector. Delivery is the per-host bus (host-bus.ts: publishToHosts).
import { z } from "zod";
import type { Db } from "./db/client.ts";
import { resolveSelector } from "./deploy/selector.ts";
import { LabelKey, LabelValue } from "./schemas.ts";

export interface HostSelector {
  /** Host ids; undefined = any host. */
  hostIds?: string[];
  /** Labels every selected host carries ({} = any). */
  labels: Record<string, string>;
}

/** Hosts a selector picks right now. */
export async function selectedHosts(
  db: Db,
  sel: { hostIds: string[] | null; labels: Record<string, string> },
): Promise<string[]> {
  const rows = await db.$queryRaw<{ id: string }[]>`
    SELECT id FROM hosts WHERE labels @> ${JSON.stringify(sel.labels)}::jsonb
      AND (${sel.hostIds}::uuid[] IS NULL OR id = ANY(${sel.hostIds}::uuid[]))`;
  return rows.map((r) => r.id);
}

/** Whether reported agent capabilities list this feature (older agents ignore what they lack). */
export function hasFeature(caps: unknown, feature: string): boolean {
  const f = (caps as { features?: unknown } | null | undefined)?.features;
  return Array.isArray(f) && f.includes(feature);
}

/** Of these hosts, the names of those whose agent reported capabilities without FEATURE, sorted. */
export async function hostsLacking(
  db: Pick<Db, "host">,
  hostIds: string[],
  feature: string,
): Promise<{ id: string; name: string }[]> {
  if (hostIds.length === 0) return [];
  const hosts = await db.host.findMany({
    where: { id: { in: hostIds } },
    select: { id: true, name: true, capabilities: true },
  });
  // A host that never connected has reported nothing yet ({}): not counted.
  return hosts
    .filter(
      (h) =>
        Array.isArray((h.capabilities as { features?: unknown })?.features) && !hasFeature(h.capabilities, feature),
    )
    .map((h) => ({ id: h.id, name: h.name }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Hosts a notice reached that can act on it: a stream up and the feature reported. */
export const deliveredCapable = (deliveredTo: string[], lacking: { id: string }[]) => {
  const without = new Set(lacking.map((h) => h.id));
  return deliveredTo.filter((id) => !without.has(id)).length;
};

/** A request's selector: host ids or names, and labels; absent = every host. */
export const SelectorBody = z
  .strictObject({
    hosts: z.array(z.string().min(1).max(253)).min(1).max(10_000).optional().describe("host ids or names"),
    labels: z.record(LabelKey, LabelValue).optional().describe("hosts whose labels include all of these"),
  })
  .optional()
  .describe("which hosts; absent = every host");

/** A stored selector as answered: host names (ids of hosts since deleted), labels. */
export const SelectorView = z.object({
  hosts: z.array(z.string()).nullable().describe("host names; null = any host"),
  labels: z.record(z.string(), z.string()),
});

/** The request's selector with host names turned into ids; an unknown host is refused (404) before anything is stored. */
export async function selectorOf(db: Db, sel: z.infer<typeof SelectorBody>): Promise<HostSelector> {
  const hostIds = sel?.hosts
    ? (await resolveSelector(db, { hosts: sel.hosts, ...(sel.labels && { labels: sel.labels }) })).map((h) => h.id)
    : undefined;
  return { ...(hostIds && { hostIds }), labels: sel?.labels ?? {} };
}

/** One lookup of the hosts these stored selectors name; returns their view. */
export async function selectorViews(
  db: Db,
  rows: { hostIds: string[] | null }[],
): Promise<(r: { hostIds: string[] | null; labels: Record<string, string> }) => z.infer<typeof SelectorView>> {
  const ids = [...new Set(rows.flatMap((r) => r.hostIds ?? []))];
  const hosts = ids.length
    ? await db.host.findMany({ where: { id: { in: ids } }, select: { id: true, name: true } })
    : [];
  const name = new Map(hosts.map((h) => [h.id, h.name]));
  return (r) => ({ hosts: r.hostIds ? r.hostIds.map((i) => name.get(i) ?? i) : null, labels: r.labels });
}
