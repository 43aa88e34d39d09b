// Shared trap hits (docs/dynamic-sets.md): a host's agent reports the sources its port-scan
// trap banned; when the policy the host runs shares them (`portScanTrap.share`), each one
// becomes a fleet ban on the named list, for the share's TTL, on every host whose applied
// policy shares to the same list, audited as from that host. The list and TTL come from
// the policy the API knows the host runs, never from the agent's message.
//
// Bounded: an address with an active ban on the list is skipped (no renewal storm when a
// scanner sweeps the fleet), concurrent reports of one address collapse on a short Redis
// claim, and at most `perMinute` trap bans per list and minute are made fleet-wide (a
// Redis counter); the rest are dropped, logged and counted. Addresses the ban guard refuses
// (the API's own, an agent's management path) are skipped the same way.
//
// A trap hit is one SYN whose source can be forged: addresses the share exempts
// (`share.exempt`, and every source the host's policy accepts by `saddr`) are never banned
// fleet-wide, whatever the agent reports.
import type { Redis } from "ioredis";
import { bans, trapShareExemption, trapShareOf, validatePolicy, type TrapShare } from "../../engine/index.ts";
import { addBans, publishBanChanges } from "../bans/index.ts";
import { protectedAddressDetails } from "../bans/guard.ts";
import type { Db } from "../db/client.ts";
import type { Log } from "../log.ts";

export const TRAP_BANS_PER_MINUTE = 600;
/** Reports of one address within this window are one ban (several hosts trapped it at once). */
const CLAIM_SECONDS = 10;

export interface TrapShareOutcome {
  list?: string;
  banned: string[];
  /** Already banned on the list, or claimed by a concurrent report. */
  known: number;
  /** Over the per-minute cap. */
  capped: number;
  /** Covered by the share's exemptions (never banned fleet-wide: the source may be forged). */
  exempt: number;
  /** Malformed, or covering the API or an agent (the guard's refusals). */
  refused: number;
}

export interface TrapShareContext {
  db: Db;
  redis: Redis;
  log: Log;
  maxPerHost?: number;
  trapBansPerMinute?: number;
}

/** Share settings by applied version id (versions are immutable; null: it does not share). */
const shareByVersion = new Map<string, TrapShare | null>();
const SHARE_CACHE_MAX = 1_000;

/**
 * The share settings of a stored version, validated for nftables as the agent does. A
 * version that no longer validates (the engine's rules moved on: a set named like a geoip
 * country set) does not share, as the agent cannot apply it; that is logged, once per
 * version, never silently taken for "does not share".
 */
function shareOfVersion(
  log: Log,
  version: { id: string; number: number; ruleset: string },
  doc: unknown,
): TrapShare | undefined {
  const hit = shareByVersion.get(version.id);
  if (hit !== undefined) return hit ?? undefined;
  const v = validatePolicy(doc, { target: "nftables" });
  if (!v.ok)
    log.warn(
      {
        ruleset: version.ruleset,
        version: version.number,
        versionId: version.id,
        codes: [...new Set(v.errors.map((e) => e.code))],
        errors: v.errors.slice(0, 10).map((e) => ({ path: e.path, code: e.code, message: e.message })),
      },
      "the applied version no longer validates for nftables: its port-scan trap hits are not shared",
    );
  const share = (v.ok && v.policy ? trapShareOf(v.policy) : undefined) ?? null;
  // Oldest first (insertion order): the map never holds more than SHARE_CACHE_MAX.
  if (shareByVersion.size >= SHARE_CACHE_MAX) shareByVersion.delete(shareByVersion.keys().next().value!);
  shareByVersion.set(version.id, share);
  return share ?? undefined;
}

/** The share settings of the policy a host runs (undefined: it does not share). */
export async function hostTrapShare(db: Db, hostId: string, log: Log) {
  const h = await db.host.findUnique({ where: { id: hostId }, select: { name: true, appliedVersionId: true } });
  const versionId = h?.appliedVersionId;
  if (!versionId) return undefined;
  let share: TrapShare | undefined;
  if (shareByVersion.has(versionId)) share = shareByVersion.get(versionId) ?? undefined;
  else {
    const v = await db.rulesetVersion.findUnique({
      where: { id: versionId },
      select: { document: true, number: true, ruleset: { select: { name: true } } },
    });
    if (!v) return undefined;
    share = shareOfVersion(log, { id: versionId, number: v.number, ruleset: v.ruleset.name }, v.document);
  }
  return share && { ...share, hostName: h.name };
}

