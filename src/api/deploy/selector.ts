// Selector -> hosts. Hosts are named by id or name (see ../db/hosts.ts); labels select hosts whose
// labels contain every given pair. With both, a listed host must also carry the labels:
// a selector never reaches more hosts than either half names.
import { isHostId } from "../../engine/index.ts";
import type { Db } from "../db/client.ts";
import { ApiError, type ErrorDetail } from "../errors.ts";
import type { Selector } from "./strategy.ts";

export interface SelectedHost {
  id: string;
  name: string;
  connection: string;
  appliedVersionId: string | null;
}

const select = { id: true, name: true, connection: true, appliedVersionId: true } as const;

export async function resolveSelector(db: Db, sel: Selector): Promise<SelectedHost[]> {
  const details: ErrorDetail[] = [];
  let listed: SelectedHost[] | undefined;
  if (sel.hosts) {
    // A UUID-shaped reference is only ever an id, anything else only a name: a host named
    // like another host's id must never be selected in its place.
    const ids = sel.hosts.filter(isHostId).map((h) => h.toLowerCase());
    const names = sel.hosts.filter((h) => !isHostId(h));
    const rows = await db.host.findMany({ where: { OR: [{ id: { in: ids } }, { name: { in: names } }] }, select });
    listed = [];
    sel.hosts.forEach((ref, i) => {
      const h = isHostId(ref) ? rows.find((r) => r.id === ref.toLowerCase()) : rows.find((r) => r.name === ref);
      if (!h)
        details.push({
          path: `/selector/hosts/${i}`,
          code: "unknown_host",
          message: `no host with id or name "${ref}"`,
        });
      else if (!listed!.some((x) => x.id === h.id)) listed!.push(h);
    });
  }
  let labelled: SelectedHost[] | undefined;
  if (sel.labels && Object.keys(sel.labels).length > 0) {
    const ids = await db.$queryRaw<
      { id: string }[]
    >`SELECT id FROM hosts WHERE labels @> ${JSON.stringify(sel.labels)}::jsonb`;
    labelled = await db.host.findMany({ where: { id: { in: ids.map((r) => r.id) } }, select });
  }
  let hosts = listed ?? labelled ?? [];
  if (listed && labelled) {
    const ok = new Set(labelled.map((h) => h.id));
    for (const h of listed) {
      if (!ok.has(h.id))
        details.push({
          path: "/selector/hosts",
          code: "labels_mismatch",
          message: `host "${h.name}" does not carry the selector's labels`,
        });
    }
    hosts = listed.filter((h) => ok.has(h.id));
  }
  if (details.length)
    throw new ApiError(400, "invalid_request", "the selector names hosts that cannot be targeted", details);
  if (hosts.length === 0) {
    throw new ApiError(400, "invalid_request", "the selector matches no hosts", [
      { path: "/selector", code: "no_hosts", message: "no enrolled host matches" },
    ]);
  }
  return rolloutOrder(hosts);
}

/** Connected hosts first (the canary should be one that can answer), then by name. */
export function rolloutOrder<T extends { name: string; connection: string }>(hosts: T[]): T[] {
  const rank = (h: T) => (h.connection === "connected" ? 0 : 1);
  return [...hosts].sort((a, b) => rank(a) - rank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
