// The policy being assembled from imported lines. Rules are held as entries with identity,
// so report lines can point at "the rule this line became" even when later `-I` inserts
// shift positions or idiom lifting removes rules; pointers are computed once, at the end.
import type {
  AccountingDef,
  Chain,
  Forwarding,
  Protections,
  QuotaDef,
  QuotaMatch,
  Rule,
  SetDef,
} from "../policy/index.ts";
import type { z } from "zod";
import type { CounterDef } from "../policy/index.ts";
import { fail } from "./cursor.ts";
import { reservedChainName } from "../validate/names.ts";
import { isIdentifier } from "../nft/names.ts";
import { baseChainKey, builtinHook, userChainKey, type Hook, type Table } from "./chains.ts";
import type { Family } from "./values.ts";
import { tupleSetElements, type ImportedIpsetType, type TupleAdd } from "./ipset-tuple.ts";

export interface RuleEntry {
  rule: Rule;
  /** The report line(s) that produced this rule. */
  line: number;
}

export interface DraftChain {
  key: string;
  table: Table;
  /** The iptables name, to resolve later references. */
  iptName: string;
  hook?: Hook;
  policy?: "accept" | "drop";
  rules: RuleEntry[];
  /** Created by an iptables-save header only: dropped again if it stays empty with policy ACCEPT. */
  headerOnly?: boolean;
}

export type ReportTarget =
  | { kind: "rule"; entry: RuleEntry }
  | { kind: "chain"; chain: DraftChain }
  | { kind: "path"; path: string }
  /** A path known only once every line is in (e.g. a backend that a later `mfw -I` shifts). */
  | { kind: "lazy"; path: () => string | undefined };

export class PolicyDraft {
  readonly chains = new Map<string, DraftChain>();
  private readonly byIptName = new Map<string, DraftChain>();
  readonly quotas: Record<string, QuotaDef> = {};
  /** The quota2 name each policy quota stands for, where the two differ (a keyword renamed). */
  readonly quotaOrigins = new Map<string, string>();
  /** ipsets as policy sets: created by ipset commands or `ipset save` lines. */
  readonly sets: Record<string, SetDef> = {};
  /**
   * The members of each policy set while the input is read (`sets[k].elements` stays empty):
   * a Set keeps each ipset add/del O(1), so 200k adds are not 200k array scans. The
   * arrays are built once, by setsDocument().
   */
  readonly setMembers = new Map<string, Set<string>>();
  /** A tuple set's adds in order (its members hold one entry per port, as ipset counts them). */
  readonly tupleAdds = new Map<string, TupleAdd[]>();
  /**
   * Elements the ipset adds of the whole input have put in so far (a running count, not
   * lowered by del/flush/destroy): an add that would take it past the policy's limit for all
   * sets together is refused before its prefix or range is expanded, so a few KB of input
   * cannot build millions of strings (ipset.ts).
   */
  ipsetElementsAdded = 0;
  /** Where each policy set came from (its ipset name). */
  readonly ipsets = new Map<string, IpsetOrigin>();
  /** ipsets of a type the policy cannot hold, by ipset name: why a rule that uses one is refused. */
  readonly unsupportedIpsets = new Map<string, string>();
  readonly accounting: Record<string, AccountingDef> = {};
  readonly counters: Record<string, z.infer<typeof CounterDef>> = {};
  readonly protections: Protections = {};
  /** `-P` of iptables vs ip6tables in a script that has both: one inet chain holds both families. */
  readonly familyPolicies = new Map<DraftChain, Partial<Record<"ipv4" | "ipv6", "accept" | "drop">>>();
  /**
   * DROP policies of iptables (IPv4's only there) that became the inet chain's policy: the line
   * that set each, for the report of the rule that lets IPv6 pass (assemble's passIpv6).
   */
  readonly ipv4PolicyDrops = new Map<DraftChain, { line: number; text: string }>();
  /**
   * Chains that iptables lines (rules, policies, dump headers) of an IPv4-only input touched, with
   * the first such line: iptables never sees IPv6, so IPv6 must pass them (assemble's passIpv6).
   */
  readonly ipv4OnlyChains = new Map<DraftChain, number>();
  /** The rules that let IPv6 pass such a chain (for the idioms' report). */
  readonly ipv6Passes = new Set<RuleEntry>();
  /** Chains that family-neutral lines covering both families (ipfw) touched: left as they are. */
  readonly bothFamilyChains = new Set<DraftChain>();

  /** A line without a family touched `chain`: IPv4's only (iptables), or both families' (ipfw). */
  noteFamilyNeutral(chain: DraftChain, line: number, bothFamilies?: boolean): void {
    if (bothFamilies) this.bothFamilyChains.add(chain);
    else if (!this.ipv4OnlyChains.has(chain)) this.ipv4OnlyChains.set(chain, line);
  }
  /** Set when the source was rendered by Palisade and its failsafe rules tell the settings. */
  failsafe?: { enabled: boolean; ports?: number[] };
  readonly forwarding: Forwarding = { portForwards: [], rangeForwards: [], markForwards: [] };
  private autoNames = new Set<string>();

