// Policy address/port sets -> named nft sets, and the rendering of inline lists as
// anonymous sets `{ a, b }`: one lookup per packet whatever the list length.
import { isIPv4, isIPv6 } from "../../net/ip-syntax.ts";
import type { Path } from "../../diagnostics.ts";
import { hasHostBits, parsePrefix, prefixNetwork } from "../../net/address.ts";
import type { NamedSet, SetElement, SetFlag } from "../../nft/index.ts";
import {
  parseTupleElement,
  tupleAddressText,
  tupleFields,
  type SetDef,
  type TupleElement,
  type TupleSetMatch,
} from "../../policy/index.ts";
import { FAMILY, TABLE, type Ctx, type Fam } from "./context.ts";

/** Extra room for elements added at runtime when the policy gives no size. */
export const DYNAMIC_HEADROOM = 65536;

/** `x` or `{ x, y }`: nft matches a single value or an anonymous set the same way. */
export function valueOrSet(values: string[]): string {
  return values.length === 1 ? values[0]! : `{ ${values.join(", ")} }`;
}

/**
 * A conntrack state list as nft's flag form (`ct state established,related`): one bitwise
 * test, where the set form (`ct state { established, related }`) makes nft 1.0 emit an
 * anonymous set and a lookup per packet. Equivalent because a packet has exactly one state
 * bit. Only for a list that is not negated: nft 1.0.6 compiles `ct state != a,b` to a
 * compare with the OR of the bits (measured), which no packet's state equals.
 */
export function ctStateFlags(states: string[]): string {
  return states.join(",");
}

/** The address family a named set's elements belong to (undefined: not an address set). */
export function setFamily(def: SetDef | undefined): Fam | undefined {
  if (def?.type === "ipv4_addr") return "ipv4";
  if (def?.type === "ipv6_addr") return "ipv6";
  return undefined;
}

/** The address family of a tuple set (undefined: not a tuple set). */
export function tupleSetFamily(def: SetDef | undefined): Fam | undefined {
  if (def?.type === "ipv4_addr,port") return "ipv4";
  if (def?.type === "ipv6_addr,port") return "ipv6";
  return undefined;
}

/** The nft data types of a tuple set: ipset's port field is a protocol and a port. */
function tupleNftType(def: SetDef): string[] {
  return [def.type.startsWith("ipv6") ? "ipv6_addr" : "ipv4_addr", "inet_proto", "inet_service"];
}

/**
 * The lookup key of a tuple set with ipset's directions (`src,dst`): `ip saddr . meta l4proto
 * . th dport`. A packet without ports (ICMP) is looked up with its protocol, which no element
 * has. Where the transport header is missing the two differ (measured): the positive lookup
 * matches a non-first IPv4 fragment (nft's payload path reads the fragment's payload as the
 * port, as for a plain `tcp dport`), where ipset does not; a negated lookup of a packet with a
 * short or missing transport header or IPv6 next header 59 matches with ipset, not with nft.
 * conntrack's defragmentation (loaded by the failsafe `ct state` rules) hides all of them.
 */
export function tupleLookup(m: TupleSetMatch, negated: boolean, fam: Fam): string {
  const ip = fam === "ipv4" ? "ip" : "ip6";
  const [a, p] = m.directions;
  return `${ip} ${a === "src" ? "saddr" : "daddr"} . meta l4proto . th ${p === "src" ? "sport" : "dport"} ${negated ? "!= " : ""}@${m.set}`;
}

// `base` + `i` name the element; its path array is built only when there is something to
// report (sets can have a million elements).
function elementText(e: string | number, def: SetDef, ctx: Ctx, base: Path, i: number): string | undefined {
  if (def.type === "ipv4_addr") {
    // Fast path for the common case (big blocklists): a plain IPv4 address (digits need no lowercasing).
    if (typeof e === "string" && e.indexOf("/") === -1 && isIPv4(e)) return e;
    return prefixText(String(e), def, ctx, base, i);
  }
  if (def.type === "ipv6_addr") {
    const text = String(e);
    if (text.indexOf("/") === -1 && isIPv6(text)) return text.toLowerCase();
    return prefixText(text, def, ctx, base, i);
  }
  const text = String(e);
  if (def.type === "ifname") return /^[A-Za-z0-9_.@+-]{1,15}\*?$/.test(text) ? `"${text}"` : undefined;
  return text;
}

