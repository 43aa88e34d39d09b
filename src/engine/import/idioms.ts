// Lift recognised idioms of the hardening seed into protection presets -- only when the
// preset's expansion (engine/expand) behaves exactly like the plain rules it replaces.
//
// expandPolicy runs preset rules first, in a fixed order (port-scan ban check, bogus
// packets, port-scan probes, ICMP, RST, SYN flood), before the user's rules. So a group
// is lifted only when its rules sit at the very start of their chains, behind nothing but
// other lifted rules, in that same order; otherwise moving them first could change a
// verdict (an earlier ACCEPT would now come after a DROP) or what a stateful match counts.
// Groups that are recognised but cannot be lifted stay plain rules, and the report says why.
//
// Not lifted, ever: the seed's ICMP and RST lines ACCEPT traffic within the rate, while
// the presets only DROP the excess and let the rest continue: different verdicts.
import { isDeepStrictEqual } from "node:util";
import type { Match, Rule } from "../policy/index.ts";
import type { PendingEntry } from "./collect.ts";
import type { DraftChain, PolicyDraft, RuleEntry } from "./draft.ts";
import { SYN_FLOOD_MAX_EXACT } from "../expand/floods.ts";

type Preset = "bogusPackets" | "portScanTrap" | "synFlood";

/** Position of a preset's rules in expandPolicy's order within one chain. */
const RANK = { ban: 0, bogus: 1, probe: 2, icmp: 3, rst: 4, syn: 5 } as const;

interface Part {
  chain: DraftChain;
  entry: RuleEntry;
  rank: number;
}
interface Group {
  preset: Preset;
  parts: Part[];
  apply(draft: PolicyDraft): void;
  /** recent list names the group owns: no other rule may use them. */
  lists: string[];
  /** What the report says about the lift. */
  note?: string;
}

const isDrop = (r: Rule) => r.action === "drop" || (typeof r.action === "object" && r.action.type === "drop");
const matches = (r: Rule, m: Match) => isDeepStrictEqual(r.match ?? {}, m);
const SYN: NonNullable<Match["tcpFlags"]> = { mask: ["fin", "syn", "rst", "ack"], compare: ["syn"] };

export function liftIdioms(draft: PolicyDraft, entries: PendingEntry[]): void {
  const input = draft.find("filter", "INPUT");
  const forward = draft.find("filter", "FORWARD");
  const output = draft.find("filter", "OUTPUT");
  const candidates: Group[] = [];
  const bogus = findBogus(input, forward, output);
  if (bogus && "preset" in bogus) candidates.push(bogus);
  const trap = findPortScan(input, forward);
  if (trap) candidates.push(trap);
  const syn = findSynFlood(input);
  if (syn) candidates.push(syn);
  const icmpRst = findAcceptingRateIdioms(input);

  const refusals = new Map<Group, string>();
  for (const g of candidates) {
    const others = otherListUsers(draft, g);
    if (others) refusals.set(g, others);
  }
  let live = candidates.filter((g) => !refusals.has(g));
  // Drop groups that break the "prefix, in expansion order" condition until the rest holds (at most one pass per group).
  for (let guard = candidates.length; guard > 0; guard--) {
    const bad = positionProblem(live, draft);
    if (!bad) break;
    refusals.set(bad.group, bad.why);
    live = live.filter((g) => g !== bad.group);
  }

  const byEntry = new Map<RuleEntry, PendingEntry[]>();
  for (const e of entries)
    if (e.target?.kind === "rule") byEntry.set(e.target.entry, [...(byEntry.get(e.target.entry) ?? []), e]);
  for (const g of live) {
    g.apply(draft);
    for (const p of g.parts) {
      p.chain.rules = p.chain.rules.filter((x) => x !== p.entry);
      dropGeneratedCounter(draft, p.entry.rule);
      for (const e of byEntry.get(p.entry) ?? []) {
        e.status = "lifted";
        e.target = { kind: "path", path: `/protections/${g.preset}` };
        e.reason = `part of the ${g.preset} idiom: lifted into protections.${g.preset}${g.note ? `; ${g.note}` : ""}`;
      }
    }
  }
  // A base chain that only held lifted rules (and has no policy) would be an empty leftover.
  for (const chain of new Set(live.flatMap((g) => g.parts.map((p) => p.chain)))) {
    if (
      chain.rules.length === 0 &&
      chain.policy === undefined &&
      !entries.some((e) => e.target?.kind === "chain" && e.target.chain === chain)
    )
      draft.deleteChain(chain);
  }
  for (const [g, why] of refusals) {
    for (const p of g.parts)
      for (const e of byEntry.get(p.entry) ?? [])
        e.reason = joinReason(e.reason, `recognised as part of the ${g.preset} idiom but kept as plain rules: ${why}`);
  }
  if (bogus && "missing" in bogus) {
    for (const p of bogus.found) {
      for (const e of byEntry.get(p.entry) ?? []) {
        e.reason = joinReason(
          e.reason,
          `part of the bogusPackets idiom, kept as plain rules: the preset also drops ${bogus.missing.join(", ")}, which this script does not`,
        );
      }
    }
  }
  for (const { entry, preset } of icmpRst) {
    for (const e of byEntry.get(entry) ?? []) {
      e.reason = joinReason(
        e.reason,
        `looks like the ${preset} preset but kept as a plain rule: it ACCEPTs traffic within the rate, while the preset only drops the excess`,
      );
    }
  }
}

