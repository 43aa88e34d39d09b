// Bans in PostgreSQL: add (upsert per list and address), remove, list, and what one host
// must hold. A ban whose expires_at passed is gone for every reader at once: every query
// here filters on the same instant the agents' kernel timeouts count down to.
import { Prisma } from "../../generated/prisma/client.ts";
import { bans } from "../../engine/index.ts";
import { recordAudit, type Actor } from "../audit.ts";
import type { Db } from "../db/client.ts";
import { ApiError, type ErrorDetail } from "../errors.ts";
import { hasFeature, hostsLacking, selectedHosts, type HostSelector } from "../host-selection.ts";
import { protectedAddressDetails } from "./guard.ts";

export type BanSelector = HostSelector;

export interface BanRow {
  id: string;
  list: string;
  address: string;
  reason: string;
  hostIds: string[] | null;
  labels: Record<string, string>;
  source: string;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date;
}

/** One host's change: entries to add (with their absolute expiry) and addresses to remove, per list. */
export interface HostBanChange {
  hostId: string;
  lists: { list: string; add: { address: string; expiresAtMs: number }[]; remove: string[] }[];
}

export interface AddBansRequest {
  list: string;
  addresses: string[];
  ttlSeconds: number;
  reason: string;
  selector: BanSelector;
  source?: string;
  /** API addresses besides the interfaces' (a configured public address). */
  apiAddresses?: string[];
  /** Active bans one host may be selected by (its full state is one gRPC message); none = no cap. */
  maxPerHost?: number;
}

/** Parse and check every address; throws 400 naming each bad one, before anything is written. */
export async function checkAddresses(
  db: Db,
  list: string,
  inputs: string[],
  apiExtra: string[] = [],
): Promise<bans.BanAddress[]> {
  const details: ErrorDetail[] = [];
  if (!bans.BAN_LIST_RE.test(list))
    details.push({
      path: "/list",
      code: "invalid_list",
      message: `list name "${list}" must be ${bans.BAN_LIST_RULE}`,
    });
  const parsed: { path: string; address: bans.BanAddress }[] = [];
  const seen = new Map<string, number>();
  inputs.forEach((text, i) => {
    const r = bans.parseBanAddress(text);
    if (!r.ok) return void details.push({ path: `/addresses/${i}`, code: r.error.code, message: r.error.message });
    if (seen.has(r.value.text)) return;
    seen.set(r.value.text, i);
    parsed.push({ path: `/addresses/${i}`, address: r.value });
  });
  details.push(...(await protectedAddressDetails(db, parsed, apiExtra)));
  details.push(...(await overlapDetails(db, list, parsed)));
  if (details.length)
    throw new ApiError(400, "invalid_request", "the ban request is invalid; nothing was applied", details);
  return parsed.map((p) => p.address);
}

/**
 * Prefixes of one list share an interval set, where the kernel refuses overlaps. Checked
 * before the write (every error in one answer) and again inside addBans' transaction under
 * the list's advisory lock, so two concurrent adds cannot both store overlapping prefixes.
 */
async function overlapDetails(
  q: Db | Prisma.TransactionClient,
  list: string,
  parsed: { path: string; address: bans.BanAddress }[],
): Promise<ErrorDetail[]> {
  const nets = parsed.filter((p) => !p.address.single);
  if (nets.length === 0) return [];
  const existing = await q.$queryRaw<{ address: string }[]>`
    SELECT address FROM bans WHERE list = ${list} AND prefix_len < CASE family WHEN 'ipv4' THEN 32 ELSE 128 END AND expires_at > ${new Date()}`;
  const others = [...existing.map((e) => e.address), ...nets.map((n) => n.address.text)];
  const details: ErrorDetail[] = [];
  for (const n of nets) {
    const o = others.find((x) => x !== n.address.text && bans.bansOverlap(n.address, parseOk(x)));
    if (o)
      details.push({
        path: n.path,
        code: "overlaps_ban",
        message: `${n.address.text} overlaps ${o} on list "${list}"; remove one first`,
      });
  }
  return details;
}