  /** Find a chain by its iptables name in a table, or undefined. */
  find(table: Table, iptName: string): DraftChain | undefined {
    return this.byIptName.get(`${table}\u0000${iptName}`);
  }

  /** A builtin chain (created on first use). Fails for names that are neither builtin nor created. */
  chain(table: Table, iptName: string): DraftChain {
    const found = this.find(table, iptName);
    if (found) return found;
    const hook = builtinHook(table, iptName);
    if (!hook)
      fail("import_syntax", `chain ${iptName} does not exist in table ${table} (create it first with -N)`, iptName);
    return this.add({ key: baseChainKey(table, hook), table, iptName, hook, rules: [] });
  }

  /** `-N NAME`: a user chain. Returns the chain and, when the name had to change, the new key. */
  newUserChain(table: Table, iptName: string): { chain: DraftChain; renamed?: string } {
    if (this.find(table, iptName))
      fail("import_conflict", `chain ${iptName} already exists in table ${table}`, iptName);
    if (builtinHook(table, iptName))
      fail("import_conflict", `${iptName} is a builtin chain of table ${table}`, iptName);
    const key = userChainKey(
      iptName,
      table,
      (k) => this.chains.has(k) || this.isReservedBaseKey(k) || reservedChainName(k) !== undefined,
    );
    const chain = this.add({ key, table, iptName, rules: [] });
    return { chain, renamed: key === iptName ? undefined : key };
  }

  /**
   * A chain the import generates (no iptables line can name it): its key is `stem_N`, the
   * first N free among every chain so far (any table: keys are one namespace), the base chain
   * keys and the reserved names. A later `-N` of the same name is renamed as for any clash.
   */
  newGeneratedChain(table: Table, stem: string): DraftChain {
    const taken = (k: string) =>
      this.chains.has(k) || this.isReservedBaseKey(k) || reservedChainName(k) !== undefined || !isIdentifier(k);
    const key = this.freshName(stem, taken);
    return this.add({ key, table, iptName: `\u0000${key}`, rules: [] });
  }

  /** Base chain keys that a later builtin chain would need must not be taken by user chains. */
  private isReservedBaseKey(key: string): boolean {
    return /^(input|forward|output|(nat|mangle|raw|rawpost|security)_(prerouting|input|forward|output|postrouting))$/.test(
      key,
    );
  }

  private add(chain: DraftChain): DraftChain {
    this.chains.set(chain.key, chain);
    this.byIptName.set(`${chain.table}\u0000${chain.iptName}`, chain);
    return chain;
  }

  /** Give a chain another policy key (jumps and gotos follow). */
  rekey(chain: DraftChain, key: string): void {
    const old = chain.key;
    const entries = [...this.chains.entries()].map(([k, c]): [string, DraftChain] => (k === old ? [key, c] : [k, c]));
    this.chains.clear();
    for (const [k, c] of entries) this.chains.set(k, c);
    chain.key = key;
    for (const c of this.chains.values()) {
      for (const e of c.rules) {
        const a = e.rule.action;
        if (typeof a === "object" && (a.type === "jump" || a.type === "goto") && a.chain === old)
          e.rule.action = { ...a, chain: key };
      }
    }
  }

  deleteChain(chain: DraftChain): void {
    this.chains.delete(chain.key);
    this.byIptName.delete(`${chain.table}\u0000${chain.iptName}`);
  }

  /** Is the chain the target of a jump/goto anywhere? */
  isReferenced(key: string): boolean {
    return this.isReferencedExcept(key, () => false);
  }

  /** Like isReferenced, ignoring the rules `skip` accepts. */
  isReferencedExcept(key: string, skip: (e: RuleEntry) => boolean): boolean {
    for (const c of this.chains.values()) {
      for (const e of c.rules) {
        const a = e.rule.action;
        if (typeof a === "object" && (a.type === "jump" || a.type === "goto") && a.chain === key && !skip(e))
          return true;
      }
    }
    return false;
  }

  /** A fresh object name with the given stem (quota for `-m quota`, counters...). */
  freshName(stem: string, taken: (name: string) => boolean): string {
    for (let n = 1; ; n++) {
      const name = `${stem}_${n}`;
      if (!taken(name) && !this.autoNames.has(name)) {
        this.autoNames.add(name);
        return name;
      }
    }
  }

  /** JSON pointer of every rule entry still in the policy. */
  rulePointers(): Map<RuleEntry, string> {
    const out = new Map<RuleEntry, string>();
    for (const c of this.chains.values()) c.rules.forEach((e, i) => out.set(e, `/chains/${c.key}/rules/${i}`));
    return out;
  }

