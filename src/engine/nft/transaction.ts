// The transaction model the compilers emit and the driver sends (knftables' shape):
// typed objects (table, chain, rule, set, map, element, counter, quota) and typed
// operations on them (add, flush, delete). A Transaction is plain data in the order
// the caller built it; serialize() turns it into nft's own text, and the driver sends
// that text as ONE `nft -f -` run, which the kernel applies entirely or not at all.

import type { Family } from "./names.ts";
import { NftModelError } from "./errors.ts";

export type { Family } from "./names.ts";

export interface TableRef {
  family: Family;
  /** Must start with "palisade". */
  name: string;
}

export interface Table extends TableRef {
  kind: "table";
  comment?: string;
  /**
   * Conntrack helper objects (`ct helper NAME { type "ftp" protocol tcp; l3proto inet; }`),
   * written inside the table's block: the driver's guard then sees only `add table`, and an
   * `add` of an identical helper into an existing table succeeds (measured, nft 1.0.6).
   */
  ctHelpers?: CtHelper[];
}

/** A conntrack helper object: the kernel helper `type` for `protocol`, in both IP families. */
export interface CtHelper {
  name: string;
  /** The kernel's helper name ("ftp", "Q.931", ...). */
  type: string;
  protocol: "tcp" | "udp";
}

export type ChainType = "filter" | "nat" | "route";
export type Hook = "prerouting" | "input" | "forward" | "output" | "postrouting" | "ingress" | "egress";
export type PriorityName = "raw" | "mangle" | "dstnat" | "filter" | "security" | "srcnat" | "out";
/** A number, a standard name, or a name with an offset ("filter + 10", "dstnat - 5"). */
export type Priority = number | PriorityName | { base: PriorityName; offset: number };

export interface Chain {
  kind: "chain";
  family: Family;
  table: string;
  name: string;
  /** Base chains only: all of type, hook, priority are required together. */
  type?: ChainType;
  hook?: Hook;
  priority?: Priority;
  policy?: "accept" | "drop";
  /** netdev ingress/egress chains. */
  device?: string;
  comment?: string;
}

export interface Rule {
  kind: "rule";
  family: Family;
  table: string;
  chain: string;
  /**
   * The rule's statements in nft syntax, e.g. `ip saddr @blocklist counter drop`.
   * Built by a compiler from validated values; any user string inside MUST come from
   * quote.ts (comment(), logPrefix(), ifname()). The serializer refuses a body that is
   * not exactly one statement (no `;`, line break, `#`, `$var`, unbalanced braces).
   */
  body: string;
  comment?: string;
}

export type SetFlag = "constant" | "interval" | "timeout" | "dynamic";

export interface SetElement {
  /** Key as nft text: "10.0.0.1", "10.0.0.0/8", "1.2.3.4 . 80", "1000-2000". */
  key: string;
  /** Maps only: "drop", "jump chain", "10.0.0.2", "0x10". */
  value?: string;
  /** Seconds; needs the set's "timeout" flag. */
  timeout?: number;
  /** Start values for a per-element counter (carried across a replace); needs `counter` on the set. */
  counter?: { packets: number | bigint; bytes: number | bigint };
  comment?: string;
}

interface SetBase {
  family: Family;
  table: string;
  name: string;
  /** Data type(s): "ipv4_addr", or ["ipv4_addr", "inet_service"] for a concatenation. */
  type?: string | string[];
  /** Alternative to type: `typeof` expression, e.g. "ip saddr . tcp dport". */
  typeof?: string;
  flags?: SetFlag[];
  /** Default element timeout in seconds. */
  timeout?: number;
  /** Maximum number of elements; the kernel refuses more (see NftError "set_full"). */
  size?: number;
  /** Per-element packet/byte counters. */
  counter?: boolean;
  policy?: "performance" | "memory";
  autoMerge?: boolean;
  comment?: string;
  elements?: SetElement[];
}

export interface NamedSet extends SetBase {
  kind: "set";
}

export interface NamedMap extends SetBase {
  kind: "map";
  /** Value type: "verdict", "ipv4_addr", "mark", ... */
  map: string;
}

/** A batch of elements of one set or map, for add/delete element operations. */
export interface Elements {
  kind: "element";
  family: Family;
  table: string;
  /** Name of the set or map. */
  set: string;
  elements: SetElement[];
}

export interface Counter {
  kind: "counter";
  family: Family;
  table: string;
  name: string;
  /** Start values, e.g. carried from the kernel across a replace. */
  packets?: number | bigint;
  bytes?: number | bigint;
  comment?: string;
}

export interface Quota {
  kind: "quota";
  family: Family;
  table: string;
  name: string;
  /** "until": a `quota name "q"` statement matches while fewer than `bytes` went through; "over": only after. */
  mode: "over" | "until";
  bytes: number | bigint;
  /** Start value of the consumed bytes. */
  used?: number | bigint;
  comment?: string;
}

export type NftObject = Table | Chain | Rule | NamedSet | NamedMap | Elements | Counter | Quota;

/** What a delete or flush needs: the object's identity only. */
export type ObjectRef =
  | { kind: "table"; family: Family; name: string }
  | { kind: "chain" | "set" | "map" | "counter" | "quota"; family: Family; table: string; name: string };

export type Operation =
  | { verb: "add"; object: NftObject }
  | { verb: "flush"; object: ObjectRef & { kind: "table" | "chain" | "set" | "map" } }
  | { verb: "delete"; object: ObjectRef | Elements };

/** The table an object lives in. */
export function tableOf(o: NftObject | ObjectRef): TableRef {
  return o.kind === "table" ? { family: o.family, name: o.name } : { family: o.family, name: o.table };
}

export class Transaction {
  readonly ops: Operation[] = [];

  /** Create the object (nft `add`: no error if a table/chain/set already exists). Rules append. */
  add(object: NftObject): this {
    this.ops.push({ verb: "add", object });
    return this;
  }

  /** Empty a table (its chains' rules only: NOT its sets), a chain, or a set/map. */
  flush(object: ObjectRef & { kind: "table" | "chain" | "set" | "map" }): this {
    if (!["table", "chain", "set", "map"].includes(object.kind)) {
      throw new NftModelError("invalid_rule", `cannot flush a ${object.kind}`);
    }
    this.ops.push({ verb: "flush", object });
    return this;
  }

  /** Delete an object (it must exist, or the whole transaction fails), or some elements of a set. */
  delete(object: ObjectRef | Elements): this {
    this.ops.push({ verb: "delete", object });
    return this;
  }

  /** Append every operation of another transaction. */
  append(other: Transaction): this {
    this.ops.push(...other.ops);
    return this;
  }

  /** Every table the transaction touches, deduplicated, in first-use order. */
  tables(): TableRef[] {
    const seen = new Map<string, TableRef>();
    for (const op of this.ops) {
      const t = tableOf(op.object);
      const k = `${t.family} ${t.name}`;
      if (!seen.has(k)) seen.set(k, t);
    }
    return [...seen.values()];
  }

  get size(): number {
    return this.ops.length;
  }
}
