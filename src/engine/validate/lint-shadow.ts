// rule_shadowed: a rule after a terminating rule that matches a superset of its packets
// can never match. Typical after reordering or a bulk import.
//
// The answer is the one of the plain algorithm (for each rule, the FIRST earlier
// terminating, stateless, not itself shadowed rule s with covers(s, rule)), found without
// comparing every pair: each rule's match is parsed once (match-facts.ts), and the
// shadowing rules are grouped by the set of keys they use. A group can only cover a rule
// whose keys are a superset of the group's, and inside a group the rules are indexed by
// one key (addresses per prefix length, single ports, equal values), so a rule is only
// compared with the few that can cover it. A hard comparison budget per chain keeps a
// pathological chain from stalling validation: past it, one lint_budget_exceeded warning.
import { pointer, warning, type Diagnostic } from "../diagnostics.ts";
import { TERMINATING, type Policy } from "../policy/index.ts";
import { rulesOf, type RuleRef } from "./model.ts";
import {
  KEY_BIT,
  COVER_KEYS,
  factsCover,
  maskV4,
  maskV6,
  matchFacts,
  type AddrItem,
  type FactKey,
  type KeyFact,
  type MatchFacts,
} from "./match-facts.ts";

/** Match comparisons (and group visits) allowed per chain before the lint gives up on it. */
export const SHADOW_COMPARISON_BUDGET = 2_000_000;

interface Shadow {
  /** Order among the chain's shadowing rules (smaller = earlier). */
  order: number;
  rule: RuleRef;
  facts: MatchFacts;
}

/** A rule that found its shadow, or why the search stopped. */
type Found = Shadow | undefined | "budget";

interface Budget {
  left: number;
}

export function shadowWarnings(policy: Policy, budget = SHADOW_COMPARISON_BUDGET): Diagnostic[] {
  const out: Diagnostic[] = [];
  const byChain = new Map<string, RuleRef[]>();
  for (const r of rulesOf(policy)) (byChain.get(r.chainName) ?? byChain.set(r.chainName, []).get(r.chainName)!).push(r);
  for (const [chainName, rules] of byChain) {
    // Only terminating, stateless rules can shadow; keep them in order.
    const index = new ShadowIndex();
    const left: Budget = { left: budget };
    for (const r of rules) {
      const facts = matchFacts(r.match);
      const by = index.firstCovering(facts, left);
      if (by === "budget") {
        out.push(
          warning(
            ["chains", chainName],
            "lint_budget_exceeded",
            `chain ${chainName} has too many similar rules to check completely for shadowed rules (${budget} comparisons); rules from ${pointer(r.path)} on were not checked`,
          ),
        );
        break;
      }
      if (by) {
        const what =
          Object.keys(by.rule.match).length === 0 ? "matches every packet" : "matches every packet this rule matches";
        out.push(
          warning(
            r.path,
            "rule_shadowed",
            `this rule can never match: the earlier rule ${pointer(by.rule.path)} (${by.rule.action.type}) ${what}; remove this rule or move it above that one`,
          ),
        );
        continue;
      }
      if (TERMINATING.has(r.action.type) && facts.stateless) index.add(r, facts);
    }
  }
  return out;
}

/** The shadowing rules of one chain, grouped by key mask. */
class ShadowIndex {
  private groups = new Map<number, Group>();
  /** Groups in creation order, for the subset scan. */
  private list: Group[] = [];
  private count = 0;

  add(rule: RuleRef, facts: MatchFacts): void {
    let g = this.groups.get(facts.mask);
    if (!g) {
      g = new Group(facts.mask);
      this.groups.set(facts.mask, g);
      this.list.push(g);
    }
    g.add({ order: this.count++, rule, facts });
  }

  firstCovering(facts: MatchFacts, budget: Budget): Found {
    let best: Shadow | undefined;
    for (const g of this.list) {
      if (--budget.left < 0) return "budget";
      if ((g.mask & ~facts.mask) !== 0) continue;
      const found = g.firstCovering(facts, best ? best.order : Infinity, budget);
      if (found === "budget") return found;
      if (found) best = found;
    }
    return best;
  }
}

/** Which key a group indexes its rules by; "scan" keeps one ordered list. */
type IndexKey = { kind: "addr" | "port" | "eq"; i: number } | { kind: "scan" };

const EQ_KEYS: FactKey[] = [
  "protocol",
  "family",
  "length",
  "mark",
  "ctmark",
  "tcpFlags",
  "tcpMss",
  "rpfilter",
  "ctState",
  "daddrType",
  "icmpType",
  "icmpv6Type",
  "iif",
  "oif",
];
const EXACT_KINDS = new Set<KeyFact["kind"]>(["eq"]);