function parseOk(text: string): bans.BanAddress {
  const r = bans.parseBanAddress(text);
  if (!r.ok) throw new Error(`stored ban address ${text} does not parse`);
  return r.value;
}

/**
 * After the insert, inside its transaction: no host this request selects may now be
 * selected by more than `max` active bans (rolled back whole, 400, when one is). Counted
 * per stored selector, then summed per host, so the cost follows the selectors, not the rows.
 */
async function checkHostCap(
  tx: Prisma.TransactionClient,
  hostIds: string[] | null,
  labels: Record<string, string>,
  max: number,
  now: Date,
): Promise<void> {
  const hosts = await tx.$queryRaw<{ id: string; name: string; labels: Record<string, string> }[]>`
    SELECT id, name, labels FROM hosts WHERE labels @> ${JSON.stringify(labels)}::jsonb
      AND (${hostIds}::uuid[] IS NULL OR id = ANY(${hostIds}::uuid[]))`;
  if (hosts.length === 0) return;
  const groups = await tx.$queryRaw<{ host_ids: string[] | null; labels: Record<string, string>; n: number }[]>`
    SELECT host_ids, labels, count(*)::int AS n FROM bans WHERE expires_at > ${now} GROUP BY host_ids, labels`;
  const picks = (g: (typeof groups)[number], h: (typeof hosts)[number]) =>
    (g.host_ids === null || g.host_ids.includes(h.id)) && Object.entries(g.labels).every(([k, v]) => h.labels[k] === v);
  const over = hosts
    .map((h) => ({ h, n: groups.reduce((n, g) => n + (picks(g, h) ? g.n : 0), 0) }))
    .filter((x) => x.n > max);
  if (over.length === 0) return;
  throw new ApiError(
    400,
    "invalid_request",
    `the ban request is invalid; nothing was applied: a host may be selected by at most ${max} active bans`,
    over.slice(0, 20).map((x) => ({
      path: "/addresses",
      code: "too_many_bans",
      message: `host ${x.h.name} would be selected by ${x.n} active bans; the limit is ${max} (its full ban state must fit one agent message)`,
    })),
  );
}

/** The agent feature that says it applies ban updates (older agents ignore them). */
export const BANS_CAPABILITY = "bans";

export const hasBansCapability = (caps: unknown) => hasFeature(caps, BANS_CAPABILITY);

/** Of these hosts, the names of those whose agent is older than bans (no `bans` capability). */
export const hostsWithoutBans = (db: Db, hostIds: string[]) => hostsLacking(db, hostIds, BANS_CAPABILITY);

