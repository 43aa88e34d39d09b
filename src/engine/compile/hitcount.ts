// How large `recent --hitcount` may be on each target, and for iptables on which kernel.
//
// iptables: the kernel's xt_recent checks the hit count when the rule is loaded.
//   - before Linux 4.10 every address remembers ip_pkt_list_tot packets (module parameter,
//     20 by default) and a larger --hitcount is refused;
//   - from 4.10 the list is sized per rule: up to 255 (XT_RECENT_MAX_NSTAMPS 256);
//   - from 6.11 up to 65535 (measured here: kernel 6.18 + iptables 1.8.9 load 65535 and
//     refuse 65536 with "hitcount (65536) is larger than allowed maximum (65535)").
//   The kernel is the one the agent reports (`Capabilities.kernelRelease`). Without one,
//   the renderer assumes Linux 4.10 or later, which every host running Palisade's nftables
//   output has anyway (nat in the inet family needs 5.2).
// nftables: a hit count is compiled to one slot set per counted packet (compile/nft/recent.ts),
//   so it is bounded by NFT_MAX_HITCOUNT; the window must be given (`seconds`) and at most
//   NFT_MAX_HITCOUNT_SECONDS, the refill period of a slot claim.
import { isDeepStrictEqual } from "node:util";
import { error, type Diagnostic, type Path } from "../diagnostics.ts";
import { TERMINATING, normalizeAction, type Match, type Policy } from "../policy/index.ts";

type RecentMatch = NonNullable<Match["recent"]>;

/** What the compilers may know about the host they render for, from its agent's capabilities. */
export interface TargetCapabilities {
  /** `uname -r` of the host (driver `Capabilities.kernelRelease`; the agent's Hello calls it `kernel`). */
  kernelRelease?: string;
}

/** Major.minor of a kernel release string ("6.18.44-fc" -> [6, 18]), or undefined. */
export function kernelVersion(release: string | undefined): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release ?? "");
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * The largest hit count the nftables construction takes: H-1 slot sets and an (H+1)-rule
 * chain per family and counter. A packet scans the slots its source holds, so a source costs
 * at most H(H-1)/2 slot lookups per window, then one lookup a packet while it is blocked.
 * xt_recent takes 255 before Linux 6.11 and 65535 from it; real files use up to 348.
 */
export const NFT_MAX_HITCOUNT = 1024;
/**
 * Elements a list's hit-count sets may hold together, per family and counter (2^23: 127 slot
 * sets of 65,536 sources). A list counted up to H holds at most 2^23 / H sources, so a larger
 * count tracks fewer sources (recentListSize) instead of growing without bound.
 */
export const NFT_HITCOUNT_ELEMENTS = 2 ** 23;
/** One week: a slot claim is `limit rate 1/week burst 1 packets` (see compile/nft/recent.ts). */
export const NFT_MAX_HITCOUNT_SECONDS = 7 * 86400;

const atLeast = (v: [number, number], major: number, minor: number) =>
  v[0] > major || (v[0] === major && v[1] >= minor);

/** The largest --hitcount the host's xt_recent accepts, and the reason, for messages. */
export function xtRecentMaxHitcount(caps: TargetCapabilities = {}): { max: number; basis: string } {
  const v = kernelVersion(caps.kernelRelease);
  if (!v)
    return {
      max: 255,
      basis:
        "without a host's kernel release, Linux 4.10 or later is assumed, where xt_recent sizes each rule's list up to 255 packets",
    };
  const k = `kernel ${caps.kernelRelease}`;
  if (atLeast(v, 6, 11)) return { max: 65535, basis: `xt_recent on ${k} remembers at most 65535 packets per address` };
  if (atLeast(v, 4, 10)) return { max: 255, basis: `xt_recent on ${k} remembers at most 255 packets per address` };
  return {
    max: 20,
    basis: `xt_recent on ${k} (before 4.10) remembers ip_pkt_list_tot packets per address, 20 by default`,
  };
}