  /**
   * Settle per-family chain policies: the same verdict for both families is the chain's
   * policy; otherwise the chain keeps policy accept and ends with a drop rule for the family
   * whose default was DROP (the last rule, so it acts exactly like that family's policy).
   */
  settleFamilyPolicies(): Map<DraftChain, RuleEntry[]> {
    const added = new Map<DraftChain, RuleEntry[]>();
    for (const [chain, fam] of this.familyPolicies) {
      const v4 = fam.ipv4 ?? "accept";
      const v6 = fam.ipv6 ?? "accept";
      if (v4 === v6) {
        chain.policy = v4;
        continue;
      }
      chain.policy = undefined;
      const family = v4 === "drop" ? "ipv4" : "ipv6";
      const entry: RuleEntry = {
        rule: {
          comment: `default policy DROP for ${family === "ipv4" ? "IPv4 (iptables -P)" : "IPv6 (ip6tables -P)"}`,
          match: { family },
          action: "drop",
        },
        line: 0,
      };
      chain.rules.push(entry);
      added.set(chain, [entry]);
    }
    return added;
  }

  /**
   * quota2's --grow is per rule: a counter every rule of which grows becomes a growing quota
   * (its initial value, when not 0, the start); one that only some rules grow stays a budget
   * (a bucket) whose filling rules keep `grow`.
   */
  settleQuotas(): void {
    const uses = new Map<string, QuotaMatch[]>();
    for (const c of this.chains.values())
      for (const e of c.rules) {
        const q = e.rule.match?.quota;
        if (q) uses.set(q.name, [...(uses.get(q.name) ?? []), q]);
      }
    for (const [name, qs] of uses) {
      const def = this.quotas[name];
      if (!def || !qs.every((q) => q.grow)) continue;
      for (const q of qs) delete q.grow;
      def.grow = true;
      if (!def.limit) delete def.limit;
    }
  }

  /** The members of policy set `key` (created empty on first use). */
  members(key: string): Set<string> {
    let m = this.setMembers.get(key);
    if (!m) this.setMembers.set(key, (m = new Set()));
    return m;
  }

  /** The sets as the schema wants them: each with its members, in the order they were added. */
  setsDocument(): Record<string, SetDef> {
    const out: Record<string, SetDef> = {};
    for (const [key, def] of Object.entries(this.sets))
      out[key] = {
        ...def,
        elements: this.tupleAdds.has(key)
          ? tupleSetElements(this.tupleAdds.get(key)!, this.setMembers.get(key) ?? new Set())
          : Array.from(this.setMembers.get(key) ?? []),
      };
    return out;
  }

  /** The chains as the schema wants them (keys in first-use order). */
  chainsDocument(): Record<string, Chain> {
    const out: Record<string, Chain> = {};
    for (const c of this.chains.values()) {
      const chain: Chain = { table: c.table, rules: c.rules.map((e) => e.rule) };
      if (c.hook) chain.hook = c.hook;
      if (c.policy) chain.policy = c.policy;
      out[c.key] = chain;
    }
    return out;
  }
}

export interface IpsetOrigin {
  /** The name ipset knows it by (the policy name may be sanitised). */
  ipset: string;
  /** Its ipset type: one of those the import takes (ipset.ts create). */
  type: ImportedIpsetType;
  /** Elements added with a timeout of their own, which the policy replaces by the set's. */
  elementTimeouts?: { count: number; first: string };
  /**
   * Created with `timeout 0` (fail2ban's sets): its elements may carry a timeout of their own,
   * and one without is permanent. The policy set has no timeout.
   */
  permanentByDefault?: true;
  /** hash:net elements added with host bits set (10.0.0.1/24), kept as their network as ipset does. */
  elementHostBits?: { count: number; first: string };
  /**
   * What ipset compares when `create -exist` meets the set (type, maxelem, timeout,
   * extensions; not the family, nor hashsize): a create that differs is refused even with -exist.
   */
  created?: string;
}

export interface LineResult {
  status: "imported" | "lifted" | "skipped";
  target?: ReportTarget;
  reason?: string;
}

export interface IptablesContext {
  draft: PolicyDraft;
  line: number;
  /** ip6tables: rules are IPv6-only; iptables in a script that also has ip6tables lines: IPv4-only. */
  family?: Family;
  /** Table in effect when the line has no -t (iptables-save: the current `*table`). */
  table?: Table;
  /**
   * The line is read by iptables (IPv4), not ip6tables, even where its rule is left to both
   * families (a script without ip6tables lines, an iptables-save text): ip6tables-only match
   * modules are refused, as that iptables refuses them.
   */
  ipv4Program?: boolean;
  /** The rules cover both families though no family is given (ipfw's rules, translated). */
  bothFamilies?: boolean;
  /**
   * iptables-restore text: the user chains its `:NAME -` and `-N NAME` lines declared so far, in
   * any table, with the line and table of the first. After one, `-j NAME` is a jump to a chain of
   * that name, not the target (iptables-save.ts).
   */
  declaredChains?: ReadonlyMap<string, { line: number; table: Table }>;
  /**
   * iptables-restore text: each imported `-j NAME` (no options) that a declared chain made a
   * jump though NAME is a target's; iptables before 1.8.8 read it as the target (iptables-save.ts).
   */
  shadowedJumps?: ShadowedJump[];
}

export interface ShadowedJump {
  line: number;
  name: string;
  /** The line that declared the chain NAME. */
  declared: number;
}
