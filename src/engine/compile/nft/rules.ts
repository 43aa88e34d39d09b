// One policy rule -> one or more nft rule bodies.
//
// A rule is emitted once per IP family when it has family-specific parts (addresses,
// ICMP types, meters, recent lists, NAT addresses...): `10.0.0.1` and `2001:db8::1` in one
// list become an `ip saddr` rule and an `ip6 saddr` rule. A family-specific rule whose
// match does not already pin the family (an address or ICMP type does) starts with
// `meta nfproto ipv4|ipv6`, so nothing reads IPv6 headers with IPv4 offsets.
import type { Path } from "../../diagnostics.ts";
import {
  isNegated,
  normalizeAction,
  TERMINATING,
  unwrap,
  type ActionType,
  type Chain,
  type Match,
  type Rule,
} from "../../policy/index.ts";
import { FAMILY, FAMS, TABLE, type Ctx, type Fam, type RuleBody, type TeeRule } from "./context.ts";
import { compileMatch, matchFamilies, matchNeedsFamily } from "./match.ts";
import { negatedNatStatus } from "./match-extra.ts";
import { teeMatchProblem } from "./tee.ts";
import { actionFamilies, compileAction, type ActionEnv } from "./action.ts";
import type { RecentPlan } from "./recent.ts";

/** Actions that may run once per alternative (an OR the nft expression cannot hold). */
const REPEATABLE = new Set<ActionType>([
  "accept",
  "drop",
  "reject",
  "return",
  "goto",
  "notrack",
  "ctHelper",
  "mark",
  "masquerade",
  "snat",
  "dnat",
  "redirect",
  "netmap",
]);
const PORT_PROTOCOLS = new Set(["tcp", "udp", "udplite", "sctp", "dccp"]);

function intersect(a: Set<Fam> | undefined, b: Set<Fam> | undefined): Set<Fam> | undefined {
  if (!a) return b;
  if (!b) return a;
  return new Set([...a].filter((f) => b.has(f)));
}

export function defaultComment(chain: string, index: number): string {
  return `${chain} rule ${index}`;
}