/** An address set element that is not a plain address: a prefix, or something wrong. */
function prefixText(text: string, def: SetDef, ctx: Ctx, base: Path, i: number): string | undefined {
  const path = [...base, "elements", i];
  const p = parsePrefix(text);
  const want = def.type === "ipv4_addr" ? "ipv4" : "ipv6";
  if (!p || p.family !== want) {
    ctx.error(
      path,
      "nft_set_element",
      `element ${JSON.stringify(text)} is not an ${want === "ipv4" ? "IPv4" : "IPv6"} address or prefix`,
    );
    return undefined;
  }
  const max = want === "ipv4" ? 32 : 128;
  if (p.length < max && !def.interval) {
    ctx.error(path, "nft_set_needs_interval", `element ${text} is a prefix: the set needs "interval: true"`);
    return undefined;
  }
  if (hasHostBits(p)) {
    ctx.error(
      path,
      "nft_prefix_host_bits",
      `element ${text} has host bits set; write the network address of the prefix`,
    );
    return undefined;
  }
  return p.length === max ? p.address : `${p.address}/${p.length}`;
}

interface TupleItem {
  i: number;
  t: TupleElement;
  dropped?: true;
}

/**
 * A tuple set's elements as nft keys (`10.0.0.0/8 . tcp . 22`). ipset keeps overlapping
 * tuples (10.0.0.0/8,tcp:22 and 10.1.0.0/16,tcp:22: hash:net,port holds each prefix length),
 * but nft refuses overlapping elements of a concatenated interval set ("File exists", with or
 * without auto-merge: measured, nft 1.0.6). An element another one covers (its prefix inside
 * the other's, its ports among the other's, same protocol) matches no packet the other does
 * not, so it is left out; two that overlap only in part are an error.
 */
function tupleElements(def: SetDef, ctx: Ctx, base: Path): SetElement[] {
  const items: TupleItem[] = [];
  const seen = new Set<string>();
  def.elements.forEach((e, i) => {
    const r = parseTupleElement(def.type, e, def.interval === true);
    if (!r.ok) return void ctx.error([...base, "elements", i], "nft_set_element", r.problem);
    const k = tupleKey(r.element);
    if (seen.has(k)) return;
    seen.add(k);
    items.push({ i, t: r.element });
  });
  if (def.interval) pruneCovered(items, def, ctx, base);
  return items.filter((x) => !x.dropped).map((x) => ({ key: tupleKey(x.t) }));
}

function tupleKey(t: TupleElement): string {
  const [lo, hi] = t.ports;
  return `${tupleAddressText(t.address)} . ${t.protocol} . ${lo === hi ? lo : `${lo}-${hi}`}`;
}

/** One protocol's elements of one prefix (network/length), by first port, then last port descending. */
interface PortGroup {
  items: TupleItem[];
  /** maxHi[k]: the highest last port among items[0..k]; maxAt[k]: the item that has it. */
  maxHi: number[];
  maxAt: TupleItem[];
}

interface ProtoIndex {
  lengths: number[];
  groups: Map<string, PortGroup>;
}

const prefixKey = (t: TupleElement, length: number) => `${prefixNetwork({ ...t.address, length })}/${length}`;

/** The index of `items` per protocol, then per prefix, each group sorted by port range (O(n log n)). */
function indexTuples(items: TupleItem[]): { index: Map<string, ProtoIndex>; pos: Map<TupleItem, number> } {
  const index = new Map<string, ProtoIndex>();
  for (const x of items) {
    let pi = index.get(x.t.protocol);
    if (!pi) index.set(x.t.protocol, (pi = { lengths: [], groups: new Map() }));
    const k = prefixKey(x.t, x.t.address.length);
    let g = pi.groups.get(k);
    if (!g) pi.groups.set(k, (g = { items: [], maxHi: [], maxAt: [] }));
    g.items.push(x);
  }
  const pos = new Map<TupleItem, number>();
  for (const pi of index.values()) {
    const lengths = new Set<number>();
    for (const g of pi.groups.values()) {
      lengths.add(g.items[0]!.t.address.length);
      g.items.sort((a, b) => a.t.ports[0] - b.t.ports[0] || b.t.ports[1] - a.t.ports[1]);
      g.items.forEach((x, k) => {
        pos.set(x, k);
        const prev = k > 0 ? g.maxHi[k - 1]! : -1;
        g.maxHi.push(Math.max(prev, x.t.ports[1]));
        g.maxAt.push(x.t.ports[1] > prev ? x : g.maxAt[k - 1]!);
      });
    }
    pi.lengths = [...lengths].sort((a, b) => a - b);
  }
  return { index, pos };
}

