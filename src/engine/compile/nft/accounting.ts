// xtables-addons ACCOUNT -> per-address dynamic sets with per-element counters.
//
// Accounting table T with prefix P (IPv4, /8../32):
//   set acct_T_src { type ipv4_addr; flags dynamic; size S; counter; }   (address was the source)
//   set acct_T_dst { ... }                                               (address was the destination)
//   counter acct_T_total                                                 (every packet the rule saw)
// and the ACCOUNT rule becomes three non-terminating rules with the same match:
//   counter name "acct_T_total"
//   ip saddr P add @acct_T_src { ip saddr counter }
//   ip daddr P add @acct_T_dst { ip daddr counter }
// Only addresses with traffic get an element, as with ACCOUNT. S is the number of
// addresses in P, capped at ACCOUNT_MAX_SLOTS: a kernel hash set reserves buckets
// from its size, and a /8 would reserve 16M. Traffic of addresses beyond the cap
// (and outside P) is still in the total counter. 0.0.0.0/0 is the one-slot case:
// the total counter alone. Sets are declared once per table, however many rules use it.
import type { Path } from "../../diagnostics.ts";
import { ipv4Network, parsePrefix } from "../../net/address.ts";
import { FAMILY, TABLE, type Ctx } from "./context.ts";

export const ACCOUNT_MAX_SLOTS = 65536;

export const accountingNames = (table: string) => ({
  src: `acct_${table}_src`,
  dst: `acct_${table}_dst`,
  total: `acct_${table}_total`,
});

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
  ctx.declareCounter({ kind: "counter", family: FAMILY, table: TABLE, name: names.total, comment: def.comment }, owner, path);
  if (p.length === 0) return { prefix: "0.0.0.0/0", length: 0 };
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
  const total = [`counter name "${names.total}"`];
  if (decl.length === 0) return [total];
  return [
    total,
    [`ip saddr ${decl.prefix}`, `add @${names.src} { ip saddr counter }`],
    [`ip daddr ${decl.prefix}`, `add @${names.dst} { ip daddr counter }`],
  ];
}