/** Errors for hit counts the target cannot express (on the host's kernel, for iptables). */
export function hitcountErrors(
  m: Match,
  path: Path,
  target: "nftables" | "iptables",
  caps: TargetCapabilities = {},
): Diagnostic[] {
  const r = m.recent;
  if (!r || r.hitcount === undefined || r.hitcount <= 1) return [];
  const at: Path = [...path, "recent", "hitcount"];
  if (target === "iptables") {
    const { max, basis } = xtRecentMaxHitcount(caps);
    if (r.hitcount <= max) return [];
    return [
      error(
        at,
        "unsupported_on_target",
        `recent --hitcount ${r.hitcount} is not supported on target iptables: ${basis}; lower the hit count, use a meter (hashlimit), or render with target nftables.`,
      ),
    ];
  }
  if (r.hitcount > NFT_MAX_HITCOUNT) {
    return [
      error(
        at,
        "unsupported_on_target",
        `recent hitcount ${r.hitcount} is not supported on target nftables: Palisade counts hits exactly with one set per counted packet, at most ${NFT_MAX_HITCOUNT}; lower the hit count, use a meter (a token bucket), or render with target iptables.`,
      ),
    ];
  }
  if (r.seconds === undefined) {
    return [
      error(
        [...path, "recent", "seconds"],
        "unsupported_on_target",
        `recent hitcount without seconds (hits ever counted) is not supported on target nftables: give the window in seconds (at most ${NFT_MAX_HITCOUNT_SECONDS}).`,
      ),
    ];
  }
  if (r.seconds > NFT_MAX_HITCOUNT_SECONDS) {
    return [
      error(
        [...path, "recent", "seconds"],
        "unsupported_on_target",
        `recent hitcount within ${r.seconds} seconds is not supported on target nftables: the window may be at most ${NFT_MAX_HITCOUNT_SECONDS} seconds (one week).`,
      ),
    ];
  }
  // A limit beside the count is evaluated once, in the rule that takes the action: the jump
  // that counts leaves it out (hitcountIdiomErrors accepts it only in the counting idiom).
  if (m.meter !== undefined || m.quota !== undefined || m.statistic !== undefined) {
    return [
      error(
        at,
        "unsupported_on_target",
        `recent hitcount together with meter, quota or statistic in one rule is not supported on target nftables: the hit count is kept by a jump to its own chain before the rule, which would evaluate those twice; put them in a separate rule.`,
      ),
    ];
  }
  return [];
}

/**
 * A counted rule is compiled as a jump to its counting chain followed by the rule itself,
 * both with all its matches: a match with state of its own (a token bucket, a quota, a
 * random draw or an nth counter) would be evaluated twice, on separate state or draws.
 */
const evaluatedTwice = (m: Match) =>
  m.limit !== undefined || m.meter !== undefined || m.quota !== undefined || m.statistic !== undefined;
const STATEFUL_TWICE = "limit, meter, quota or statistic";

const isCounted = (m: Match | undefined) => {
  const r = m?.recent;
  return r !== undefined && r.hitcount !== undefined && r.hitcount > 1 && (r.mode === "update" || r.mode === "rcheck");
};
const withoutRecent = (m: Match | undefined) => {
  const { recent: _recent, ...rest } = m ?? {};
  return rest;
};
/** The matches a counted rule's jump carries: all but the recent test and the limit. */
const counting = (m: Match | undefined) => {
  const { recent: _recent, limit: _limit, ...rest } = m ?? {};
  return rest;
};

/**
 * Hit-count rules of the counting idiom that count nothing themselves: an earlier rule of
 * the same chain with the same counter (list, hit count, window, side) and the same matches
 * apart from `recent` and `limit` has already counted every packet that reaches them (its
 * jump is taken by all of them, whatever its limit or action). xt_recent counts the list's
 * stamps, and a check stamps nothing unless it matches; so a second check sees the count the
 * first saw, plus the first's own stamp when it matched: it matches exactly when the first
 * check matched. Counting such a packet again (before: every rule jumped) would count it
 * twice and block at half the hit count. Returns "chain/index" of those rules.
 */
