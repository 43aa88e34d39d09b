// The agent's ban table as nft text. Ban lists live in their own table, apart from the
// policy's: a deploy, a rollback, drift repair and telemetry never see it (the driver's
// listPalisadeTables leaves it out), and a ban holds whatever ruleset the host runs.
//
//   table inet palisade_bans
//     set <list>_h4 / _h6   one address each; `flags timeout` (a hash: an add costs the same at 100k)
//     set <list>_n4 / _n6   prefixes; `flags interval, timeout`
//     chain pre             hook prerouting priority -310: before every policy chain (raw is -300),
//                           so both input and forwarded traffic are checked; the failsafe first.
//
// Element changes are one transaction each, and idempotent whatever the kernel holds:
// `add` (a no-op when present) then `delete` then `add` again with the new timeout, so a
// re-ban refreshes the timeout and a lift of an element that already expired is no error.
// Pure.
import { BANS_TABLE } from "../nft/names.ts";
import type { BanAddress } from "./address.ts";

export { BANS_TABLE };
export const BANS_CHAIN = "pre";
export const BANS_PRIORITY = -310;

export interface BanElement {
  address: BanAddress;
  /** Remaining lifetime; the kernel drops the element when it runs out. */
  timeoutMs: number;
}

export interface BanFailsafe {
  /** Every address the API name resolves to; none = no failsafe rule (never a port-only one). */
  apiAddresses: string[];
  apiPort: number;
}

type SetKind = "h4" | "h6" | "n4" | "n6";
const KINDS: SetKind[] = ["h4", "h6", "n4", "n6"];

export function banSetName(list: string, a: BanAddress): string {
  return `${list}_${a.single ? "h" : "n"}${a.family === "ipv4" ? "4" : "6"}`;
}

function setDecl(list: string, kind: SetKind): string {
  const type = kind.endsWith("4") ? "ipv4_addr" : "ipv6_addr";
  const flags = kind.startsWith("n") ? "interval, timeout" : "timeout";
  return `set ${list}_${kind} { type ${type}; flags ${flags}; }`;
}

function listRules(list: string): string[] {
  return KINDS.map((k) => `${k.endsWith("4") ? "ip" : "ip6"} saddr @${list}_${k} drop`);
}

/**
 * The agent's own connection to the API passes the ban chain whatever a ban covers (the API
 * refuses such bans too, but it cannot see an address that NAT puts in front of it). The chain
 * runs at -310, before conntrack (-200), where `ct state` is never "established": so the rule
 * matches what the packet carries, the API's address and its port together, never a port
 * alone that any sender could pick. A packet forged with the API's address and port gets past
 * the ban chain only under the API's own address, which no ban names; the policy still applies.
 * No address, no rule.
 */
function failsafeRules(fs: BanFailsafe): string[] {
  const rule = (fam: "ip" | "ip6", as: string[]) => `${fam} saddr { ${as.join(", ")} } tcp sport ${fs.apiPort} accept`;
  const v4 = [...new Set(fs.apiAddresses.filter((a) => !a.includes(":")))].sort();
  const v6 = [...new Set(fs.apiAddresses.filter((a) => a.includes(":")))].sort();
  return [...(v4.length ? [rule("ip", v4)] : []), ...(v6.length ? [rule("ip6", v6)] : [])];
}

const elem = (e: BanElement) => `${e.address.text} timeout ${Math.max(1, Math.ceil(e.timeoutMs))}ms`;

/** The whole table: every list with its elements, replacing whatever the kernel held (one transaction). */
export function banTableText(lists: Map<string, BanElement[]>, fs: BanFailsafe): string {
  const names = [...lists.keys()].sort();
  const out = [`add table inet ${BANS_TABLE}`, `delete table inet ${BANS_TABLE}`, `table inet ${BANS_TABLE} {`];
  for (const l of names) for (const k of KINDS) out.push(`  ${setDecl(l, k)}`);
  out.push(`  chain ${BANS_CHAIN} {`, `    type filter hook prerouting priority ${BANS_PRIORITY}; policy accept;`);
  for (const r of failsafeRules(fs)) out.push(`    ${r}`);
  for (const l of names) for (const r of listRules(l)) out.push(`    ${r}`);
  out.push("  }", "}");
  for (const l of names) {
    const bySet = new Map<string, BanElement[]>();
    for (const e of lists.get(l)!) {
      const s = banSetName(l, e.address);
      const xs = bySet.get(s);
      if (xs) xs.push(e);
      else bySet.set(s, [e]);
    }
    for (const [s, es] of bySet)
      out.push(...chunks(es, (part) => `add element inet ${BANS_TABLE} ${s} { ${part.map(elem).join(", ")} }`));
  }
  return out.join("\n") + "\n";
}

/** Remove the table (no bans left), whether or not the kernel has it. */
export function banTableDeleteText(): string {
  return `add table inet ${BANS_TABLE}\ndelete table inet ${BANS_TABLE}\n`;
}

/** Create a list's sets and rules in a table that exists (a list the kernel does not have yet). */
export function banListCreateText(list: string): string {
  const out = KINDS.map((k) => `add ${setDecl(list, k).replace(/^set /, `set inet ${BANS_TABLE} `)}`);
  for (const r of listRules(list)) out.push(`add rule inet ${BANS_TABLE} ${BANS_CHAIN} ${r}`);
  return out.join("\n") + "\n";
}

/**
 * Incremental change of one list: every add refreshes its timeout, every removal is
 * idempotent. `fresh`: the list's sets are created in the same transaction, so they are
 * empty and a plain add is enough (a third of the statements for a large first load).
 */
export function banDeltaText(list: string, add: BanElement[], remove: BanAddress[], fresh = false): string {
  const out: string[] = [];
  const bySet = <T extends { address: BanAddress } | BanAddress>(xs: T[], addr: (x: T) => BanAddress) => {
    const m = new Map<string, T[]>();
    for (const x of xs) {
      const s = banSetName(list, addr(x));
      const ys = m.get(s);
      if (ys) ys.push(x);
      else m.set(s, [x]);
    }
    return m;
  };
  for (const [s, es] of bySet(remove, (a) => a as BanAddress)) {
    out.push(...chunks(es, (p) => `add element inet ${BANS_TABLE} ${s} { ${p.map((a) => a.text).join(", ")} }`));
    out.push(...chunks(es, (p) => `delete element inet ${BANS_TABLE} ${s} { ${p.map((a) => a.text).join(", ")} }`));
  }
  for (const [s, es] of bySet(add, (e) => (e as BanElement).address)) {
    const els = es as BanElement[];
    if (!fresh) {
      out.push(
        ...chunks(els, (p) => `add element inet ${BANS_TABLE} ${s} { ${p.map((e) => e.address.text).join(", ")} }`),
      );
      out.push(
        ...chunks(els, (p) => `delete element inet ${BANS_TABLE} ${s} { ${p.map((e) => e.address.text).join(", ")} }`),
      );
    }
    out.push(...chunks(els, (p) => `add element inet ${BANS_TABLE} ${s} { ${p.map(elem).join(", ")} }`));
  }
  return out.length ? out.join("\n") + "\n" : "";
}

/** nft reads a statement per line; keep lines to a size its parser handles comfortably. */
function chunks<T>(xs: T[], line: (part: T[]) => string, size = 10_000): string[] {
  const out: string[] = [];
  for (let i = 0; i < xs.length; i += size) out.push(line(xs.slice(i, i + size)));
  return out;
}
