// quota2 -> named nft objects.
//   down-counting quota -> `quota NAME { until LIMIT bytes }`, rules `quota name "NAME"`:
//     matches while budget remains; a quota only ever used inverted (`! --quota`) is
//     declared `over` instead (matches once the budget is spent). nft decides
//     until/over per object, so one quota cannot be used both ways.
//   --grow -> `counter quota_NAME_grow_MODE` (MODE bytes|packets; always matches, counts
//     packets and bytes; starts at the quota's limit when one is given, as quota2's
//     initial value). The name says what the object is, so the agent reading the kernel
//     alone reports it as a growing quota of that mode (and resets it as one) instead of
//     as a plain counter. User counters may not take a name of that shape.
//   packet budget (mode packets) -> the one element of the dynamic set quota_NAME_packets
//     (key `meta mark & 0x0`: every packet has the same key), carrying a token bucket
//     `limit rate 1/week burst N packets`: an nft quota counts bytes only, a limit counts
//     packets. Measured: exactly N packets take a token, the next does not; a token that
//     is missing is not taken, so an exhausted budget stays exhausted, as in quota2. The
//     bucket refills one packet a week (the slowest rate nft has) and holds at most
//     30,500 packets (a week of nanoseconds per packet in a u64; the kernel refuses more).
//     The element keeps its state across applies (the agent keeps dynamic sets' elements).
//   --no-change on a packet budget -> the set quota_NAME_spent, filled by the packet that
//     takes the budget's last unit: the counting rules become two rules, the bucket of
//     N-1 tokens, then `add @spent` for the N-th packet (so they need a terminating
//     action: a packet that matched the first must not reach the second), and a
//     --no-change rule tests `!= @spent` (remaining >= 1, quota2's test for one packet).
//   --no-change on a growing counter -> nothing (always matches, counts nothing), as in quota2.
// Refused: --no-change on a byte budget (an nft quota adds every packet it evaluates; no
// read-only test of it exists), and a bucket (`grow` on a rule of a budget: no rule can give
// an nft quota bytes back); iptables with xtables-addons quota2 does both.
import type { Path } from "../../diagnostics.ts";
import { isIdentifier, type NamedSet } from "../../nft/index.ts";
import { quotaRuleFills, type Policy } from "../../policy/index.ts";
import type { QuotaMatch } from "./deps.ts";
import { FAMILY, TABLE, type Ctx } from "./context.ts";

export type QuotaMode = "bytes" | "packets";

/** The nft counter a growing quota renders as. */
export const growCounterName = (quota: string, mode: QuotaMode) => `quota_${quota}_grow_${mode}`;

const GROW_COUNTER = /^quota_([A-Za-z][A-Za-z0-9_]*)_grow_(bytes|packets)$/;

/** The growing quota an nft counter name stands for, if it has that shape. */
export function parseGrowCounterName(name: string): { quota: string; mode: QuotaMode } | undefined {
  const m = GROW_COUNTER.exec(name);
  return m ? { quota: m[1]!, mode: m[2] as QuotaMode } : undefined;
}

/** The most packets one token bucket holds: a week of nanoseconds per packet fits a u64 30,500 times (measured: 30,500 loads, 31,000 is refused). */
export const PACKET_QUOTA_MAX = 30_500;
/** The same key for every packet: a packet budget is the one element of its set. */
const ONE_KEY = "meta mark & 0x0";
export const packetBucketSet = (quota: string) => `quota_${quota}_packets`;
export const packetSpentSet = (quota: string) => `quota_${quota}_spent`;

interface QuotaUse {
  normal: boolean;
  inverted: boolean;
  /** Rules that test without consuming. */
  noChange: boolean;
}

const USES = new WeakMap<Policy, Map<string, QuotaUse>>();

function quotaUses(policy: Policy): Map<string, QuotaUse> {
  const cached = USES.get(policy);
  if (cached) return cached;
  const use = new Map<string, QuotaUse>();
  for (const chain of Object.values(policy.chains)) {
    for (const rule of chain.rules) {
      const q = rule.match?.quota;
      if (!q) continue;
      const u = use.get(q.name) ?? { normal: false, inverted: false, noChange: false };
      if (q.noChange) u.noChange = true;
      else if (q.invert) u.inverted = true;
      else u.normal = true;
      use.set(q.name, u);
    }
  }
  USES.set(policy, use);
  return use;
}