function joinReason(a: string | undefined, b: string): string {
  return a ? `${a}; ${b}` : b;
}

/** A rule without a target was imported with a generated counter; lifting it removes the counter too. */
function dropGeneratedCounter(draft: PolicyDraft, rule: Rule): void {
  if (typeof rule.action === "object" && rule.action.type === "counter") delete draft.counters[rule.action.name];
}

function otherListUsers(draft: PolicyDraft, g: Group): string | undefined {
  const mine = new Set(g.parts.map((p) => p.entry));
  for (const c of draft.chains.values()) {
    for (const e of c.rules) {
      if (mine.has(e)) continue;
      const name = e.rule.match?.recent?.name;
      if (name !== undefined && g.lists.includes(name))
        return `recent list ${name} is also used by another rule (line ${e.line})`;
    }
  }
  return undefined;
}

/** The first group whose rules are not a prefix of their chain in expansion order, with the reason. */
function positionProblem(groups: Group[], draft: PolicyDraft): { group: Group; why: string } | undefined {
  const owner = new Map<RuleEntry, { group: Group; rank: number }>();
  for (const g of groups) for (const p of g.parts) owner.set(p.entry, { group: g, rank: p.rank });
  const chains = new Set(groups.flatMap((g) => g.parts.map((p) => p.chain)));
  for (const chain of chains) {
    let lastRank = -1;
    let plainSeen: RuleEntry | undefined;
    for (const e of chain.rules) {
      const o = owner.get(e);
      if (!o) {
        plainSeen ??= e;
        continue;
      }
      if (plainSeen && draft.ipv6Passes.has(plainSeen))
        return {
          group: o.group,
          why: `${chain.key} starts with the rule that lets IPv6 pass (iptables never saw IPv6), but the preset would run first and reach IPv6`,
        };
      if (plainSeen)
        return {
          group: o.group,
          why: `the rule of line ${plainSeen.line} comes before it in ${chain.key}, but the preset would run first`,
        };
      if (o.rank < lastRank)
        return {
          group: o.group,
          why: `its rules come after rules the preset expansion would run later in ${chain.key}`,
        };
      lastRank = o.rank;
    }
  }
  return undefined;
}

function find(chain: DraftChain | undefined, pred: (r: Rule) => boolean): RuleEntry | undefined {
  return chain?.rules.find((e) => pred(e.rule));
}

