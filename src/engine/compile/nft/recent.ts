// `-m recent` and per-source meters (hashlimit) as dynamic sets.
//
// recent list NAME -> sets recent_NAME_v4 / recent_NAME_v6 whose timeout is the
// list's `seconds` (an element expires when the address has not been seen for that
// long, which is what `--rcheck/--update --seconds N` asks).
//   set    -> update @s { ip saddr }            (add, or refresh the timeout)
//   rcheck -> ip saddr @s
//   update -> ip saddr @s update @s { ip saddr }
//   remove -> ip saddr @s delete @s { ip saddr }   (matches if it was listed)
// nftables keeps one timeout per set. A list checked with several windows (rcheck/update
// with different `seconds`) gets one set per window: recent_NAME_v4 carries the longest,
// recent_NAME_<S>s_v4 each shorter window S. Every rule that stamps the list (set, and
// update when it matches) refreshes all of them and remove deletes from all, so "the
// address is in the set of window S" is exactly "its last stamp is at most S seconds old",
// which is what xt_recent tests with --seconds S (without --hitcount only the last stamp
// counts).
//
// `--hitcount H --seconds S` (update or rcheck) is counted exactly, not with a token bucket
// (a bucket of burst H-1 lets the burst AND its refill through within S seconds). Each
// family gets a chain recent_NAME_hcH_Ss_v4 with H-1 "slot" sets and a "blocked" set, all
// with element timeout S, and the rule becomes two rules:
//   <matches> jump recent_NAME_hcH_Ss_v4          (count this packet)
//   <matches> ip saddr @recent_NAME_hcH_Ss_v4_blocked <action>
// The chain, for one packet of source A:
//   A in blocked         -> refresh A's timeout there (S again), return
//   claim slot k (1..H-1): add @slot_k { ip saddr limit rate 1/week burst 1 packets } return
//                          (a new element carries one token: the first packet takes it; the
//                          element expires S after it was added, `add` never refreshes it.
//                          The claim is one atomic kernel operation, so two CPUs cannot
//                          both count one slot)
//   all slots held       -> add A to blocked (the H-th packet within S seconds)
// Semantics: a packet matches when its source is blocked or when H-1 of the source's
// packets were counted within the last S seconds; a source stays blocked until it has
// sent nothing through the rule for S seconds. So no window of S seconds lets more than
// H-1 packets of one source through unmatched. See docs/engine.md for the comparison
// with xt_recent.
import type { Path } from "../../diagnostics.ts";
import type { NamedSet } from "../../nft/index.ts";
import { IDENTIFIER_RE } from "../../nft/names.ts";
import { parseRate, type Policy } from "../../policy/index.ts";
import { NFT_HITCOUNT_ELEMENTS, NFT_MAX_HITCOUNT, NFT_MAX_HITCOUNT_SECONDS, stampAfterRules } from "../hitcount.ts";
import type { ConnlimitMatch, MeterMatch, RecentMatch } from "./deps.ts";
import { FAMILY, TABLE, type Ctx, type Fam } from "./context.ts";

export const RECENT_SIZE = 65536;

const suffix = (fam: Fam) => (fam === "ipv4" ? "v4" : "v6");
const addrKey = (fam: Fam, side: "saddr" | "daddr") => `${fam === "ipv4" ? "ip" : "ip6"} ${side}`;
const addrType = (fam: Fam) => (fam === "ipv4" ? "ipv4_addr" : "ipv6_addr");

/** A set of source addresses the rules add to, each element expiring after `timeout` seconds. */
const dynamicAddrSet = (name: string, fam: Fam, timeout: number, size: number): NamedSet => ({
  kind: "set",
  family: FAMILY,
  table: TABLE,
  name,
  type: addrType(fam),
  flags: ["dynamic", "timeout"],
  timeout,
  size,
});

/**
 * Per recent list, the timeout of its own set (the map's value), and the shorter windows
 * its rules check, which get a set each (`extraWindows`, ascending).
 */