export function countedBeforeRules(policy: Policy): Set<string> {
  const stampAfter = stampAfterRules(policy);
  const atStamp = stampCountedLists(policy);
  const out = new Set<string>();
  for (const [chain, c] of Object.entries(policy.chains)) {
    const seen: { key: RecentMatch; rest: Match }[] = [];
    c.rules.forEach((rule, index) => {
      if (!isCounted(rule.match) || stampAfter.has(`${chain}/${index}`)) return;
      const r = rule.match!.recent!;
      if (atStamp.has(r.name)) return;
      const key: RecentMatch = { name: r.name, mode: "update", hitcount: r.hitcount, seconds: r.seconds, side: r.side };
      const rest = counting(rule.match);
      if (seen.some((x) => isDeepStrictEqual(x.key, key) && isDeepStrictEqual(x.rest, rest)))
        out.add(`${chain}/${index}`);
      else seen.push({ key, rest });
    });
  }
  return out;
}

/**
 * The check-then-stamp idiom (Freifunk's sshd/ntpd lists):
 *   -A c <matches> -m recent --update --seconds S --hitcount H --name L -j DROP
 *   -A c <matches> -m recent --set --name L
 * Every packet that reaches the first rule is stamped once: by --update when it matches
 * (it is then dropped), by --set right after when it does not. A packet is dropped when H
 * earlier stamps lie within S seconds. So the counted packets are again the packets that
 * reach the hit-count rule, and "H earlier ones" is the counting chain of H+1 that counts
 * this packet too (compile/nft/recent.ts), without the list-membership test (the first
 * packet is not listed yet when it is counted).
 * Accepted only exactly so: mode update, a terminating action, the set rule at the next
 * index with the same matches and side, every rule of the list part of such a pair, the
 * pairs sharing one hit count and window (one counting chain), no mark forward using it.
 * Returns "chain/index" of the hit-count rules.
 */
export function stampAfterRules(policy: Policy): Set<string> {
  const uses = new Map<string, { chain: string; index: number }[]>();
  for (const [chain, c] of Object.entries(policy.chains)) {
    c.rules.forEach((rule, index) => {
      const name = rule.match?.recent?.name;
      if (name !== undefined) uses.set(name, [...(uses.get(name) ?? []), { chain, index }]);
    });
  }
  for (const mf of policy.forwarding.markForwards) if (mf.match.recent) uses.delete(mf.match.recent.name);
  const out = new Set<string>();
  for (const list of uses.values()) {
    const counted = list.filter(({ chain, index }) => isCounted(policy.chains[chain]!.rules[index]!.match));
    if (counted.length === 0) continue;
    const first = policy.chains[counted[0]!.chain]!.rules[counted[0]!.index]!.match!.recent!;
    const paired = new Set<string>();
    const ok = counted.every(({ chain, index }) => {
      const rule = policy.chains[chain]!.rules[index]!;
      const r = rule.match!.recent!;
      const next = policy.chains[chain]!.rules[index + 1];
      const s = next?.match?.recent;
      const pairs =
        r.mode === "update" &&
        r.hitcount === first.hitcount &&
        r.seconds === first.seconds &&
        TERMINATING.has(normalizeAction(rule.action).type) &&
        s !== undefined &&
        s.mode === "set" &&
        s.name === r.name &&
        s.side === r.side &&
        isDeepStrictEqual(withoutRecent(next!.match), withoutRecent(rule.match));
      if (pairs) paired.add(`${chain}/${index}`).add(`${chain}/${index + 1}`);
      return pairs;
    });
    if (ok && list.every(({ chain, index }) => paired.has(`${chain}/${index}`)))
      for (const c of counted) out.add(`${c.chain}/${c.index}`);
  }
  return out;
}

