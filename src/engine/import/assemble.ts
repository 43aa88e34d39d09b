// The common end of every import: resolve deferred lines, lift idioms, build the document,
// check it against the schema, and turn pending entries into the report.
import { Policy, type PolicyInput, type Rule } from "../policy/index.ts";
import { error as diagnostic, warning, type Diagnostic } from "../diagnostics.ts";
import type { Collector, PendingEntry } from "./collect.ts";
import type { DraftChain, PolicyDraft, ReportTarget, RuleEntry } from "./draft.ts";
import { familyOf } from "./values.ts";
import { liftIdioms } from "./idioms.ts";
import { ipsetWarnings } from "./ipset.ts";
import { foldPalisadeLayout } from "./palisade-layout.ts";
import { PACKET_KEYS } from "../validate/match-facts.ts";
import type { ImportReportLine } from "./report.ts";

export interface ImportResult {
  /** The imported policy (defaults filled in), when what was imported forms a schema-valid document. */
  policy?: Policy;
  report: ImportReportLine[];
  /** One error per line that could not be imported, plus schema errors of the assembled document. */
  errors: Diagnostic[];
  /** What was imported but needs the operator (e.g. ipv4_only_input: IPv6 left unfiltered). */
  warnings: Diagnostic[];
  /** iptables-save text: the family it was read as (so a client that re-sends it can say so). */
  family?: "ipv4" | "ipv6";
}

/** Upper bound on the source size, so one request cannot make the importer work for minutes. */
export const MAX_IMPORT_BYTES = 4 * 1024 * 1024;

/** Resolve, lift and check what the line importers put into the draft: the document and its report. */
export function assemble(draft: PolicyDraft, out: Collector, fromSave: boolean): ImportResult {
  out.resolveDeferred();
  const familyDrops = draft.settleFamilyPolicies();
  if (fromSave) foldPalisadeLayout(draft, out.entries);
  const ipv6Passes = passIpv6(draft, out.entries);
  liftIdioms(draft, out.entries);
  pointPoliciesAtDropRules(out.entries, familyDrops);
  pruneHeaderChains(draft, out.entries);
  draft.settleQuotas();

  const doc: PolicyInput = {
    quotas: draft.quotas,
    accounting: draft.accounting,
    counters: draft.counters,
    chains: draft.chainsDocument(),
    protections: draft.protections,
    forwarding: draft.forwarding,
  };
  if (Object.keys(draft.sets).length > 0) doc.sets = draft.setsDocument();
  if (draft.failsafe) doc.failsafe = draft.failsafe;
  const report = finishReport(draft, out.entries);
  const errors: Diagnostic[] = out.entries
    .filter((e) => e.status === "error" && !e.continuationOf)
    .map((e) =>
      diagnostic(
        [e.input ?? "source", "line", e.line],
        e.code ?? "import_error",
        `${e.input ? `${e.input} ` : ""}line ${e.line}: ${e.reason ?? "not imported"}`,
      ),
    );
  const warnings = [...ipv6Passes, ...ipsetWarnings(draft)];
  const parsed = Policy.safeParse(doc);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      errors.push(
        diagnostic(
          issue.path.map((p) => (typeof p === "symbol" ? String(p) : p)),
          "import_invalid_policy",
          issue.message,
        ),
      );
    }
    return { report, errors, warnings };
  }
  return { policy: parsed.data, report, errors, warnings };
}

/**
 * iptables never sees IPv6 (ip6tables' chains do), so the rules and policies of an IPv4-only
 * input (an iptables-save dump, a script with iptables lines only) act on IPv4 only. In the
 * inet table its base chains would see IPv6 as well: a DROP policy, a final `-j REJECT` or
 * `-j DROP`, a rule without addresses (`-p tcp --dport 23 -j DROP`), a jump into a user chain
 * that does so, a MASQUERADE or a MARK would reach IPv6. So each such base chain (any table:
 * nat and mangle chains of the inet table see IPv6 too) starts with a rule that accepts IPv6:
 * IPv6 passes it untouched, as it passed iptables, and IPv4 meets the rules and the policy, as
 * it did. (A family match on every rule would not do: a jump's target chain is shared, and a
 * DROP policy would still drop IPv6.) Not where the chain could not change IPv6 anyway: policy
 * ACCEPT and only rules that cannot match IPv6 or accept/return without state (a limit, recent
 * list, quota or counter would count IPv6 packets). Chains that ipfw rules reach (they cover
 * both families) are left as they are; an input with ip6tables lines too is not IPv4-only: its
 * iptables rules say family ipv4 already, its policies are settled per family.
 * Added before the idioms are lifted: a preset runs before the chain's rules, and would then
 * reach IPv6 ahead of this rule. A DROP policy's report line says so; one warning, at the
 * first such chain, names them all.
 */