export class RecentPlan extends Map<string, number | undefined> {
  readonly extraWindows = new Map<string, number[]>();
  /** Sources a list and its hit-count sets hold (recentListSize of its largest hit count). */
  readonly sizes = new Map<string, number>();
  sizeOf(name: string): number {
    return this.sizes.get(name) ?? RECENT_SIZE;
  }
}

/**
 * Sources a list counted up to `hits` tracks: its slot sets hold at most NFT_HITCOUNT_ELEMENTS
 * together. The slot and blocked sets are as large as the list, so they cannot fill while
 * the list has room (a source is counted only once it is on the list).
 */
export function recentListSize(hits: number): number {
  return Math.min(RECENT_SIZE, Math.floor(NFT_HITCOUNT_ELEMENTS / hits));
}

/** The timeout of every recent list, and the extra window sets of lists checked with several. */
export function planRecentTimeouts(policy: Policy): RecentPlan {
  const windows = new Map<string, Set<number>>();
  const hitWindow = new Map<string, number>();
  const checked = new Set<string>();
  const names = new Set<string>();
  const maxHits = new Map<string, number>();
  const stampAfter = stampAfterRules(policy);
  for (const [chainName, chain] of Object.entries(policy.chains)) {
    for (const [index, rule] of chain.rules.entries()) {
      const r = rule.match?.recent;
      if (!r) continue;
      names.add(r.name);
      // A hitcount rule counts in its own sets; its seconds is their window.
      const counted = r.hitcount !== undefined && r.hitcount > 1;
      if (counted) hitWindow.set(r.name, Math.max(hitWindow.get(r.name) ?? 0, r.seconds ?? 0));
      // The check-then-stamp idiom counts H+1 (compile/hitcount.ts stampAfterRules).
      const hits = r.hitcount! + (stampAfter.has(`${chainName}/${index}`) ? 1 : 0);
      if (counted) maxHits.set(r.name, Math.max(maxHits.get(r.name) ?? 0, hits));
      else if (r.mode !== "set") checked.add(r.name);
      if (counted || r.seconds === undefined) continue;
      windows.set(r.name, (windows.get(r.name) ?? new Set()).add(r.seconds));
    }
  }
  const plan = new RecentPlan();
  for (const name of names) {
    const w = [...(windows.get(name) ?? [])].sort((a, b) => a - b);
    // A list that is only `set` and counted (the SYN-flood idiom) is never looked up itself:
    // let its addresses expire with the hit-count window instead of filling the set forever.
    plan.set(name, w.at(-1) ?? (checked.has(name) ? undefined : hitWindow.get(name) || undefined));
    if (w.length > 1) plan.extraWindows.set(name, w.slice(0, -1));
    const hits = maxHits.get(name);
    if (hits !== undefined) plan.sizes.set(name, recentListSize(hits));
  }
  return plan;
}

/** A recent hit count, compiled: the chain the packet is counted in and the check that matches. */
export interface HitcountCheck {
  chain: string;
  /** The match that is true once the source is blocked (none for a stamp rule that only counts). */
  member?: string;
}

/**
 * A `set` rule of a list counted where it is stamped (compile/hitcount.ts stampCountedLists):
 * the chain it jumps to after stamping, which counts the packet in every counter of the list
 * (its own counting chain when there is one, else a chain of jumps to each).
 */
export function stampCountChain(
  name: string,
  counters: RecentMatch[],
  fam: Fam,
  ctx: Ctx,
  path: Path,
  size: number,
): HitcountCheck | undefined {
  const chains: string[] = [];
  for (const c of counters) {
    const check = hitcountCheck(c, fam, ctx, path, size);
    if (!check) return undefined;
    chains.push(check.chain);
  }
  if (chains.length === 1) return { chain: chains[0]! };
  const chain = `recent_${name}_stamp_${suffix(fam)}`;
  if (!IDENTIFIER_RE.test(chain)) {
    ctx.error(
      [...path, "name"],
      "nft_recent_name_too_long",
      `recent list name "${name}" is too long for its stamp chain (${chain} has more than 63 characters); shorten it`,
    );
    return undefined;
  }
  ctx.declareChain(
    {
      kind: "chain",
      family: FAMILY,
      table: TABLE,
      name: chain,
      comment: `recent ${name}: count each stamp in every hit count the list is checked with`,
    },
    chains.map((c) => ({ body: `jump ${c}`, comment: `recent ${name}: count in ${c}` })),
    `recent "${name}" stamps`,
    path,
  );
  return { chain };
}

