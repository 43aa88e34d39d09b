// xtables-addons ACCOUNT -> per-address dynamic sets with per-element counters.
//
// Accounting table T with prefix P (IPv4 /8../32, IPv6 /8../128):
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
// IPv6 (which ACCOUNT never had) is the same with ip6 and ipv6_addr sets. An aggregate
// length N (e.g. a /64 per customer) keys the element by the masked address,
//   add @acct_T_src { ip6 saddr & ffff:ffff:ffff:ffff:: counter }
// so one element counts a whole /N; the sets carry comment "aggregate /N" so the agent
// reports each element as that prefix. S is then the number of /N in P (capped).
// Sets and counters are declared once per table, however many rules use it.
import type { Path } from "../../diagnostics.ts";
import { parsePrefix, prefixMask, prefixNetwork } from "../../net/address.ts";
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

/** Set comment marking an aggregated table: its elements are network addresses of /N prefixes. */
export const aggregateComment = (length: number) => `aggregate /${length}`;

/** The aggregate length a set comment declares, if any (see aggregateComment). */
export function parseAggregateComment(comment: string | undefined): number | undefined {
  const m = comment === undefined ? null : /^aggregate \/(\d{1,3})$/.exec(comment);
  return m ? Number(m[1]) : undefined;
}

interface Declared {
  family: "ipv4" | "ipv6";
  /** The prefix as nft writes it (network address; no /32 or /128). */
  prefix: string;
  length: number;
  /** Counting unit: a sub-prefix length, or the address length (per address). */
  aggregate: number;
}

/** Declare the objects of one accounting table (idempotent). */
export function declareAccounting(table: string, ctx: Ctx, path: Path): Declared | undefined {
  const def = ctx.policy.accounting[table];
  if (!def) {
    ctx.error(path, "nft_unknown_accounting", `accounting table "${table}" is not declared under accounting`);
    return undefined;
  }
  const p = parsePrefix(def.prefix);
  if (!p) return undefined; // the schema refuses these
  const max = p.family === "ipv4" ? 32 : 128;
  const names = accountingNames(table);
  const owner = `accounting table "${table}"`;
  const counter = (name: string) =>
    ctx.declareCounter({ kind: "counter", family: FAMILY, table: TABLE, name, comment: def.comment }, owner, path);
  if (p.length === 0) {
    counter(names.total);
    return { family: "ipv4", prefix: "0.0.0.0/0", length: 0, aggregate: 0 };
  }
  const aggregate = def.aggregate ?? max;
  counter(names.srcTotal);
  counter(names.dstTotal);
  const size = Math.min(2 ** Math.min(aggregate - p.length, 31), ACCOUNT_MAX_SLOTS);
  const type = p.family === "ipv4" ? "ipv4_addr" : "ipv6_addr";
  const comment = aggregate < max ? aggregateComment(aggregate) : undefined;
  for (const name of [names.src, names.dst]) {
    ctx.declareSet(
      {
        kind: "set",
        family: FAMILY,
        table: TABLE,
        name,
        type,
        flags: ["dynamic"],
        size,
        counter: true,
        ...(comment ? { comment } : {}),
      },
      owner,
      path,
    );
  }
  const network = prefixNetwork(p);
  return {
    family: p.family,
    prefix: p.length === max ? network : `${network}/${p.length}`,
    length: p.length,
    aggregate,
  };
}

/** Statements of the rules an ACCOUNT action becomes (each entry is one rule's tail). */
export function accountRules(table: string, ctx: Ctx, path: Path): string[][] {
  const decl = declareAccounting(table, ctx, path);
  if (!decl) return [];
  const names = accountingNames(table);
  if (decl.length === 0) return [[`counter name "${names.total}"`]];
  const ip = decl.family === "ipv4" ? "ip" : "ip6";
  const max = decl.family === "ipv4" ? 32 : 128;
  // An aggregate keys the element by the masked address: one element per sub-prefix.
  const key = (field: string) =>
    decl.aggregate < max ? `${ip} ${field} & ${prefixMask(decl.family, decl.aggregate)}` : `${ip} ${field}`;
  return [
    [`${ip} saddr ${decl.prefix}`, `counter name "${names.srcTotal}"`, `add @${names.src} { ${key("saddr")} counter }`],
    [`${ip} daddr ${decl.prefix}`, `counter name "${names.dstTotal}"`, `add @${names.dst} { ${key("daddr")} counter }`],
  ];
}