function chooseKey(mask: number): IndexKey {
  for (const k of ["saddr", "daddr"] as const) if (mask & KEY_BIT[k]) return { kind: "addr", i: COVER_KEYS.indexOf(k) };
  for (const k of ["dport", "sport"] as const) if (mask & KEY_BIT[k]) return { kind: "port", i: COVER_KEYS.indexOf(k) };
  for (const k of EQ_KEYS) if (mask & KEY_BIT[k]) return { kind: "eq", i: COVER_KEYS.indexOf(k) };
  return { kind: "scan" };
}

/**
 * Shadowing rules with one key mask. Every rule lands in the bucket(s) that a covered rule
 * must hit, so the candidates for a rule are a superset of the rules that cover it; each
 * bucket is in rule order, so its first covering candidate is its earliest.
 */
class Group {
  readonly key: IndexKey;
  /** Negated values (and non-address/port/eq index kinds) only cover an equal value. */
  private byCanon = new Map<string, Shadow[]>();
  /** addr: "@set" references and unparsable items, by text. */
  private byRaw = new Map<string, Shadow[]>();
  /** addr: family*256 + prefix length -> network -> rules. */
  private byPrefix = new Map<number, Map<number | bigint, Shadow[]>>();
  /** addr: the family/length keys of byPrefix, sorted. */
  private lengths: number[] = [];
  /** port: rules with a single-port item, by port. */
  private byPort = new Map<number, Shadow[]>();
  /** port: rules with a range item; scan: every rule. */
  private rest: Shadow[] = [];

  constructor(readonly mask: number) {
    this.key = chooseKey(mask);
  }

  add(s: Shadow): void {
    const k = this.key;
    if (k.kind === "scan") return void this.rest.push(s);
    const f = s.facts.keys[k.i]!;
    if (f.negated || (k.kind === "eq" && EXACT_KINDS.has(f.kind))) return push(this.byCanon, canonKey(f), s);
    if (k.kind === "eq") return void this.rest.push(s); // list/iface values: contained, not equal
    if (f.kind === "addr") {
      for (const a of f.items) {
        if (a.fam === 0) push(this.byRaw, a.raw, s);
        else {
          const lk = a.fam * 256 + a.len;
          let m = this.byPrefix.get(lk);
          if (!m) {
            m = new Map();
            this.byPrefix.set(lk, m);
            this.lengths.push(lk);
            this.lengths.sort((x, y) => x - y);
          }
          push(m, a.net, s);
        }
      }
      return;
    }
    if (f.kind === "port") {
      if (f.ranges.some(([lo, hi]) => lo !== hi)) return void this.rest.push(s);
      for (const [p] of f.ranges) push(this.byPort, p, s);
    }
  }

  /** The earliest rule of this group that covers `facts` and comes before `before`. */
  firstCovering(facts: MatchFacts, before: number, budget: Budget): Found {
    let best: Shadow | undefined;
    let limit = before;
    const scan = (list: Shadow[] | undefined): boolean => {
      if (!list) return true;
      for (const s of list) {
        if (s.order >= limit) return true;
        if (--budget.left < 0) return false;
        if (factsCover(s.facts, facts)) {
          best = s;
          limit = s.order;
          return true;
        }
      }
      return true;
    };
    const k = this.key;
    if (k.kind === "scan") return scan(this.rest) ? best : "budget";
    const f = facts.keys[k.i]!;
    if (f.negated || (k.kind === "eq" && EXACT_KINDS.has(f.kind)))
      return scan(this.byCanon.get(canonKey(f))) ? best : "budget";
    if (k.kind === "eq") return scan(this.rest) ? best : "budget";
    // A non-negated value is covered only by non-negated ones, which are indexed by their
    // items: whatever covers the rule covers its first item.
    if (f.kind === "addr") {
      const b0 = f.items[0]!;
      if (!this.lookupAddr(b0, scan)) return "budget";
      return best;
    }
    if (f.kind === "port") {
      const [lo, hi] = f.ranges[0]!;
      if (lo === hi && !scan(this.byPort.get(lo))) return "budget";
      if (!scan(this.rest)) return "budget";
      return best;
    }
    return best;
  }

  private lookupAddr(b0: AddrItem, scan: (list: Shadow[] | undefined) => boolean): boolean {
    if (!scan(this.byRaw.get(b0.raw))) return false;
    if (b0.fam === 0) return true;
    const lo = b0.fam * 256;
    for (const lk of this.lengths) {
      if (lk < lo) continue;
      const len = lk - lo;
      if (lk >= lo + 256 || len > b0.len) break;
      const net = b0.fam === 4 ? maskV4(b0.net as number, len) : maskV6(b0.net as bigint, len);
      if (!scan(this.byPrefix.get(lk)!.get(net))) return false;
    }
    return true;
  }
}

function canonKey(f: KeyFact): string {
  return (f.negated ? "!" : "=") + f.canon;
}

function push<K>(m: Map<K, Shadow[]>, key: K, s: Shadow): void {
  const list = m.get(key);
  if (!list) m.set(key, [s]);
  else if (list[list.length - 1] !== s) list.push(s);
}