/** The whole bogus-packet group, or the part of it that is there and what is missing. */
function findBogus(
  input?: DraftChain,
  forward?: DraftChain,
  output?: DraftChain,
): Group | { found: Part[]; missing: string[] } | undefined {
  const invalid = (r: Rule) => isDrop(r) && matches(r, { ctState: ["invalid"] });
  const synFin = (r: Rule) =>
    isDrop(r) && matches(r, { protocol: "tcp", tcpFlags: { mask: ["fin", "syn"], compare: ["fin", "syn"] } });
  const synRst = (r: Rule) =>
    isDrop(r) && matches(r, { protocol: "tcp", tcpFlags: { mask: ["syn", "rst"], compare: ["syn", "rst"] } });
  const parts: Part[] = [];
  const missing: string[] = [];
  const names = new Map<(r: Rule) => boolean, string>([
    [invalid, "INVALID"],
    [synFin, "SYN+FIN"],
    [synRst, "SYN+RST"],
  ]);
  // The preset drops all three in input and forward, and INVALID in output: the whole group or nothing.
  for (const [chain, key, preds] of [
    [input, "input", [invalid, synFin, synRst]],
    [forward, "forward", [invalid, synFin, synRst]],
    [output, "output", [invalid]],
  ] as const) {
    for (const pred of preds) {
      const e = find(chain, pred);
      if (e && chain) parts.push({ chain, entry: e, rank: RANK.bogus });
      else missing.push(`${names.get(pred)} in ${key}`);
    }
  }
  if (parts.length === 0) return undefined;
  if (missing.length > 0) return { found: parts, missing };
  return {
    preset: "bogusPackets",
    parts,
    lists: [],
    apply: (d) => void (d.protections.bogusPackets = { enabled: true }),
  };
}

function findPortScan(input?: DraftChain, forward?: DraftChain): Group | undefined {
  const one = (chain: DraftChain | undefined) => {
    if (!chain) return undefined;
    const ban = find(
      chain,
      (r) =>
        isDrop(r) &&
        r.match?.recent?.mode === "rcheck" &&
        r.match.recent.hitcount === undefined &&
        Object.keys(r.match).length === 1 &&
        r.match.recent.side === "source",
    );
    const rec = ban?.rule.match?.recent;
    if (!ban || !rec || rec.seconds === undefined) return undefined;
    const list = { name: rec.name, side: "source" as const };
    const remove = find(
      chain,
      (r) =>
        typeof r.action === "object" &&
        r.action.type === "counter" &&
        matches(r, { recent: { ...list, mode: "remove" } }),
    );
    const probe = (r: Rule) =>
      r.match?.protocol === "tcp" &&
      r.match.dport !== undefined &&
      isDeepStrictEqual(r.match.recent, { ...list, mode: "set" }) &&
      Object.keys(r.match).length === 3;
    const log = find(
      chain,
      (r) =>
        probe(r) &&
        typeof r.action === "object" &&
        r.action.type === "log" &&
        r.action.prefix !== undefined &&
        r.action.level === undefined &&
        r.action.group === undefined,
    );
    const drop = find(chain, (r) => probe(r) && isDrop(r));
    if (!remove || !log || !drop || !isDeepStrictEqual(log.rule.match?.dport, drop.rule.match?.dport)) return undefined;
    const idx = (e: RuleEntry) => chain.rules.indexOf(e);
    // The seed's order: ban check, remove, log the probe, drop it.
    if (!(idx(ban) < idx(remove) && idx(remove) < idx(log) && idx(log) < idx(drop))) return undefined;
    const logAction = log.rule.action as { type: "log"; prefix: string };
    const dport = drop.rule.match!.dport!;
    if (typeof dport === "object" && !Array.isArray(dport)) return undefined;
    const ports = (Array.isArray(dport) ? dport : [dport]).filter((p): p is number => typeof p === "number");
    if (ports.length !== (Array.isArray(dport) ? dport.length : 1) || logAction.prefix.length > 29) return undefined;
    return {
      seconds: rec.seconds,
      name: rec.name,
      prefix: logAction.prefix,
      ports,
      parts: [
        { chain, entry: ban, rank: RANK.ban },
        // Removing expired entries is what the preset's list timeout does by itself.
        { chain, entry: remove, rank: RANK.ban },
        { chain, entry: log, rank: RANK.probe },
        { chain, entry: drop, rank: RANK.probe },
      ],
    };
  };
  const i = one(input);
  if (!i) return undefined;
  const f = one(forward);
  const same =
    f && f.seconds === i.seconds && f.name === i.name && f.prefix === i.prefix && isDeepStrictEqual(f.ports, i.ports);
  const parts = same ? [...i.parts, ...f.parts] : i.parts;
  return {
    preset: "portScanTrap",
    parts,
    lists: [i.name],
    apply: (d) =>
      void (d.protections.portScanTrap = {
        ports: i.ports,
        banSeconds: i.seconds,
        logPrefix: i.prefix,
        forward: Boolean(same),
      }),
  };
}

