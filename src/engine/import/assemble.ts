// The common end of every import: resolve deferred lines, lift idioms, build the document,
// check it against the schema, and turn pending entries into the report.
import { Policy, type PolicyInput } from "../policy/index.ts";
import { error as diagnostic, warning, type Diagnostic } from "../diagnostics.ts";
import type { Collector, PendingEntry } from "./collect.ts";
import type { DraftChain, PolicyDraft, ReportTarget, RuleEntry } from "./draft.ts";
import { liftIdioms } from "./idioms.ts";
import { ipsetWarnings } from "./ipset.ts";
import { foldPalisadeLayout } from "./palisade-layout.ts";
import type { ImportReportLine } from "./report.ts";

export interface ImportResult {
  /** The imported policy (defaults filled in), when what was imported forms a schema-valid document. */
  policy?: Policy;
  report: ImportReportLine[];
  /** One error per line that could not be imported, plus schema errors of the assembled document. */
  errors: Diagnostic[];
  /** What was imported but needs the operator (e.g. policy_drop_ipv4_only: IPv6 left unfiltered). */
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
 * iptables' DROP policy is IPv4's only: ip6tables' chains, not iptables', see IPv6. As the inet
 * chain's policy it would drop IPv6 too, and the chain's rules (those without addresses apply
 * to both families) would filter it. So a chain whose drop policy came from iptables only (no
 * ip6tables policy for it in the input) starts with a rule that accepts IPv6: IPv6 passes it
 * untouched, as it passed iptables, and IPv4 meets the rules and the drop policy, as it did.
 * Added before the idioms are lifted: a preset runs before the chain's rules, and would then
 * reach IPv6 ahead of this rule. The policy line's report says so; a warning once per chain.
 */
function passIpv6(draft: PolicyDraft, entries: PendingEntry[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const [chain, { line, text }] of draft.ipv4PolicyDrops) {
    if (chain.policy !== "drop" || draft.chains.get(chain.key) !== chain) continue;
    chain.rules.unshift({
      rule: {
        comment: `IPv6 passes: ${text} (line ${line}) is iptables' default, for IPv4 only`,
        match: { family: "ipv6" },
        action: "accept",
      },
      line,
    });
    const why = `${text} drops IPv4 only (iptables never sees IPv6): the chain's policy is drop and its first rule accepts IPv6, which passes this chain unfiltered as it passed iptables`;
    for (const e of entries)
      if (e.line === line && e.status === "imported" && e.target?.kind === "chain" && e.target.chain === chain)
        e.reason = e.reason ? `${e.reason}; ${why}` : why;
    out.push(
      warning(
        ["chains", chain.key, "rules", 0],
        "policy_drop_ipv4_only",
        `line ${line}: ${text} is iptables' default for IPv4 only, so IPv6 passes the inet chain ${chain.key} unfiltered (its first rule accepts IPv6), as it passed iptables: the input holds no ip6tables rules for it. To filter IPv6 as well, add the host's IPv6 rules (its ip6tables-save, or ICMPv6 for neighbour discovery and the services to reach) and remove that rule`,
      ),
    );
  }
  return out;
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
