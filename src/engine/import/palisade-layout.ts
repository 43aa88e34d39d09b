// iptables-save text that Palisade itself rendered (compile/iptables) uses a fixed layout:
// builtin chain -> `-j PALISADE-<HOOK>` (entry chain: failsafe rules, then `-j PAL-<name>`
// per base chain on that hook) -> `PAL-<name>` policy chains, a base chain's drop policy
// as a final `-m comment --comment "palisade: policy drop" -j DROP`. Importing such text
// folds the plumbing back into the policy it came from, so render -> import round-trips.
import { NAME_RE } from "../policy/index.ts";
import type { PendingEntry } from "./collect.ts";
import { builtinHook, type Hook } from "./chains.ts";
import type { DraftChain, PolicyDraft, RuleEntry } from "./draft.ts";

const ENTRY = "PALISADE-";
const CHAIN = "PAL-";
const POLICY_DROP = "palisade: policy drop";
const FAILSAFE = /^palisade failsafe:/;

export function foldPalisadeLayout(draft: PolicyDraft, entries: PendingEntry[]): void {
  const entryChains = [...draft.chains.values()].filter((c) => !c.hook && c.iptName.startsWith(ENTRY));
  if (entryChains.length === 0) return;
  const report = new Map<RuleEntry, PendingEntry[]>();
  for (const e of entries)
    if (e.target?.kind === "rule") report.set(e.target.entry, [...(report.get(e.target.entry) ?? []), e]);
  const mark = (entry: RuleEntry, status: PendingEntry["status"], reason: string, chain?: DraftChain) => {
    for (const e of report.get(entry) ?? []) {
      e.status = status;
      e.reason = reason;
      if (chain) e.target = { kind: "chain", chain };
      else delete e.target;
    }
  };
  let failsafeSeen = false;
  let failsafePorts: number[] | undefined;
  let inboundEntry = false;

  for (const entry of entryChains) {
    const hook = builtinHook(entry.table, entry.iptName.slice(ENTRY.length)) as Hook | undefined;
    if (!hook) continue;
    if (hook === "input" || hook === "prerouting" || hook === "output" || hook === "postrouting") inboundEntry = true;
    const keep: RuleEntry[] = [];
    for (const r of entry.rules) {
      const a = r.rule.action;
      if (r.rule.comment !== undefined && FAILSAFE.test(r.rule.comment)) {
        failsafeSeen = true;
        const m = r.rule.match ?? {};
        if (m.saddr === undefined && m.daddr === undefined) {
          const ports = m.sport ?? m.dport;
          const list = Array.isArray(ports) ? ports : [ports];
          if (list.every((p): p is number => typeof p === "number")) failsafePorts = list;
        }
        mark(r, "skipped", "Palisade failsafe rule: rendered from the policy's failsafe setting");
        continue;
      }
      const target =
        typeof a === "object" && a.type === "jump" && r.rule.match === undefined
          ? [...draft.chains.values()].find((c) => c.key === a.chain)
          : undefined;
      if (target && !target.hook && target.table === entry.table && target.iptName.startsWith(CHAIN)) {
        target.hook = hook;
        mark(r, "imported", `Palisade entry chain: ${target.iptName} is a base chain on hook ${hook}`, target);
        continue;
      }
      keep.push(r);
    }
    entry.rules = keep;
    if (keep.length === 0 && !draft.isReferencedExcept(entry.key, (r) => isEntryJump(r, entry))) {
      // The builtin chain's jump into the entry chain is plumbing too.
      const builtin = draft.find(entry.table, entry.iptName.slice(ENTRY.length));
      if (builtin) {
        for (const r of builtin.rules.filter((x) => isEntryJump(x, entry)))
          mark(r, "skipped", `Palisade plumbing: ${builtin.iptName} jumps to ${entry.iptName}`);
        builtin.rules = builtin.rules.filter((x) => !isEntryJump(x, entry));
        if (builtin.rules.length === 0 && builtin.policy === undefined)
          dropChain(draft, builtin, entries, `builtin chain ${builtin.iptName} only held Palisade's jump`);
      }
      dropChain(draft, entry, entries, `Palisade entry chain ${entry.iptName}`);
    }
  }
  if (inboundEntry)
    draft.failsafe = failsafeSeen
      ? failsafePorts
        ? { enabled: true, ports: failsafePorts }
        : { enabled: true }
      : { enabled: false };

  for (const chain of [...draft.chains.values()]) {
    if (!chain.iptName.startsWith(CHAIN)) continue;
    const name = chain.iptName.slice(CHAIN.length);
    if (NAME_RE.test(name) && !draft.chains.has(name)) {
      draft.rekey(chain, name);
      for (const e of entries) {
        if (e.target?.kind === "chain" && e.target.chain === chain && e.text.startsWith(":"))
          e.reason = `Palisade's kernel chain for policy chain ${name}`;
      }
    }
    const last = chain.rules[chain.rules.length - 1];
    if (
      chain.hook &&
      last &&
      last.rule.comment === POLICY_DROP &&
      last.rule.match === undefined &&
      (last.rule.action === "drop" || (typeof last.rule.action === "object" && last.rule.action.type === "drop"))
    ) {
      chain.rules.pop();
      chain.policy = "drop";
      mark(last, "imported", "Palisade's rendering of the base chain's drop policy", chain);
    }
  }
}

function isEntryJump(r: RuleEntry, entry: DraftChain): boolean {
  const a = r.rule.action;
  return typeof a === "object" && a.type === "jump" && a.chain === entry.key && r.rule.match === undefined;
}

function dropChain(draft: PolicyDraft, chain: DraftChain, entries: PendingEntry[], why: string): void {
  draft.deleteChain(chain);
  for (const e of entries) {
    if (e.target?.kind === "chain" && e.target.chain === chain) {
      e.status = "skipped";
      e.reason = `${why}: plumbing, not part of the policy`;
      delete e.target;
    }
  }
}