function findSynFlood(input?: DraftChain): Group | undefined {
  if (!input) return undefined;
  const rules = input.rules;
  for (let k = 0; k + 1 < rules.length; k++) {
    const set = rules[k]!.rule;
    const upd = rules[k + 1]!.rule;
    const r = set.match?.recent;
    const u = upd.match?.recent;
    if (
      !r ||
      !u ||
      r.mode !== "set" ||
      u.mode !== "update" ||
      r.name !== u.name ||
      r.side !== "source" ||
      u.side !== "source"
    )
      continue;
    const base: Match = { ctState: ["new"], protocol: "tcp", tcpFlags: SYN };
    if (!(typeof set.action === "object" && set.action.type === "counter") || !matches(set, { ...base, recent: r }))
      continue;
    // `--update --seconds 1 --hitcount N -j DROP`: more than N new connections per second from one source.
    if (
      !isDrop(upd) ||
      u.seconds !== 1 ||
      u.hitcount === undefined ||
      u.hitcount < 2 ||
      u.hitcount - 1 > SYN_FLOOD_MAX_EXACT ||
      !matches(upd, { ...base, recent: u })
    )
      continue;
    const hitcount = u.hitcount;
    return {
      preset: "synFlood",
      parts: [
        { chain: input, entry: rules[k]!, rank: RANK.syn },
        { chain: input, entry: rules[k + 1]!, rank: RANK.syn },
      ],
      lists: [r.name],
      // The preset's rate N expands to exactly these two lines with --hitcount N+1.
      note: `the preset's rate ${hitcount - 1}/second expands to exactly recent --set and recent --update --seconds 1 --hitcount ${hitcount}`,
      apply: (d) => void (d.protections.synFlood = { rate: `${hitcount - 1}/second` }),
    };
  }
  return undefined;
}

/** The seed's ICMP and RST rate-limit ACCEPT rules: recognised, never lifted (see the file comment). */
function findAcceptingRateIdioms(input?: DraftChain): Array<{ entry: RuleEntry; preset: "icmpFlood" | "rstFlood" }> {
  if (!input) return [];
  const out: Array<{ entry: RuleEntry; preset: "icmpFlood" | "rstFlood" }> = [];
  for (const e of input.rules) {
    const m = e.rule.match;
    if (e.rule.action !== "accept" || !m?.limit) continue;
    if (m.protocol === "icmp" && Object.keys(m).length === 2) out.push({ entry: e, preset: "icmpFlood" });
    if (
      m.protocol === "tcp" &&
      isDeepStrictEqual(m.tcpFlags, { mask: ["rst"], compare: ["rst"] }) &&
      Object.keys(m).length === 3
    )
      out.push({ entry: e, preset: "rstFlood" });
  }
  return out;
}
