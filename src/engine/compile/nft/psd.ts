// `-m psd` (xt_psd, scanlogd's detector) as dynamic sets. Per rule and family (ID: psdId(),
// a digest of the rule's chain and match, so the names survive rules inserted above):
//
//   set psd_ID_ports_v4  saddr . dport   ports this source touched (a port seen again within
//                                        the delay refreshes its element: it is "known")
//   set psd_ID_seen_v4   saddr           sources with a scan sequence running
//   set psd_ID_w_v4      saddr           the weight budget: an element carries a token bucket
//                                        (`limit rate 1/week burst T-1 packets`); a new port
//                                        takes `weight` tokens, one per `update` statement
//   set psd_ID_hit_v4    saddr           sources whose weight reached the threshold
//
// Every element's timeout is the delay threshold and is refreshed only by a new port, so
// a sequence ends when no new port came for the delay, as xt_psd's timestamp does. The
// rule becomes two rules (as a recent hit count does): `jump psd_ID_v4` counts the packet,
// then `saddr @hit saddr . dport != @ports` (a new port of a detected source) runs the
// action. The chain, for one packet:
//   known port                     -> refresh it, return (never a match)
//   TCP with ACK or RST            -> return (xt_psd: an outgoing connection's reply)
//   source detected                -> refresh, return (the rule matches: new port)
//   source not in @seen            -> goto psd_ID_v4_first: take min(weight, T-1) tokens,
//                                     add to @seen, remember the port (never a match)
//   take the port's weight         -> all tokens there: goto psd_ID_v4_add (remember port)
//   a token missing                -> add to @hit (the rule matches)
// A port that matched is not remembered (nor is it in xt_psd), so a retransmission matches
// again. No rule looks @w up: on Linux 6.18 a set lookup also runs the element's limit
// (measured: it takes a token); whether a sequence runs is asked of @seen.
import { canonicalJson, sha256Hex } from "../../checksum.ts";
import type { Path } from "../../diagnostics.ts";
import type { NamedSet } from "../../nft/index.ts";
import type { Match, Policy } from "../../policy/index.ts";
import { FAMILY, TABLE, type Ctx, type Fam } from "./context.ts";

export type PsdMatch = NonNullable<NonNullable<Match["xt"]>["psd"]>;

/** xt_psd's defaults (libxt_psd psd_mt_init). */
export const PSD_DEFAULTS = { weightThreshold: 21, delayThreshold: 300, loPortsWeight: 3, hiPortsWeight: 1 } as const;
/** One `update` statement per unit of weight: keep a rule's statement list short. */
export const PSD_MAX_WEIGHT = 16;
/** The token bucket holds threshold-1 weeks of nanoseconds in a u64: far below overflow. */
export const PSD_MAX_THRESHOLD = 10_000;
export const PSD_SET_SIZE = 65536;

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** The parameters as the kernel sets use them: weights divided by their gcd (exact: W >= T iff W/g >= ceil(T/g)). */
export function psdPlan(p: PsdMatch): { threshold: number; lo: number; hi: number; delayMs: number } {
  const t = p.weightThreshold ?? PSD_DEFAULTS.weightThreshold;
  const lo = p.loPortsWeight ?? PSD_DEFAULTS.loPortsWeight;
  const hi = p.hiPortsWeight ?? PSD_DEFAULTS.hiPortsWeight;
  const g = gcd(lo, hi);
  return {
    threshold: Math.ceil(t / g),
    lo: lo / g,
    hi: hi / g,
    delayMs: (p.delayThreshold ?? PSD_DEFAULTS.delayThreshold) * 10,
  };
}

/** Why the nftables rendering cannot hold these parameters, or undefined. */
export function psdProblem(p: PsdMatch): string | undefined {
  const plan = psdPlan(p);
  if (plan.lo > PSD_MAX_WEIGHT || plan.hi > PSD_MAX_WEIGHT)
    return `psd weights ${p.loPortsWeight ?? PSD_DEFAULTS.loPortsWeight}/${p.hiPortsWeight ?? PSD_DEFAULTS.hiPortsWeight} need more than ${PSD_MAX_WEIGHT} statements per port on nftables (one per unit of weight, after dividing both by their greatest common divisor); use smaller weights`;
  if (plan.threshold > PSD_MAX_THRESHOLD)
    return `psd weight threshold ${p.weightThreshold} is above ${PSD_MAX_THRESHOLD} units of weight (after dividing by the weights' greatest common divisor), more than an nft token bucket can count; use a smaller threshold`;
  return undefined;
}