/** Add (or renew) bans; returns the rows and each affected host's change. Audited in the same transaction. */
export async function addBans(
  db: Db,
  actor: Actor,
  req: AddBansRequest,
): Promise<{ rows: BanRow[]; changes: HostBanChange[] }> {
  const addrs = await checkAddresses(db, req.list, req.addresses, req.apiAddresses);
  const now = new Date();
  const expiresAt = new Date(now.getTime() + req.ttlSeconds * 1000);
  const hostIds = req.selector.hostIds ?? null;
  const out = await db.$transaction(
    async (tx) => {
      // Adds to one list are serialised: the overlap check and the insert see the same rows.
      await tx.$queryRaw`SELECT pg_advisory_xact_lock(hashtext(${"bans:" + req.list}))::text`;
      const at = (a: bans.BanAddress) =>
        req.addresses.findIndex((t) => {
          const r = bans.parseBanAddress(t);
          return r.ok && r.value.text === a.text;
        });
      const overlaps = await overlapDetails(
        tx,
        req.list,
        addrs.map((address) => ({ path: `/addresses/${at(address)}`, address })),
      );
      if (overlaps.length)
        throw new ApiError(400, "invalid_request", "the ban request is invalid; nothing was applied", overlaps);
      // A previous ban of the same address may select other hosts: those lose it.
      const old = await tx.$queryRaw<{ address: string; host_ids: string[] | null; labels: Record<string, string> }[]>`
        SELECT address, host_ids, labels FROM bans WHERE list = ${req.list} AND address = ANY(${addrs.map((a) => a.text)}::text[]) AND expires_at > ${now} FOR UPDATE`;
      const rows = await tx.$queryRaw<RawBan[]>`
        INSERT INTO bans (list, address, family, prefix_len, reason, host_ids, labels, source, created_by, created_at, expires_at)
        SELECT ${req.list}, a, f, l, ${req.reason}, ${hostIds}::uuid[], ${JSON.stringify(req.selector.labels)}::jsonb, ${req.source ?? "api"}, ${actor.name}, ${now}, ${expiresAt}
          FROM unnest(${addrs.map((a) => a.text)}::text[], ${addrs.map((a) => a.family)}::text[], ${addrs.map((a) => a.length)}::int[]) AS t(a, f, l)
        ON CONFLICT (list, address) DO UPDATE SET reason = EXCLUDED.reason, host_ids = EXCLUDED.host_ids, labels = EXCLUDED.labels,
          source = EXCLUDED.source, created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
        RETURNING ${RETURNING}`;
      if (req.maxPerHost !== undefined) await checkHostCap(tx, hostIds, req.selector.labels, req.maxPerHost, now);
      await recordAudit(tx, actor, "ban.add", `ban-list:${req.list}`, {
        list: req.list,
        count: addrs.length,
        addresses: addrs.slice(0, 100).map((a) => a.text),
        ttlSeconds: req.ttlSeconds,
        reason: req.reason,
        selector: { hostIds, labels: req.selector.labels },
        ...(req.source && req.source !== "api" && { source: req.source }),
      });
      return { rows: rows.map(toRow), old };
    },
    { timeout: 120_000 },
  );
  const targets = await selectedHosts(db, { hostIds, labels: req.selector.labels });
  const changes = new Map<string, HostBanChange>();
  const change = (hostId: string) => {
    let c = changes.get(hostId);
    if (!c) changes.set(hostId, (c = { hostId, lists: [{ list: req.list, add: [], remove: [] }] }));
    return c.lists[0]!;
  };
  const add = addrs.map((a) => ({ address: a.text, expiresAtMs: expiresAt.getTime() }));
  for (const h of targets) change(h).add = add;
  // Hosts only the old selector picked lose the address.
  const picked = new Set(targets);
  const bySelector = new Map<string, string[]>();
  for (const o of out.old) {
    const k = JSON.stringify([o.host_ids, o.labels]);
    const xs = bySelector.get(k);
    if (xs) xs.push(o.address);
    else bySelector.set(k, [o.address]);
  }
  for (const [k, addresses] of bySelector) {
    const [ids, labels] = JSON.parse(k) as [string[] | null, Record<string, string>];
    for (const h of await selectedHosts(db, { hostIds: ids, labels }))
      if (!picked.has(h)) change(h).remove = change(h).remove.concat(addresses);
  }
  return { rows: out.rows, changes: [...changes.values()] };
}