/** The last index of `g` whose first port is at most `port` (-1: none). */
function lastStartingBy(g: PortGroup, port: number): number {
  let lo = 0;
  let hi = g.items.length - 1;
  let r = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (g.items[mid]!.t.ports[0] <= port) {
      r = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return r;
}

/**
 * Leaves out every element another covers, then reports the partial overlaps among the rest;
 * both steps are independent of the elements' order. Each element is looked up in the
 * groups of its own prefix and of the shorter prefixes of its protocol that hold elements
 * (at most 33 or 129), each a binary search over port ranges sorted by first port with a
 * running maximum of the last port: O(n log n) for n elements (an `ipset save` writes a
 * port range one port per line, so n reaches 65536 per address).
 */
function pruneCovered(items: TupleItem[], def: SetDef, ctx: Ctx, base: Path): void {
  // Covered: an element of a prefix that contains this one's (or the same prefix, sorted
  // before it) whose ports include this one's. Elements are distinct, so no two cover each other.
  const all = indexTuples(items);
  for (const x of items) if (reaching(all, x, x.t.ports[0], x.t.ports[1])) x.dropped = true;
  // Partial overlaps among the elements left: reported on the element of the longer prefix
  // (of the same prefix: the one with the later first port), naming the other.
  const kept = items.filter((x) => !x.dropped);
  const left = indexTuples(kept);
  for (const x of kept) {
    const other = reaching(left, x, x.t.ports[1], x.t.ports[0]);
    if (other)
      ctx.error(
        [...base, "elements", x.i],
        "nft_set_overlap",
        `element ${JSON.stringify(def.elements[x.i])} overlaps element ${JSON.stringify(def.elements[other.i])} in part; nftables refuses overlapping elements of a concatenated interval set (ipset keeps both): split the port ranges so that one element covers the other or they do not meet`,
      );
  }
}

/**
 * The element of `tuples` that reaches `x` first: in the groups of x's protocol at x's prefix
 * and at the shorter prefixes that contain it (shortest first), the first group with an
 * element whose first port is at most `start` (of x's own prefix: one sorted before x) and
 * whose last port is at least `end`; of those, the one with the highest last port.
 */
function reaching(tuples: ReturnType<typeof indexTuples>, x: TupleItem, start: number, end: number) {
  const pi = tuples.index.get(x.t.protocol)!;
  for (const len of pi.lengths) {
    if (len > x.t.address.length) break;
    const g = pi.groups.get(prefixKey(x.t, len));
    if (!g) continue;
    const k = len === x.t.address.length ? tuples.pos.get(x)! - 1 : lastStartingBy(g, start);
    if (k >= 0 && g.maxHi[k]! >= end) return g.maxAt[k]!;
  }
  return undefined;
}

/** A policy set as an nft named set in the palisade table. */
export function compileSet(name: string, def: SetDef, ctx: Ctx): NamedSet {
  const path = ["sets", name];
  const flags: SetFlag[] = [];
  if (def.interval) flags.push("interval");
  if (def.timeoutSeconds !== undefined) flags.push("timeout");
  if (def.dynamic) flags.push("dynamic");
  const tuple = tupleFields(def.type) !== undefined;
  const elements: SetElement[] = tuple ? tupleElements(def, ctx, path) : [];
  const all = tuple ? [] : def.elements;
  for (let i = 0; i < all.length; i++) {
    const e = all[i]!;
    const key = elementText(e, def, ctx, path, i);
    if (key === undefined) {
      if (def.type === "ifname")
        ctx.error([...path, "elements", i], "nft_set_element", `element ${JSON.stringify(e)} is not an interface name`);
      continue;
    }
    elements.push({ key });
  }
  const size = def.size ?? (def.dynamic ? def.elements.length + DYNAMIC_HEADROOM : undefined);
  if (size !== undefined && def.elements.length > size) {
    ctx.error(
      [...path, "size"],
      "nft_set_too_small",
      `set ${name} has ${def.elements.length} elements but size ${size}; the kernel would refuse the extra ones`,
    );
  }
  const set: NamedSet = {
    kind: "set",
    family: FAMILY,
    table: TABLE,
    name,
    type: tuple ? tupleNftType(def) : def.type,
    flags: flags.length ? flags : undefined,
    elements,
  };
  if (def.timeoutSeconds !== undefined) set.timeout = def.timeoutSeconds;
  if (size !== undefined) set.size = size;
  if (def.counters) set.counter = true;
  // Overlapping prefixes (10/8 and 10.1/16) are an error in a plain interval set;
  // auto-merge folds them. It cannot be combined with timeouts or runtime additions.
  // nft 1.0.6 refuses auto-merge on a concatenation ("auto-merge only works with ..."), and
  // ipset keeps overlapping tuples anyway.
  if (def.interval && !def.dynamic && def.timeoutSeconds === undefined && !tuple) set.autoMerge = true;
  if (def.comment) set.comment = def.comment;
  if (elements.length === 0) delete set.elements;
  if (!set.flags) delete set.flags;
  return set;
}