/** A comment with its detail when nft's 128 bytes take it (a long list name leaves only the head). */
const chainComment = (head: string, detail: string) => (Buffer.byteLength(head + detail) <= 128 ? head + detail : head);

/** Slot claims: a new element has one token, and refilling one takes longer than any window. */
const SLOT_CLAIM = "limit rate 1/week burst 1 packets";

export function hitcountCheck(
  r: RecentMatch,
  fam: Fam,
  ctx: Ctx,
  path: Path,
  size: number = RECENT_SIZE,
): HitcountCheck | undefined {
  const hits = r.hitcount!;
  const seconds = r.seconds;
  // Refused by checkTargetSupport (compile/hitcount.ts) with the reason.
  if (seconds === undefined || hits > NFT_MAX_HITCOUNT || seconds > NFT_MAX_HITCOUNT_SECONDS) return undefined;
  const key = addrKey(fam, r.side === "destination" ? "daddr" : "saddr");
  const base = `recent_${r.name}_hc${hits}_${seconds}s${r.side === "destination" ? "_dst" : ""}_${suffix(fam)}`;
  const blocked = `${base}_blocked`;
  if (!IDENTIFIER_RE.test(blocked)) {
    ctx.error(
      [...path, "name"],
      "nft_recent_name_too_long",
      `recent list name "${r.name}" is too long for its hit-count sets (${blocked} has more than 63 characters); shorten it`,
    );
    return undefined;
  }
  const set = (name: string): NamedSet => dynamicAddrSet(name, fam, seconds, size);
  const owner = `recent "${r.name}" hitcount ${hits}`;
  const what = `recent ${r.name}: hitcount ${hits} within ${seconds}s`;
  ctx.declareSet(set(blocked), owner, path);
  const rules = [
    {
      body: `${key} @${blocked} update @${blocked} { ${key} } return`,
      comment: `${what}: a blocked source stays blocked while it sends`,
    },
  ];
  for (let k = 1; k < hits; k++) {
    ctx.declareSet(set(`${base}_${k}`), owner, path);
    rules.push({
      body: `add @${base}_${k} { ${key} ${SLOT_CLAIM} } return`,
      comment: `${what}: hit ${k} of ${hits - 1} allowed`,
    });
  }
  rules.push({ body: `add @${blocked} { ${key} }`, comment: `${what}: hit ${hits}, block` });
  ctx.declareChain(
    {
      kind: "chain",
      family: FAMILY,
      table: TABLE,
      name: base,
      comment: chainComment(`${what} (${fam === "ipv4" ? "IPv4" : "IPv6"})`, `: counts each packet, fills @${blocked}`),
    },
    rules,
    owner,
    path,
  );
  return { chain: base, member: `${key} @${blocked}` };
}

/** The list's own set recent_NAME_v4/_v6, declared once with the list's agreed timeout. */
function declareList(
  r: RecentMatch,
  fam: Fam,
  ctx: Ctx,
  path: Path,
  timeouts: RecentPlan,
): { name: string; timeout: number | undefined } {
  const timeout = timeouts.get(r.name);
  const name = `recent_${r.name}_${suffix(fam)}`;
  const set: NamedSet = {
    kind: "set",
    family: FAMILY,
    table: TABLE,
    name,
    type: addrType(fam),
    flags: timeout ? ["dynamic", "timeout"] : ["dynamic"],
    size: timeouts.sizeOf(r.name),
  };
  if (timeout) set.timeout = timeout;
  ctx.declareSet(set, `recent list "${r.name}"`, path);
  return { name, timeout };
}

/**
 * A hit-count rule also requires its source to be on the list. In the counting idiom (the
 * only one accepted, compile/hitcount.ts) the list's set rule has just added it, so this
 * changes nothing there, but it keeps an unlisted source (the list's set full) uncounted.
 */