/** Declare every quota of the policy (referenced or not: the agent reads them all). */
export function declareQuotas(policy: Policy, ctx: Ctx): void {
  const use = quotaUses(policy);
  for (const [name, def] of Object.entries(policy.quotas)) {
    const path = ["quotas", name];
    if (!isIdentifier(name)) {
      ctx.error(
        path,
        "nft_quota_name",
        `quota name "${name}" cannot name an nftables object: use a letter, then letters, digits or '_' (and not an nft keyword)`,
      );
      continue;
    }
    if (def.grow) {
      const start = def.limit ? (def.mode === "packets" ? { packets: def.limit } : { bytes: def.limit }) : {};
      ctx.declareCounter(
        {
          kind: "counter",
          family: FAMILY,
          table: TABLE,
          name: growCounterName(name, def.mode),
          ...start,
          comment: def.comment,
        },
        `quota "${name}"`,
        path,
      );
      continue;
    }
    if (def.mode === "packets") {
      const limit = def.limit ?? 0;
      if (limit < 1 || limit > PACKET_QUOTA_MAX) {
        ctx.error(
          [...path, "limit"],
          "nft_quota_packets_limit",
          `a packet budget on nftables is a token bucket of 1 to ${PACKET_QUOTA_MAX} packets (the kernel's limit counts a week of nanoseconds per packet in 64 bits); ${limit} is ${limit < 1 ? "an empty budget: drop the match (or use the rule without it)" : "too many: count bytes, or grow a packet counter (grow: true)"}`,
        );
        continue;
      }
      const set = (name: string): NamedSet => ({
        kind: "set",
        family: FAMILY,
        table: TABLE,
        name,
        type: "mark",
        flags: ["dynamic"],
        size: 1,
        ...(def.comment ? { comment: def.comment } : {}),
      });
      ctx.declareSet(set(packetBucketSet(name)), `quota "${name}"`, path);
      if (use.get(name)?.noChange) ctx.declareSet(set(packetSpentSet(name)), `quota "${name}"`, path);
      continue;
    }
    const u = use.get(name);
    if (u?.normal && u.inverted) {
      // Refused by checkTargetSupport (match.quotaMixedInvert).
      continue;
    }
    ctx.declareQuota(
      {
        kind: "quota",
        family: FAMILY,
        table: TABLE,
        name,
        mode: u?.inverted ? "over" : "until",
        bytes: def.limit ?? 0,
        comment: def.comment,
      },
      `quota "${name}"`,
      path,
    );
  }
}

/**
 * The quota's expressions: `parts` go into the rule; `split` (a counting rule of a packet
 * budget that --no-change rules also test) are the last expression of two rules, tried in
 * order, which only a terminating action allows.
 */
export function quotaParts(q: QuotaMatch, ctx: Ctx, path: Path): { parts: string[]; split?: string[] } {
  const def = ctx.policy.quotas[q.name];
  if (!def) {
    ctx.error([...path, "name"], "nft_unknown_quota", `quota "${q.name}" is not declared under quotas`);
    return { parts: [] };
  }
  if (!isIdentifier(q.name)) return { parts: [] };
  // A bucket's filling rule: refused by checkTargetSupport (match.quotaBucket).
  if (quotaRuleFills(def, q)) return { parts: [] };
  // quota2's `!` has no effect on a growing counter; --no-change leaves it unchanged.
  if (def.grow) return { parts: q.noChange ? [] : [`counter name "${growCounterName(q.name, def.mode)}"`] };
  if (def.mode === "bytes") {
    // --no-change on a byte budget: refused by checkTargetSupport (match.quotaNoChange).
    return { parts: q.noChange ? [] : [`quota name "${q.name}"`] };
  }
  const n = def.limit ?? 0;
  const spent = `@${packetSpentSet(q.name)}`;
  if (q.noChange) return { parts: [`${ONE_KEY} ${q.invert ? "" : "!= "}${spent}`] };
  const bucket = (tokens: number, over: boolean) =>
    `update @${packetBucketSet(q.name)} { ${ONE_KEY} limit rate ${over ? "over " : ""}1/week burst ${tokens} packets }`;
  if (!quotaUses(ctx.policy).get(q.name)?.noChange) return { parts: [bucket(n, q.invert === true)] };
  if (q.invert) {
    ctx.error(
      path,
      "nft_quota_no_change_inverted",
      `quota "${q.name}" is tested with --no-change elsewhere; on nftables its counting rules cannot also be inverted (the budget's last packet is told apart by a second rule, which would then match the wrong packets): test the exhausted budget with a --no-change rule instead`,
    );
    return { parts: [] };
  }
  // N-1 tokens, then the N-th packet marks the budget spent (nft reads `burst 0` as 5).
  const last = `${ONE_KEY} != ${spent} add ${spent} { ${ONE_KEY} }`;
  return { parts: [], split: n > 1 ? [bucket(n - 1, false), last] : [last] };
}