/**
 * Lists counted where they are stamped: every rule of the list is a `set` or an `rcheck`
 * (no `update`, whose stamp depends on its own outcome, no `remove`), at least one `rcheck`
 * has a hit count, and no mark forward uses the list. Their `set` rules jump to the counting
 * chain of every hit count the list is checked with, and the `rcheck` rules only test the
 * blocked set: the count is of the list's stamps, as xt_recent keeps it, whatever stops a
 * stamped packet before it reaches a check (a real dump checks one list with 42 hits in 770 s
 * and DROP, then 348 hits in 17123 s). A list with no `set` rule at all (only checked: a
 * game server's dump checks `--rcheck --hitcount 4` on lists no rule fills) is counted so
 * too: nothing stamps it, so its blocked set stays empty and the check matches no packet,
 * as xt_recent's list stays empty (both are filled only from outside: /proc/net/xt_recent,
 * `nft add element`). Returns each list's counters (distinct hit count, window and side).
 */
export function stampCountedLists(policy: Policy): Map<string, RecentMatch[]> {
  const rules = new Map<string, RecentMatch[]>();
  for (const c of Object.values(policy.chains))
    for (const rule of c.rules) {
      const r = rule.match?.recent;
      if (r) rules.set(r.name, [...(rules.get(r.name) ?? []), r]);
    }
  for (const mf of policy.forwarding.markForwards) if (mf.match.recent) rules.delete(mf.match.recent.name);
  const out = new Map<string, RecentMatch[]>();
  for (const [name, list] of rules) {
    if (!list.every((r) => r.mode === "set" || r.mode === "rcheck")) continue;
    const counters: RecentMatch[] = [];
    for (const r of list) {
      if (r.mode !== "rcheck" || r.hitcount === undefined || r.hitcount <= 1) continue;
      const c: RecentMatch = { name, mode: "rcheck", hitcount: r.hitcount, seconds: r.seconds, side: r.side };
      if (!counters.some((x) => isDeepStrictEqual(x, c))) counters.push(c);
    }
    if (counters.length > 0) out.set(name, counters);
  }
  return out;
}

/**
 * nftables counts a hit count on the packets that reach the hit-count rule, not on the
 * list's stamps (compile/nft/recent.ts). That is xt_recent's meaning only in the counting
 * idiom: every `set` rule of the list sits in the same chain, before the hit-count rule,
 * with the same matches (apart from `recent`) and side, so the packets counted are the
 * packets stamped. Anything else (a knock list filled by other packets, a list with no
 * `set` rule, a hit count in a mark forward) would count the wrong packets: refused.
 */