export function compileRule(
  rule: Rule,
  _chainName: string,
  chain: Pick<Chain, "table" | "hook">,
  path: Path,
  ctx: Ctx,
  timeouts: RecentPlan,
  comment: string,
): { rules: RuleBody[]; tee: TeeRule[] } {
  const out: { rules: RuleBody[]; tee: TeeRule[] } = { rules: [], tee: [] };
  const a = normalizeAction(rule.action);
  const m = rule.match;
  const af = actionFamilies(a, ctx.policy.accounting, ctx.policy.sets);
  const allowed = intersect(matchFamilies(m, ctx, [...path, "match"]), af.allowed);
  const split = allowed !== undefined || af.split || matchNeedsFamily(m);
  const fams: (Fam | undefined)[] = split ? FAMS.filter((f) => !allowed || allowed.has(f)) : [undefined];
  if (fams.length === 0) {
    ctx.error(
      path,
      "nft_family_conflict",
      "this rule combines IPv4-only and IPv6-only parts (addresses, ICMP types, NAT or ACCOUNT), so it can never match",
    );
    return out;
  }
  const proto = m?.protocol === undefined ? undefined : unwrap(m.protocol);
  const env: ActionEnv = {
    table: chain.table,
    hook: chain.hook,
    l4:
      (proto !== undefined && !proto.negated && PORT_PROTOCOLS.has(proto.value)) ||
      m?.sport !== undefined ||
      m?.dport !== undefined,
    tcp: (proto !== undefined && !proto.negated && proto.value === "tcp") || m?.tcpFlags !== undefined,
    udp: (proto !== undefined && !proto.negated && proto.value === "udp") || m?.xt?.dhcpmac !== undefined,
  };
  if (a.type === "tproxy") {
    // Two nft rules (tproxy ... accept, then drop) repeat the match: state of its own would
    // be evaluated twice for a packet without a transparent socket.
    const stateful = (["limit", "meter", "quota", "recent", "statistic", "connlimit", "xt"] as const).filter(
      (k) => m?.[k] !== undefined,
    );
    if (stateful.length) {
      ctx.error(
        [...path, "match", stateful[0]!],
        "nft_tproxy_stateful_match",
        `tproxy is two nft rules on nftables (tproxy ... accept, then drop for a packet without a transparent socket, as xt_TPROXY drops it), each repeating the match, so ${stateful.join(", ")} would be evaluated twice: match them in a rule before that sets a mark, and test the mark here`,
      );
      return out;
    }
  }
  for (const fam of fams) {
    const mr = compileMatch(m, fam, ctx, [...path, "match"], timeouts);
    if (!mr) continue;
    if (a.type === "tee") {
      if (!fam) continue;
      const problem = teeMatchProblem(m);
      if (problem) {
        ctx.error([...path, "match"], "nft_tee_match", problem);
        return out;
      }
      for (const alt of mr.alternatives)
        out.tee.push({
          fam,
          body: [...alt, ...(rule.counter ? ["counter"] : []), `dup to ${a.gateway}`].join(" "),
          comment,
        });
      continue;
    }
    const tails = compileAction(a, fam, env, ctx, [...path, "action"]);
    if (tails.length === 0) continue;
    if (a.type === "connmark" && a.op !== "set" && a.destMask !== undefined) {
      const problem = connmarkMergeProblem(m, a.op, mr.alternatives.length);
      if (problem) {
        ctx.error([...path, "action", "destMask"], "nft_connmark_merge_match", problem);
        continue;
      }
    }
    if (mr.quotaSplit && !TERMINATING.has(a.type)) {
      ctx.error(
        [...path, "action"],
        "nft_quota_no_change_action",
        `quota "${m?.quota?.name}" is also tested with --no-change, so on nftables its counting rules are two rules (the budget's last packet marks it spent) and a packet matching the first must stop there: use a terminating action (accept, drop, reject, return, goto), not ${a.type}`,
      );
      continue;
    }
    const nfproto = fam && !mr.impliesFamily ? [`meta nfproto ${fam}`] : [];
    // A limit or an nth counter is state of its own in every nft rule: split per item (a
    // geoip country, a set of a mixed list), N items would get N times the rate or N counters.
    const perRuleState = m?.limit
      ? "limit"
      : m?.statistic && unwrap(m.statistic).value.mode === "nth"
        ? "statistic nth"
        : undefined;
    if (mr.alternatives.length > 1 && perRuleState && mr.natSplit && a.type !== "return" && a.type !== "goto") {
      // ! --ctstate DNAT: both heads (no conntrack entry; an entry without the bit) jump to one
      // chain holding the rest of the rule, so the limit or nth counter keeps one state. A
      // packet meets one head; return or goto would act on the helper chain, not on this one.
      // CHAIN_INDEX from ["chains", CHAIN, "rules", INDEX] by position: a chain may itself be
      // named "rules" or "chains". Other paths (mark forwards) are joined whole.
      const where = path[0] === "chains" && path[2] === "rules" ? `${path[1]}_${path[3]}` : path.join("_");
      const name = `ctnat_${where}${fam ? `_${fam === "ipv4" ? "v4" : "v6"}` : ""}`;
      const rest = mr.alternatives[0]!.slice(1);
      ctx.declareChain(
        {
          kind: "chain",
          family: FAMILY,
          table: TABLE,
          name,
          comment: `${comment}: the rule's ${perRuleState}, kept once for its two ct status alternatives`,
        },
        tails.map((tail, k) => ({
          body: [...rest, ...(rule.counter && k === 0 ? ["counter"] : []), ...tail].join(" "),
          comment,
        })),
        comment,
        [...path, "match", "ctStatus"],
      );
      // The family guard even where the rest implies it: the other family's packets stay out.
      const guard = fam ? [`meta nfproto ${fam}`] : [];
      for (const alt of mr.alternatives)
        out.rules.push({ body: [...guard, alt[0]!, `jump ${name}`].join(" "), comment });
      continue;
    }
    if (mr.alternatives.length > 1 && perRuleState) {
      ctx.error(
        [...path, "match", perRuleState === "limit" ? "limit" : "statistic"],
        "nft_stateful_alternatives",
        `this match is an OR that needs one nft rule per item (${mr.alternatives.length}: ${orItems(m)}), and a ${perRuleState} in each would keep its own state, so together they would let through ${mr.alternatives.length} times the rate or count apart; ${orFix(m)}`,
      );
      continue;
    }
    if (mr.alternatives.length > 1 && !REPEATABLE.has(a.type) && !mr.disjoint && !mr.quotaSplit) {
      ctx.error(
        [...path, "match"],
        "nft_mixed_address_list",
        `${m?.xt?.ipv4options?.any ? "ipv4options with any is an OR of option tests" : "a list that mixes named sets (@name) with other addresses or sets is an OR"} that needs one nft rule per item; that is only safe with a verdict, not with ${a.type} (it would run once per item): ${m?.xt?.ipv4options?.any ? "use a verdict, or one rule per option" : "put the addresses into one set"}`,
      );
      continue;
    }
    const hc = mr.hitcount;
    if (hc && mr.alternatives.length > 1) {
      ctx.error(
        [...path, "match", "recent", "hitcount"],
        "nft_recent_hitcount_alternatives",
        "a recent hit count cannot be combined with an address list that mixes named sets and other items (a packet could be counted once per item): put the addresses into one set",
      );
      continue;
    }
    const psd = mr.psd;
    if (psd && (hc || mr.alternatives.length > 1)) {
      ctx.error(
        [...path, "match", "xt", "psd"],
        "nft_psd_combination",
        "psd cannot be combined with a recent hit count or with an address list that mixes named sets and other items (a packet would be weighed twice): split the rule",
      );
      continue;
    }
    if (psd) {
      // Weigh first (the jump), then one rule per protocol (a packet matches at most one).
      const alt = mr.alternatives[0]!;
      out.rules.push({
        body: [...nfproto, ...alt, ...(psd.jump ? [psd.jump] : []), `jump ${psd.chain}`].join(" "),
        comment,
      });
      for (const member of psd.members)
        tails.forEach((tail, k) => {
          const stmts = [...nfproto, ...alt, member, ...(rule.counter && k === 0 ? ["counter"] : []), ...tail];
          out.rules.push({ body: stmts.join(" "), comment });
        });
      continue;
    }
    mr.alternatives.forEach((alt, i) => {
      // Count first (the jump), then match on the outcome: the rule's action stays in its own chain.
      // A stamp rule's jump counts its stamp; the rule after it stamps again (an update of the
      // same element: no change) and takes the action.
      // The jump leaves a limit out (the rule with the action evaluates it once).
      const counted = mr.jumpAlternatives?.[i] ?? alt;
      if (hc) out.rules.push({ body: [...nfproto, ...counted, `jump ${hc.chain}`].join(" "), comment });
      tails.forEach((tail, k) => {
        const stmts = [
          ...nfproto,
          ...alt,
          ...(hc?.member ? [hc.member] : []),
          ...(rule.counter && k === 0 ? ["counter"] : []),
          ...tail,
        ];
        out.rules.push({ body: stmts.join(" "), comment });
      });
    });
  }
  return out;
}