const matchDigest = (chain: string, m: Match) => sha256Hex(canonicalJson({ chain, match: m })).slice(0, 10);

/**
 * The name a psd rule's sets and chains share: `psd_` and a digest of the rule's chain
 * and match, not its position, so inserting or deleting a rule above keeps the name and,
 * the agent keeping dynamic sets by name across applies, the scan state. Changing the
 * match (a threshold, a port) gives new sets, as the old state counted something else.
 * Rules of one chain with the same match are told apart by their order among themselves
 * (`_2`, `_3`, ...): only inserting another such rule above renames them.
 */
export function psdId(policy: Policy, chain: string, index: number, m: Match): string {
  const digest = matchDigest(chain, m);
  let same = 0;
  const rules = policy.chains[chain]?.rules ?? [];
  for (let i = 0; i < index && i < rules.length; i++) {
    const other = rules[i]!.match;
    if (other?.xt?.psd !== undefined && matchDigest(chain, other) === digest) same++;
  }
  return same === 0 ? `psd_${digest}` : `psd_${digest}_${same + 1}`;
}

/** The compiled check: the rule jumps to `chain`, then matches with one of `members` (one per protocol). */
export interface PsdCheck {
  chain: string;
  /** The jump rule's protocol test (only TCP and UDP are weighed); empty when the rule names one. */
  jump: string;
  members: string[];
}

const TCP_NO_ACK_RST = "tcp flags & (ack | rst) == 0";
const UDP = "meta l4proto { udp, udplite }";

/**
 * Which protocols the rule lets psd see (xt_psd counts TCP, UDP and UDP-Lite only), and
 * whether the rule's own match already names the one protocol.
 */
function protocols(m: Match): { tcp: boolean; udp: boolean; pinned: boolean } | string {
  const p = m.protocol;
  if (p === undefined || (typeof p === "object" && "not" in p)) return { tcp: true, udp: true, pinned: false };
  if (p === "tcp") return { tcp: true, udp: false, pinned: true };
  if (p === "udp" || p === "udplite") return { tcp: false, udp: true, pinned: true };
  return `psd counts TCP and UDP ports only; with protocol ${String(p)} it never matches`;
}

