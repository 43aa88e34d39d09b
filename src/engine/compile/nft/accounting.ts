// xtables-addons ACCOUNT -> per-address dynamic sets with per-element counters.
//
// Accounting table T with prefix P (IPv4, /8../32):
//   set acct_T_src { type ipv4_addr; flags dynamic; size S; counter; }   (address was the source)
//   set acct_T_dst { ... }                                               (address was the destination)
//   counter acct_T_srctotal, counter acct_T_dsttotal                     (per-direction totals)
// and the ACCOUNT rule becomes two non-terminating rules with the same match:
//   ip saddr P counter name "acct_T_srctotal" add @acct_T_src { ip saddr counter }
//   ip daddr P counter name "acct_T_dsttotal" add @acct_T_dst { ip daddr counter }
// Each direction's total counts exactly the packets its set is meant to see (the
// prefix's side), so total - per-address sum is only what the kernel could not add: a
// full set, or an add lost under a burst. nft runs the named counter before the add,
// and a failed add ends the rule (measured on 6.x: the counter holds the packet, no
// element does). A reply (saddr outside P, daddr inside) is counted once, on the dst
// side, as ACCOUNT does; no "reverse" remainder appears.
// Only addresses with traffic get an element, as with ACCOUNT. S is the number of
// addresses in P, capped at ACCOUNT_MAX_SLOTS: a kernel hash set reserves buckets from
// its size, and a /8 would reserve 16M. Traffic of addresses beyond the cap lands in
// the direction's remainder.
// 0.0.0.0/0 is ACCOUNT's one-slot case: one counter acct_T_total and no sets; its
// traffic is reported on the src side only ("slot 0"), as ACCOUNT stores it.
// Sets and counters are declared once per table, however many rules use it.
import type { Path } from "../../diagnostics.ts";
import { ipv4Network, parsePrefix } from "../../net/address.ts";
import { FAMILY, TABLE, type Ctx } from "./context.ts";

export const ACCOUNT_MAX_SLOTS = 65536;

export const accountingNames = (table: string) => ({
  src: `acct_${table}_src`,
  dst: `acct_${table}_dst`,
  /** 0.0.0.0/0 (one slot) only. */
  total: `acct_${table}_total`,
  srcTotal: `acct_${table}_srctotal`,
  dstTotal: `acct_${table}_dsttotal`,
});

export type AccountingObject = "src" | "dst" | "total" | "srctotal" | "dsttotal";

// Table names are [A-Za-z][A-Za-z0-9_]*; no suffix is an `_`-suffix of another, so the
// greedy table part always splits a name one way only.
const ACCOUNTING_NAME = /^acct_([A-Za-z][A-Za-z0-9_]*)_(src|dst|total|srctotal|dsttotal)$/;

/** The accounting table and object an nft set/counter name belongs to, if any. */
export function parseAccountingName(name: string): { table: string; object: AccountingObject } | undefined {
  const m = ACCOUNTING_NAME.exec(name);
  return m ? { table: m[1]!, object: m[2] as AccountingObject } : undefined;
}

/** Declare the objects of one accounting table (idempotent). */
export function declareAccounting(table: string, ctx: Ctx, path: Path): { prefix: string; length: number } | undefined {
  const def = ctx.policy.accounting[table];
  if (!def) {
    ctx.error(path, "nft_unknown_accounting", `accounting table "${table}" is not declared under accounting`);
    return undefined;
  }
  const p = parsePrefix(def.prefix);
  if (!p || p.family !== "ipv4") return undefined; // the schema refuses these
  const names = accountingNames(table);
  const owner = `accounting table "${table}"`;
  const counter = (name: string) => ctx.declareCounter({ kind: "counter", family: FAMILY, table: TABLE, name, comment: def.comment }, owner, path);
  if (p.length === 0) {
    counter(names.total);
    return { prefix: "0.0.0.0/0", length: 0 };
  }
  counter(names.srcTotal);
  counter(names.dstTotal);
  const size = Math.min(2 ** (32 - p.length), ACCOUNT_MAX_SLOTS);
  for (const name of [names.src, names.dst]) {
    ctx.declareSet({ kind: "set", family: FAMILY, table: TABLE, name, type: "ipv4_addr", flags: ["dynamic"], size, counter: true }, owner, path);
  }
  const network = ipv4Network(p);
  return { prefix: p.length === 32 ? network : `${network}/${p.length}`, length: p.length };
}

/** Statements of the rules an ACCOUNT action becomes (each entry is one rule's tail). */
export function accountRules(table: string, ctx: Ctx, path: Path): string[][] {
  const decl = declareAccounting(table, ctx, path);
  if (!decl) return [];
  const names = accountingNames(table);
  if (decl.length === 0) return [[`counter name "${names.total}"`]];
  return [
    [`ip saddr ${decl.prefix}`, `counter name "${names.srcTotal}"`, `add @${names.src} { ip saddr counter }`],
    [`ip daddr ${decl.prefix}`, `counter name "${names.dstTotal}"`, `add @${names.dst} { ip daddr counter }`],
  ];
}