/**
 * A connmark save/restore with destMask is one nft rule per bit (compile/nft/action.ts
 * connmarkMerge), each repeating the rule's match: a match with state of its own would be
 * evaluated once per bit, and one that reads the destination mark would see it half written.
 */
function connmarkMergeProblem(m: Match | undefined, op: "save" | "restore", alternatives: number): string | undefined {
  const why = "a connmark save/restore under destMask is one nft rule per bit, each repeating the match";
  if (alternatives > 1)
    return `${why}, and this match is already an OR of several rules: put the addresses into one set`;
  const stateful = (["limit", "meter", "quota", "recent", "statistic", "connlimit", "xt"] as const).filter(
    (k) => m?.[k] !== undefined,
  );
  if (stateful.length)
    return `${why}, so ${stateful.join(", ")} would be evaluated once per bit: match them in a rule before that sets a mark, and test the mark here`;
  const reads = op === "restore" ? m?.mark : m?.ctmark;
  if (reads !== undefined)
    return `${why}, and the match tests the ${op === "restore" ? "packet mark" : "connection mark"} the action writes: test it in a rule before that jumps to a chain holding this one`;
  return undefined;
}

/** What makes a rule's match an OR of nft rules, for the refusal of per-rule state in it. */
function orItems(m: Match | undefined): string {
  if (m?.ctStatus !== undefined && negatedNatStatus(m.ctStatus))
    return "a negated ctStatus of NAT bits: no conntrack entry, or an entry without the bit";
  if (m?.xt?.geoip) return "one per country";
  if (m?.tcpMss !== undefined && isNegated(m.tcpMss))
    return "a negated tcpMss: the option missing, or its size outside";
  return "one per set or address group";
}
function orFix(m: Match | undefined): string {
  if (m?.ctStatus !== undefined && negatedNatStatus(m.ctStatus))
    return "only a rule whose one OR is that status test, and whose action is not return or goto, keeps the state in a chain both jump to: use another action, or test the status in a rule before that sets a mark and put the limit or counter in a rule matching that mark";
  if (m?.tcpMss !== undefined && isNegated(m.tcpMss) && !m.xt?.geoip)
    return "test the MSS in one rule that sets a mark, and put the limit or counter in a rule matching that mark";
  return "put the addresses into one set, or split the rule with a named meter";
}