export function hitcountIdiomErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  const sets: { chain: string; index: number; match: Match }[] = [];
  for (const [chain, c] of Object.entries(policy.chains)) {
    c.rules.forEach((rule, index) => {
      if (rule.match?.recent?.mode === "set") sets.push({ chain, index, match: rule.match });
    });
  }
  // Each refusal ends with what mends its own case, then the way out all of them share.
  const refuse = (at: Path, name: string, detail: string, fix: string) =>
    out.push(
      error(
        at,
        "unsupported_on_target",
        `recent hitcount on list "${name}" is not supported on target nftables here: ${detail}. nftables counts the hits on this rule's own packets, not on the stamps the list's set rules record, so it would match sources xt_recent would not. ${fix}; or render with target iptables.`,
      ),
    );
  const stampAfter = stampAfterRules(policy);
  const atStamp = stampCountedLists(policy);
  const countedBefore = countedBeforeRules(policy);
  // Per list, its first counter (hit count, window, side) and whether an update rule uses it.
  const counterOf = (r: RecentMatch) => ({ hitcount: r.hitcount, seconds: r.seconds, side: r.side });
  const firstCounter = new Map<string, ReturnType<typeof counterOf>>();
  const updates = new Map<string, { chain: string; index: number; counted: boolean }[]>();
  const removesOf = new Map<string, { chain: string; index: number }>();
  for (const [chain, c] of Object.entries(policy.chains))
    c.rules.forEach((rule, index) => {
      const r = rule.match?.recent;
      if (!r) return;
      if (isCounted(rule.match) && !firstCounter.has(r.name)) firstCounter.set(r.name, counterOf(r));
      if (r.mode === "remove" && !removesOf.has(r.name)) removesOf.set(r.name, { chain, index });
      if (r.mode === "update")
        updates.set(r.name, [...(updates.get(r.name) ?? []), { chain, index, counted: isCounted(rule.match) }]);
    });
  // A list counted where it is stamped: its set rules are the ones with the jump.
  for (const s of sets)
    if (atStamp.has(s.match.recent!.name) && evaluatedTwice(s.match))
      out.push(
        error(
          ["chains", s.chain, "rules", s.index, "match", "recent"],
          "unsupported_on_target",
          `recent set on list "${s.match.recent!.name}" together with ${STATEFUL_TWICE} is not supported on target nftables: the list's hits are counted by a jump before this rule, which would evaluate those twice (a random draw would stamp packets it did not count); put them in a separate rule before it.`,
        ),
      );
  for (const [chain, c] of Object.entries(policy.chains)) {
    c.rules.forEach((rule, index) => {
      if (!isCounted(rule.match)) return;
      const r = rule.match!.recent!;
      const at: Path = ["chains", chain, "rules", index, "match", "recent", "hitcount"];
      // A limit is left out of the counting jump: only where the jump counts this rule's
      // packets (the counting idiom); the other forms would evaluate it twice.
      if (rule.match!.limit !== undefined && (stampAfter.has(`${chain}/${index}`) || atStamp.has(r.name))) {
        out.push(
          error(
            [...at.slice(0, -2), "limit"],
            "unsupported_on_target",
            `recent hitcount on list "${r.name}" together with limit is not supported on target nftables here: the list is counted where it is stamped or by a set rule after this rule, and the limit would be evaluated twice or change which packets are stamped; put the limit in a separate rule, or render with target iptables.`,
          ),
        );
        return;
      }
      if (stampAfter.has(`${chain}/${index}`)) {
        // Counted as H+1 (see stampAfterRules).
        if (r.hitcount! + 1 > NFT_MAX_HITCOUNT)
          out.push(
            error(
              at,
              "unsupported_on_target",
              `recent hitcount ${r.hitcount} with the list's set rule after this rule is not supported on target nftables: Palisade counts it as ${r.hitcount! + 1} packets (this one and ${r.hitcount} earlier), at most ${NFT_MAX_HITCOUNT}; lower the hit count, or render with target iptables.`,
            ),
          );
        return;
      }
      // xt_recent's update stamps the list when it matches, and every check of the list
      // counts that stamp: a second counter on the list would see the stamps of the first
      // one's matching updates (and the first the second's), an update without a hit count
      // the stamps of its every match; nftables counts each counter on its own rule's
      // packets, once each, so it would match later than xt_recent (--set, then --update
      // --hitcount 3 -j LOG, then --update --hitcount 6 -j DROP: 8 pings, xt_recent drops
      // from the 4th, such a rendering from the 6th). One counter per list with an update.
      const ups = updates.get(r.name) ?? [];
      if (ups.length > 0) {
        const plain = ups.find((u) => !u.counted);
        const other = !isDeepStrictEqual(counterOf(r), firstCounter.get(r.name));
        if (plain || other) {
          out.push(
            error(
              at,
              "unsupported_on_target",
              `recent hitcount on list "${r.name}" is not supported on target nftables here: ${
                plain
                  ? `the update rule at chains.${plain.chain}.rules[${plain.index}] has no hit count`
                  : `another rule of the list counts it with another hit count, window or side (${JSON.stringify(firstCounter.get(r.name))})`
              }, and xt_recent's --update stamps the list whenever it matches, so each check of the list also counts the stamps of the other rule's matching updates. nftables counts a hit count on its own rule's packets only, once each, so it would match later than xt_recent (drop fewer packets). Give every hit-count rule of the list one hit count and window, use one list per counter (with its own set rule), or render with target iptables.`,
            ),
          );
          return;
        }
      }
      const mine = sets.filter((s) => s.match.recent!.name === r.name);
      // A list only checked is counted where it is stamped: never, so the check matches no packet.
      if (mine.length === 0 && atStamp.has(r.name)) return;
      if (mine.length === 0)
        return void refuse(
          at,
          r.name,
          "no rule sets the list",
          `Add a rule with recent set on list "${r.name}" and this rule's other matches, in chain ${chain} before this rule (the SYN-flood idiom)`,
        );
      const bad = mine.find(
        (s) =>
          s.chain !== chain ||
          s.index >= index ||
          s.match.recent!.side !== r.side ||
          !isDeepStrictEqual(withoutRecent(s.match), counting(rule.match)),
      );
      if (bad) {
        const fixes = [
          ...(bad.chain !== chain || bad.index >= index ? [`move it into chain ${chain}, before this rule`] : []),
          ...(bad.match.recent!.side !== r.side ? [`give it this rule's side (${r.side})`] : []),
          ...(!isDeepStrictEqual(withoutRecent(bad.match), counting(rule.match))
            ? [
                "give it this rule's matches apart from recent and limit (for a knock sequence, where other packets set the list, use the portKnock preset, protections.portKnock)",
              ]
            : []),
        ];
        refuse(
          at,
          r.name,
          `the set rule at chains.${bad.chain}.rules[${bad.index}] is not in the same chain before this rule with the same matches`,
          `For the set rule at chains.${bad.chain}.rules[${bad.index}]: ${fixes.join("; ")}`,
        );
        return;
      }
      // A rule between the set rule and this one that may end the packet's way through the
      // chain (a verdict, or a jump whose chain may give one) lets stamped packets skip this
      // rule's count: xt_recent would count their stamps, nftables would not. A list counted
      // where it is stamped (stampCountedLists) counts them all.
      if (atStamp.has(r.name)) return;
      // A rule an earlier one with its counter already counts for only tests the outcome: the
      // packets a rule between stops were counted (and stamped, under xt_recent) before it.
      if (countedBefore.has(`${chain}/${index}`)) return;
      // Each set rule stamps the packet (xt_recent adds a stamp to a listed address too), and a
      // remove empties the address's stamps: the count would differ from this rule's packets.
      const removes = removesOf.get(r.name);
      if (removes) {
        refuse(
          at,
          r.name,
          `the remove rule at chains.${removes.chain}.rules[${removes.index}] clears the list's stamps, which nftables' count of this rule's packets would not forget`,
          `Drop the remove rule at chains.${removes.chain}.rules[${removes.index}], or let it clear a list of its own that no hit count reads`,
        );
        return;
      }
      if (mine.length > 1) {
        const where = `chains.${chain}.rules[${mine.map((x) => x.index).join("], [")}]`;
        refuse(
          at,
          r.name,
          `the set rules at ${where} each stamp the packet, so xt_recent counts ${mine.length} stamps per packet where nftables counts one`,
          `Keep one set rule of the list before this rule (merge ${where} into one)`,
        );
        return;
      }
      const first = Math.min(...mine.map((s) => s.index));
      const stop = c.rules.findIndex((x, k) => {
        if (k <= first || k >= index) return false;
        const t = normalizeAction(x.action).type;
        return TERMINATING.has(t) || t === "jump";
      });
      if (stop !== -1)
        refuse(
          at,
          r.name,
          `chains.${chain}.rules[${stop}], between the list's set rule and this rule, may stop packets the set rule stamped, so they would not be counted here`,
          `Move chains.${chain}.rules[${stop}] after this rule or before the list's set rule at chains.${chain}.rules[${first}], or move that set rule to just before this rule`,
        );
    });
  }
  policy.forwarding.markForwards.forEach((mf, i) => {
    if (isCounted(mf.match))
      refuse(
        ["forwarding", "markForwards", i, "match", "recent", "hitcount"],
        mf.match.recent!.name,
        "a mark forward is not in a chain with the list's set rule",
        "Take the hit count out of the mark forward's match (nothing stamps the list before a mark forward); count in a chain's rule instead, after the list's set rule with the same matches",
      );
  });
  return out;
}