export function psdCheck(m: Match, fam: Fam, ctx: Ctx, path: Path): PsdCheck | undefined {
  const p = m.xt!.psd!;
  const problem = psdProblem(p);
  if (problem) {
    ctx.error(path, "nft_psd_limits", problem);
    return undefined;
  }
  // The rule's other matches run twice (before the jump and in the check): nothing stateful.
  const stateful = (["limit", "meter", "recent", "quota", "connlimit"] as const).filter((k) => m[k] !== undefined);
  if (stateful.length > 0) {
    ctx.error(
      path,
      "nft_psd_combination",
      `psd cannot share a rule with ${stateful.join(", ")} on nftables (the rule's matches are tested twice: before psd weighs the packet and when it matches); put ${stateful.join(", ")} in a rule of its own`,
    );
    return undefined;
  }
  const protos = protocols(m);
  if (typeof protos === "string") {
    ctx.error([...path.slice(0, -2), "protocol"], "nft_psd_protocol", protos);
    return undefined;
  }
  const plan = psdPlan(p);
  const v = fam === "ipv4" ? "v4" : "v6";
  const addr = fam === "ipv4" ? "ip saddr" : "ip6 saddr";
  const addrType = fam === "ipv4" ? "ipv4_addr" : "ipv6_addr";
  // path: chains/NAME/rules/I/match/xt/psd
  const id = psdId(ctx.policy, String(path[1]), Number(path[3]), m);
  const chain = `${id}_${v}`;
  const name = (what: string) => `${id}_${what}_${v}`;
  const owner = `psd (${String(path[1])} rule ${String(path[3])})`;
  const seconds = Math.ceil(plan.delayMs / 1000);
  const set = (what: string, type: string | string[]): NamedSet => ({
    kind: "set",
    family: FAMILY,
    table: TABLE,
    name: name(what),
    type,
    flags: ["dynamic", "timeout"],
    timeout: seconds,
    size: PSD_SET_SIZE,
  });
  for (const [what, type] of [
    ["ports", [addrType, "inet_service"]],
    ["seen", addrType],
    ["w", addrType],
    ["hit", addrType],
  ] as const)
    ctx.declareSet(set(what, type as string | string[]), owner, path);
  const t = `timeout ${plan.delayMs}ms`;
  const key = `${addr} . th dport`;
  const what = `psd weight ${p.weightThreshold ?? PSD_DEFAULTS.weightThreshold}, delay ${plan.delayMs / 1000}s`;
  const declare = (chainName: string, comment: string, body: { body: string; comment: string }[]) =>
    ctx.declareChain({ kind: "chain", family: FAMILY, table: TABLE, name: chainName, comment }, body, owner, path);
  const take = (n: number) =>
    Array.from(
      { length: n },
      () => `update @${name("w")} { ${addr} ${t} limit rate 1/week burst ${plan.threshold - 1} packets }`,
    ).join(" ");
  const loW = p.loPortsWeight ?? PSD_DEFAULTS.loPortsWeight;
  const hiW = p.hiPortsWeight ?? PSD_DEFAULTS.hiPortsWeight;
  const add = `goto ${chain}_add`;
  const seen = `update @${name("seen")} { ${addr} ${t} }`;
  const rules = [
    {
      body: `${key} @${name("ports")} update @${name("ports")} { ${key} ${t} } return`,
      comment: `${what}: a known port refreshes, never matches`,
    },
    {
      body: "meta l4proto tcp tcp flags & (ack | rst) != 0 return",
      comment: `${what}: TCP ACK or RST to a new port is not counted`,
    },
    {
      body: `${addr} @${name("hit")} update @${name("hit")} { ${addr} ${t} } return`,
      comment: `${what}: a detected source's new port matches`,
    },
    { body: `${addr} != @${name("seen")} goto ${chain}_first`, comment: `${what}: a new sequence` },
    { body: seen, comment: `${what}: the sequence goes on` },
  ];
  // One unit of threshold: every port after the first matches (nft reads `burst 0` as 5).
  if (plan.threshold > 1)
    rules.push(
      { body: `th dport < 1024 ${take(plan.lo)} ${add}`, comment: `${what}: a port below 1024 weighs ${loW}` },
      { body: `th dport >= 1024 ${take(plan.hi)} ${add}`, comment: `${what}: a port from 1024 weighs ${hiW}` },
    );
  rules.push({ body: `add @${name("hit")} { ${addr} ${t} }`, comment: `${what}: the threshold is reached` });
  // xt_psd never matches a sequence's first port, whatever its weight: it takes at most
  // threshold-1 units, so the next port matches. The bucket first, then @seen: a full
  // @w leaves the source out of @seen (untracked) rather than tracked without a budget.
  const first = (n: number) => (n > 0 ? `${take(n)} ` : "");
  const cap = plan.threshold - 1;
  declare(`${chain}_first`, `${what}: the first port of a sequence`, [
    {
      body: `th dport < 1024 ${first(Math.min(plan.lo, cap))}${seen} ${add}`,
      comment: `${what}: first port, below 1024`,
    },
    {
      body: `th dport >= 1024 ${first(Math.min(plan.hi, cap))}${seen} ${add}`,
      comment: `${what}: first port, from 1024`,
    },
  ]);
  declare(`${chain}_add`, `${what}: remember the port`, [
    { body: `add @${name("ports")} { ${key} ${t} }`, comment: `${what}: remember the port` },
  ]);
  declare(chain, `${what} (${fam === "ipv4" ? "IPv4" : "IPv6"}): weighs each new port, fills @${name("hit")}`, rules);
  const member = `${addr} @${name("hit")} ${key} != @${name("ports")}`;
  if (protos.pinned) return { chain, jump: "", members: [protos.tcp ? `${TCP_NO_ACK_RST} ${member}` : member] };
  const members = [`meta l4proto tcp ${TCP_NO_ACK_RST} ${member}`, `${UDP} ${member}`];
  return { chain, jump: "meta l4proto { tcp, udp, udplite }", members };
}
