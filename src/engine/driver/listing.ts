// Reading nft's own listing (`nft list ruleset` text): the blocks of Palisade's tables,
// and the names of the chains, sets, maps, counters, quotas and ct helpers each declares
// (a helper with its type and protocol, the line after its head). A snapshot is taken this
// way in one nft run, and the agent's incremental plan, which needs only those, takes them
// from the snapshot instead of reading the kernel a second time as JSON (for a 10k-rule
// table that read cost ~300 ms of nft plus ~115 ms parsing rules the plan never looks at).
//
// The listing format is fixed by nft: a table is `table FAMILY NAME {` at column 0 and
// ends at a line `}`; its objects open on lines with exactly one leading tab. Anything
// there that looks like one of those objects but does not parse (a quoted name, a new
// syntax) makes the names unknown (`objects` undefined), and the caller reads the kernel.

import { FAMILIES, isPalisadeTable, type Family } from "../nft/names.ts";
import { NftError } from "./errors.ts";
import { OBJECT_KINDS } from "./object-kinds.ts";
import { byFamilyThenName, helperProtocolName, type CtHelperState, type TableState } from "./read.ts";

export interface ObjectName {
  family: Family;
  table: string;
  name: string;
}

/** A ct helper object and the kernel helper it runs, as nft printed them. */
export type KernelCtHelper = CtHelperState;

/**
 * What the incremental plan needs from the kernel: names, and a ct helper's type and protocol
 * (an existing helper is not changed by `add`, so the plan replaces one that differs).
 * RulesetState is one.
 */
export interface KernelObjects {
  tables: TableState[];
  chains: ObjectName[];
  sets: (ObjectName & { kind: "set" | "map" })[];
  counters: ObjectName[];
  quotas: ObjectName[];
  /** Conntrack helper objects (`ct helper NAME { ... }`): no values, but a rule may use one. */
  ctHelpers: KernelCtHelper[];
}

export interface Listing {
  /** Palisade's tables, sorted by family then name (as listPalisadeTables). */
  tables: TableState[];
  /** Their blocks, verbatim, in that order. */
  text: string;
  /** Names of their objects; undefined when a line could not be read with certainty. */
  objects?: KernelObjects;
}

const TABLE_HEAD = /^table (\S+) (\S+) \{$/;
// KernelObjects has no flowtables: Palisade declares none, and the JSON read skips them too.
const LISTED_KINDS = OBJECT_KINDS.filter((k) => k !== "flowtable").join("|");
const OBJECT_WORD = new RegExp(`^\t(${LISTED_KINDS}) `);
// nft's identifier (scanner.l): a letter or '_', then letters, digits, '/', '\', '_', '.', '-'.
const OBJECT_HEAD = new RegExp(`^\t(${LISTED_KINDS}) ([A-Za-z_][A-Za-z0-9/\\\\_.-]*) \\{$`);
const TABLE_COMMENT = /^\tcomment "([^"]*)"$/;
// A ct helper's protocol as nft lists it without /etc/protocols (netbase, which nftables
// only recommends): a number, which nft's own parser refuses in a helper ("expecting udp or
// tcp"), so a snapshot holding it could not be put back. Measured with nft 1.0.6.
const HELPER_PROTOCOL_NUMBER = /^(\t\ttype "[^"\n]*" protocol )(6|17)$/gm;
// The line after a helper's head (nft 1.0.6): `\t\ttype "ftp" protocol tcp` (or 6).
const HELPER_TYPE = /^\t\ttype "([^"\n]*)" protocol (\S+)$/;
// And the line after that: `\t\tl3proto inet`.
const HELPER_L3PROTO = /^\t\tl3proto (\S+)$/;

/** Palisade's tables in a `nft list ruleset` text (foreign tables are skipped). */
export function palisadeListing(text: string): Listing {
  const blocks: { table: TableState; text: string }[] = [];
  const objects: KernelObjects = { tables: [], chains: [], sets: [], counters: [], quotas: [], ctHelpers: [] };
  let certain = true;
  let cur: { table: TableState; start: number; helpers?: boolean } | undefined;
  // The helper whose head was the line before: its type line comes next, then its l3proto.
  let helper: KernelCtHelper | undefined;
  let helperTyped: KernelCtHelper | undefined;
  let skipping = false;
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    const c0 = text.charCodeAt(pos);
    if (helperTyped) {
      // Absent: nft's default, the table's family (what the plan then assumes).
      const m = HELPER_L3PROTO.exec(text.slice(pos, end));
      if (m) helperTyped.l3proto = m[1]!;
      helperTyped = undefined;
    }
    if (helper) {
      const m = HELPER_TYPE.exec(text.slice(pos, end));
      if (m) {
        helper.type = m[1]!;
        helper.protocol = m[2]!;
        helperTyped = helper;
      } else certain = false;
      helper = undefined;
    }
    // Only column-0 lines and single-tab lines matter; rule and element lines start with two tabs or more.
    if (c0 === 116 /* t */ && !cur && !skipping) {
      const line = text.slice(pos, end);
      const m = TABLE_HEAD.exec(line);
      const fam = m?.[1] as Family | undefined;
      if (m && fam && (FAMILIES as readonly string[]).includes(fam) && isPalisadeTable(m[2]!))
        cur = { table: { family: fam, name: m[2]! }, start: pos };
      else skipping = true;
    } else if (c0 === 125 /* } */ && end === pos + 1) {
      if (cur) {
        const block = text.slice(cur.start, end) + "\n";
        blocks.push({
          table: cur.table,
          text: cur.helpers
            ? block.replace(HELPER_PROTOCOL_NUMBER, (_, head, n) => head + helperProtocolName(n))
            : block,
        });
      }
      cur = undefined;
      skipping = false;
    } else if (cur && c0 === 9 && text.charCodeAt(pos + 1) !== 9) {
      const line = text.slice(pos, end);
      const m = OBJECT_HEAD.exec(line);
      const t = cur.table;
      if (m) {
        const o = { family: t.family, table: t.name, name: m[2]! };
        if (m[1] === "chain") objects.chains.push(o);
        else if (m[1] === "set" || m[1] === "map") objects.sets.push({ ...o, kind: m[1] });
        else if (m[1] === "counter") objects.counters.push(o);
        else if (m[1] === "quota") objects.quotas.push(o);
        else {
          helper = o;
          objects.ctHelpers.push(o);
          cur.helpers = true;
        }
      } else if (OBJECT_WORD.test(line)) certain = false;
      else {
        const cm = TABLE_COMMENT.exec(line);
        if (cm) t.comment = cm[1];
      }
    }
    pos = end + 1;
  }
  if (cur)
    throw new NftError(
      "unexpected_output",
      `nft list ruleset ended inside table ${cur.table.family} ${cur.table.name}`,
    );
  blocks.sort((a, b) => byFamilyThenName(a.table, b.table));
  const tables = blocks.map((b) => b.table);
  objects.tables = tables;
  return { tables, text: blocks.map((b) => b.text).join(""), ...(certain ? { objects } : {}) };
}