function passIpv6(draft: PolicyDraft, entries: PendingEntry[]): Diagnostic[] {
  const passed: DraftChain[] = [];
  for (const [chain, first] of draft.ipv4OnlyChains) {
    if (!chain.hook || draft.bothFamilyChains.has(chain) || draft.chains.get(chain.key) !== chain) continue;
    if (chain.policy !== "drop" && !chain.rules.some((e) => reachesIpv6(e.rule, draft))) continue;
    const drop = chain.policy === "drop" ? draft.ipv4PolicyDrops.get(chain) : undefined;
    const pass: RuleEntry = {
      rule: {
        comment: drop
          ? `IPv6 passes: ${drop.text} (line ${drop.line}) is iptables' default, for IPv4 only`
          : "IPv6 passes: the input's iptables rules are for IPv4 only",
        match: { family: "ipv6" },
        action: "accept",
      },
      line: drop?.line ?? first,
    };
    chain.rules.unshift(pass);
    draft.ipv6Passes.add(pass);
    passed.push(chain);
    if (!drop) continue;
    const why = `${drop.text} drops IPv4 only (iptables never sees IPv6): the chain's policy is drop and its first rule accepts IPv6, which passes this chain unfiltered as it passed iptables`;
    for (const e of entries)
      if (e.line === drop.line && e.status === "imported" && e.target?.kind === "chain" && e.target.chain === chain)
        e.reason = e.reason ? `${e.reason}; ${why}` : why;
  }
  if (passed.length === 0) return [];
  const names = passed.map((c) => c.key).join(", ");
  return [
    warning(
      ["chains", passed[0]!.key, "rules", 0],
      "ipv4_only_input",
      `the input holds iptables rules only, which never see IPv6: IPv6 passes the inet chain${passed.length > 1 ? "s" : ""} ${names} unfiltered (each starts with a rule that accepts IPv6), as it passed iptables. To filter IPv6 as well, import the host's ip6tables-save dump too (an executed script running both iptables-restore and ip6tables-restore), or add its IPv6 rules, and remove those rules`,
    ),
  ];
}

/**
 * Could the rule do anything to an IPv6 packet in a base chain of policy ACCEPT? Not when it
 * cannot match IPv6 (family ipv4, IPv4 addresses or sets of them), nor when it only accepts or
 * returns (both are the chain's ACCEPT there) and keeps no state.
 */
function reachesIpv6(rule: Rule, draft: PolicyDraft): boolean {
  const m = rule.match ?? {};
  if (m.family === "ipv4") return false;
  for (const a of [m.saddr, m.daddr]) {
    if (a === undefined || (typeof a === "object" && !Array.isArray(a) && "not" in a)) continue;
    const items = (Array.isArray(a) ? a : [a]) as unknown[];
    const ipv4 = (x: unknown) =>
      typeof x === "string" &&
      (x.startsWith("@") ? draft.sets[x.slice(1)]?.type === "ipv4_addr" : familyOf(x) === "ipv4");
    if (items.every(ipv4)) return false;
  }
  const kind = typeof rule.action === "string" ? rule.action : rule.action.type;
  if (kind !== "accept" && kind !== "return") return true;
  return rule.counter === true || Object.keys(m).some((k) => !PACKET_KEYS.has(k));
}

/** A family-specific `-P ... DROP` became the chain's last rule: its report line points there. */
function pointPoliciesAtDropRules(entries: PendingEntry[], added: Map<DraftChain, RuleEntry[]>): void {
  for (const [chain, rules] of added) {
    const rule = rules[0]!;
    for (const e of entries) {
      if (
        e.target?.kind === "chain" &&
        e.target.chain === chain &&
        /\s-P\s/.test(` ${e.text} `) &&
        e.status === "imported"
      ) {
        const fam = rule.rule.match?.family;
        if ((fam === "ipv6") === /^\S*ip6tables/.test(e.text)) {
          e.target = { kind: "rule", entry: rule };
          e.reason = "one chain serves IPv4 and IPv6: this family's DROP default is the chain's last rule";
        }
      }
    }
  }
}

/** iptables-save lists every builtin chain; one with no rules and policy ACCEPT adds nothing. */
function pruneHeaderChains(draft: PolicyDraft, entries: PendingEntry[]): void {
  for (const chain of [...draft.chains.values()]) {
    if (!chain.headerOnly || chain.rules.length > 0 || chain.policy !== undefined) continue;
    draft.deleteChain(chain);
    for (const e of entries) {
      if (e.target?.kind === "chain" && e.target.chain === chain) {
        e.status = "skipped";
        e.reason = "builtin chain with policy ACCEPT and no rules: nothing to import";
        delete e.target;
      }
    }
  }
}

function finishReport(draft: PolicyDraft, entries: PendingEntry[]): ImportReportLine[] {
  const pointers = draft.rulePointers();
  const pathOf = (t: ReportTarget | undefined): string | undefined => {
    if (!t) return undefined;
    if (t.kind === "path") return t.path;
    if (t.kind === "lazy") return t.path();
    if (t.kind === "chain") return draft.chains.get(t.chain.key) === t.chain ? `/chains/${t.chain.key}` : undefined;
    return pointers.get(t.entry);
  };
  return entries.map((e) => {
    const src = e.continuationOf ?? e;
    const line: ImportReportLine = { line: e.line, text: e.text, status: src.status };
    const path = pathOf(src.target);
    if (path !== undefined) line.path = path;
    const reason = e.continuationOf ? e.reason : src.reason;
    if (reason) line.reason = reason;
    if (!e.continuationOf && src.token !== undefined) line.token = src.token;
    if (e.input) line.input = e.input;
    return line;
  });
}