export function hitcountListMember(r: RecentMatch, fam: Fam, ctx: Ctx, path: Path, timeouts: RecentPlan): string {
  const { name } = declareList(r, fam, ctx, path, timeouts);
  return `${addrKey(fam, r.side === "destination" ? "daddr" : "saddr")} @${name}`;
}

export function recentParts(r: RecentMatch, fam: Fam, ctx: Ctx, path: Path, timeouts: RecentPlan): string[] {
  const key = addrKey(fam, r.side === "destination" ? "daddr" : "saddr");
  if (r.hitcount !== undefined && r.hitcount > 1) {
    ctx.error(
      [...path, "hitcount"],
      "nft_recent_hitcount_mode",
      `recent hitcount needs mode update or rcheck (it counts hits of a listed address)`,
    );
    return [];
  }
  const { name, timeout } = declareList(r, fam, ctx, path, timeouts);
  // Without a timeout nft refuses `update` (it refreshes a timeout); `add` is the same then.
  const refresh = timeout ? "update" : "add";
  // The shorter windows' sets (a list checked with several windows): stamped and removed with the list.
  const extra = (timeouts.extraWindows.get(r.name) ?? []).map((s) => {
    const set = dynamicAddrSet(`recent_${r.name}_${s}s_${suffix(fam)}`, fam, s, timeouts.sizeOf(r.name));
    ctx.declareSet(set, `recent list "${r.name}" window ${s}s`, path);
    return { seconds: s, name: set.name };
  });
  const stamp = [`${refresh} @${name} { ${key} }`, ...extra.map((e) => `update @${e.name} { ${key} }`)];
  const checkSet = extra.find((e) => e.seconds === r.seconds)?.name ?? name;
  switch (r.mode) {
    case "set":
      return stamp;
    case "rcheck":
      return [`${key} @${checkSet}`];
    case "update":
      return [`${key} @${checkSet}`, ...stamp];
    case "remove":
      return [`${key} @${name}`, `delete @${name} { ${key} }`, ...extra.map((e) => `delete @${e.name} { ${key} }`)];
  }
}

/**
 * connlimit: `add @set { ip saddr [& mask] ct count [over] N }`. The set (one per rule and
 * family) holds one connection list per address or prefix; the kernel adds the packet's
 * connection to its key's list and compares the count, as xt_connlimit does.
 */
export function connlimitPart(c: ConnlimitMatch, fam: Fam, ctx: Ctx, path: Path): string | undefined {
  const full = fam === "ipv4" ? 32 : 128;
  const prefix = c.prefix ?? full;
  if (prefix > full) return undefined;
  const where = path
    .slice(1, 4)
    .map(String)
    .join("_")
    .replace(/[^A-Za-z0-9_]/g, "_");
  const name = `connlimit_${where}_${suffix(fam)}`;
  ctx.declareSet(
    { kind: "set", family: FAMILY, table: TABLE, name, type: addrType(fam), flags: ["dynamic"], size: RECENT_SIZE },
    "connlimit",
    path,
  );
  const mask = prefix === full ? "" : ` & ${maskText(fam, prefix)}`;
  return `add @${name} { ${addrKey(fam, c.key)}${mask} ct count ${c.over ? "over " : ""}${c.count} }`;
}

function maskText(fam: Fam, prefix: number): string {
  if (fam === "ipv4") {
    const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    return [24, 16, 8, 0].map((s) => (m >>> s) & 0xff).join(".");
  }
  const groups: string[] = [];
  for (let g = 0; g < 8; g++) {
    const bits = Math.max(0, Math.min(16, prefix - g * 16));
    groups.push((bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff).toString(16));
  }
  return groups.join(":");
}

export function meterParts(m: MeterMatch, fam: Fam, ctx: Ctx, path: Path): string[] {
  const name = `meter_${m.name}_${suffix(fam)}`;
  ctx.declareSet(dynamicAddrSet(name, fam, m.timeoutSeconds, m.size), `meter "${m.name}"`, path);
  const { count, per } = parseRate(m.rate);
  const burst = m.burst !== undefined ? ` burst ${m.burst} packets` : "";
  return [`update @${name} { ${addrKey(fam, m.key)} limit rate ${m.over ? "over " : ""}${count}/${per}${burst} }`];
}