/** Lift bans; returns the removed rows and each affected host's change. 404 when none was active. */
export async function removeBans(
  db: Db,
  actor: Actor,
  list: string,
  inputs: string[],
): Promise<{ rows: BanRow[]; changes: HostBanChange[] }> {
  const texts = inputs.map((t) => {
    const r = bans.parseBanAddress(t);
    if (!r.ok)
      throw new ApiError(400, "invalid_request", r.error.message, [
        { path: "/address", code: r.error.code, message: r.error.message },
      ]);
    return r.value.text;
  });
  const now = new Date();
  const rows = await db.$transaction(async (tx) => {
    const gone = await tx.$queryRaw<
      RawBan[]
    >`DELETE FROM bans WHERE list = ${list} AND address = ANY(${texts}::text[]) RETURNING ${RETURNING}`;
    const active = gone.filter((g) => g.expires_at > now);
    if (active.length === 0)
      throw new ApiError(404, "not_found", `no active ban of ${texts.join(", ")} on list "${list}"`);
    await recordAudit(tx, actor, "ban.remove", `ban-list:${list}`, { list, addresses: active.map((g) => g.address) });
    return active.map(toRow);
  });
  const changes = new Map<string, HostBanChange>();
  for (const r of rows) {
    for (const h of await selectedHosts(db, { hostIds: r.hostIds, labels: r.labels })) {
      let c = changes.get(h);
      if (!c) changes.set(h, (c = { hostId: h, lists: [{ list, add: [], remove: [] }] }));
      c.lists[0]!.remove.push(r.address);
    }
  }
  return { rows, changes: [...changes.values()] };
}

export interface ListQuery {
  list?: string;
  hostId?: string;
  after?: [string, string];
  limit: number;
}

/** Active bans, ordered by (list, address); with hostId only those whose selector picks that host. */
export async function listBans(db: Db, q: ListQuery): Promise<BanRow[]> {
  const now = new Date();
  const host = q.hostId
    ? await db.host.findUnique({ where: { id: q.hostId }, select: { id: true, labels: true } })
    : undefined;
  const rows = await db.$queryRaw<RawBan[]>`
    SELECT ${RETURNING} FROM bans
     WHERE expires_at > ${now}
       ${q.list !== undefined ? Prisma.sql`AND list = ${q.list}` : Prisma.empty}
       ${host ? Prisma.sql`AND (host_ids IS NULL OR ${host.id}::uuid = ANY(host_ids)) AND ${JSON.stringify(host.labels)}::jsonb @> labels` : Prisma.empty}
       ${q.after ? Prisma.sql`AND (list, address) > (${q.after[0]}, ${q.after[1]})` : Prisma.empty}
     ORDER BY list, address LIMIT ${q.limit}`;
  return rows.map(toRow);
}

/** Everything one host must hold now, per list (sent after its agent's Hello). */
export async function bansForHost(
  db: Db,
  hostId: string,
): Promise<Map<string, { address: string; expiresAtMs: number }[]>> {
  const now = new Date();
  const rows = await db.$queryRaw<{ list: string; address: string; expires_at: Date }[]>`
    SELECT b.list, b.address, b.expires_at FROM bans b, hosts h
     WHERE h.id = ${hostId}::uuid AND b.expires_at > ${now}
       AND (b.host_ids IS NULL OR h.id = ANY(b.host_ids)) AND h.labels @> b.labels`;
  const out = new Map<string, { address: string; expiresAtMs: number }[]>();
  for (const r of rows) {
    let l = out.get(r.list);
    if (!l) out.set(r.list, (l = []));
    l.push({ address: r.address, expiresAtMs: r.expires_at.getTime() });
  }
  return out;
}

/** Expired rows are invisible already; this only reclaims their space. */
export async function sweepExpiredBans(db: Db, before = new Date()): Promise<number> {
  return db.$executeRaw`DELETE FROM bans WHERE expires_at <= ${before}`;
}

interface RawBan {
  id: string;
  list: string;
  address: string;
  reason: string;
  host_ids: string[] | null;
  labels: Record<string, string>;
  source: string;
  created_by: string;
  created_at: Date;
  expires_at: Date;
}
const RETURNING = Prisma.sql`id, list, address, reason, host_ids, labels, source, created_by, created_at, expires_at`;
const toRow = (r: RawBan): BanRow => ({
  id: r.id,
  list: r.list,
  address: r.address,
  reason: r.reason,
  hostIds: r.host_ids,
  labels: r.labels,
  source: r.source,
  createdBy: r.created_by,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
});