export async function shareTrapHits(
  ctx: TrapShareContext,
  hostId: string,
  addresses: string[],
): Promise<TrapShareOutcome> {
  const out: TrapShareOutcome = { banned: [], known: 0, capped: 0, refused: 0, exempt: 0 };
  const share = await hostTrapShare(ctx.db, hostId, ctx.log);
  if (!share) {
    ctx.log.debug({ hostId, addresses: addresses.length }, "trap hits ignored: the host's policy does not share them");
    return out;
  }
  out.list = share.list;
  const parsed: bans.BanAddress[] = [];
  for (const a of new Set(addresses)) {
    const r = bans.parseBanAddress(a);
    if (!r.ok || !r.value.single) out.refused++;
    else if (trapShareExemption(share, r.value.text) !== undefined) out.exempt++;
    else parsed.push(r.value);
  }
  if (out.exempt > 0)
    ctx.log.warn(
      { hostId, list: share.list, exempt: out.exempt },
      "trap hits from exempt sources not banned fleet-wide (a forged source address would otherwise cut them off)",
    );
  if (parsed.length === 0) return out;
  // Active bans on the list are left alone (their TTL runs; a renewal would reach every host).
  const active = new Set(
    (
      await ctx.db.$queryRaw<{ address: string }[]>`
        SELECT address FROM bans WHERE list = ${share.list} AND address = ANY(${parsed.map((p) => p.text)}::text[]) AND expires_at > now()`
    ).map((r) => r.address),
  );
  const fresh: bans.BanAddress[] = [];
  for (const p of parsed) {
    if (active.has(p.text)) {
      out.known++;
      continue;
    }
    const claimed = await ctx.redis.set(
      `palisade:trapshare:claim:${share.list}:${p.text}`,
      "1",
      "EX",
      CLAIM_SECONDS,
      "NX",
    );
    if (claimed === "OK") fresh.push(p);
    else out.known++;
  }
  if (fresh.length === 0) return out;
  const cap = ctx.trapBansPerMinute ?? TRAP_BANS_PER_MINUTE;
  const key = `palisade:trapshare:rate:${share.list}:${Math.floor(Date.now() / 60_000)}`;
  const [[, used]] = (await ctx.redis.multi().incrby(key, fresh.length).expire(key, 120).exec()) as [
    [Error | null, number],
  ];
  const allowed = Math.max(0, Math.min(fresh.length, cap - (used - fresh.length)));
  out.capped = fresh.length - allowed;
  if (out.capped > 0)
    ctx.log.warn(
      { hostId, list: share.list, dropped: out.capped, perMinute: cap },
      "shared trap hits over the per-minute cap: not banned fleet-wide (the trapping host's own ban holds)",
    );
  const guard = await protectedAddressDetails(
    ctx.db,
    fresh.slice(0, allowed).map((address, i) => ({ path: String(i), address })),
  );
  const bad = new Set(guard.map((d) => Number(d.path)));
  const ok = fresh.slice(0, allowed).filter((_, i) => !bad.has(i));
  out.refused += bad.size;
  if (ok.length === 0) return out;
  const hostIds = await sharingHosts(ctx.db, share.list);
  const r = await addBans(
    ctx.db,
    { name: `host:${share.hostName}`, tokenId: null },
    {
      list: share.list,
      addresses: ok.map((a) => a.text),
      ttlSeconds: share.ttlSeconds,
      reason: `port-scan trap on ${share.hostName}`,
      selector: { hostIds, labels: {} },
      source: `trap:${share.hostName}`,
      ...(ctx.maxPerHost !== undefined && { maxPerHost: ctx.maxPerHost }),
    },
  );
  const d = await publishBanChanges(ctx.redis, r.changes);
  out.banned = ok.map((a) => a.text);
  ctx.log.info(
    { hostId, list: share.list, banned: out.banned.length, hosts: r.changes.length, delivered: d.delivered },
    "shared trap hits banned fleet-wide",
  );
  return out;
}

/** Hosts whose applied policy shares trap hits to this list (the fleet ban's selector). */
export async function sharingHosts(db: Db, list: string): Promise<string[]> {
  const rows = await db.$queryRaw<{ id: string }[]>`
    SELECT h.id FROM hosts h JOIN ruleset_versions v ON v.id = h.applied_version_id
     WHERE v.document->'protections'->'portScanTrap'->'share'->>'list' = ${list}`;
  return rows.map((r) => r.id);
}
