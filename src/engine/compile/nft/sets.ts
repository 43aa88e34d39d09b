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
 * has; a non-first fragment has no transport header and matches neither way.
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

function pruneCovered(items: TupleItem[], def: SetDef, ctx: Ctx, base: Path): void {
  // Per protocol and port range: the elements by network/length.
  const byRange = new Map<string, { lo: number; hi: number; nets: Map<string, TupleItem> }>();
  for (const x of items) {
    const rk = `${x.t.protocol} ${x.t.ports[0]} ${x.t.ports[1]}`;
    let r = byRange.get(rk);
    if (!r) byRange.set(rk, (r = { lo: x.t.ports[0], hi: x.t.ports[1], nets: new Map() }));
    r.nets.set(`${prefixNetwork(x.t.address)}/${x.t.address.length}`, x);
  }
  const ranges = [...byRange.entries()];
  for (const x of items) {
    const [lo, hi] = x.t.ports;
    for (const [rk, r] of ranges) {
      if (!rk.startsWith(`${x.t.protocol} `) || r.hi < lo || r.lo > hi) continue;
      for (let len = 1; len <= x.t.address.length && !x.dropped; len++) {
        const other = r.nets.get(`${prefixNetwork({ ...x.t.address, length: len })}/${len}`);
        if (!other || other === x || other.dropped) continue;
        if (r.lo <= lo && hi <= r.hi) x.dropped = true;
        else
          ctx.error(
            [...base, "elements", x.i],
            "nft_set_overlap",
            `element ${JSON.stringify(def.elements[x.i])} overlaps element ${JSON.stringify(def.elements[other.i])} in part; nftables refuses overlapping elements of a concatenated interval set (ipset keeps both): split the port ranges so that one element covers the other or they do not meet`,
          );
      }
    }
  }
}

/** A policy set as an nft named set in the palisade table. */
export function compileSet(name: string, def: SetDef, ctx: Ctx): NamedSet {
  const path = ["sets", name];
  const flags: SetFlag[] = [];
  if (def.interval) flags.push("interval");
  if (def.timeoutSeconds !== undefined) flags.push("timeout");
  if (def.dynamic) flags.push("dynamic");
  const elements: SetElement[] = [];
  const all = tupleFields(def.type) ? [] : def.elements;
  if (tupleFields(def.type)) elements.push(...tupleElements(def, ctx, path));
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
    type: tupleFields(def.type) ? tupleNftType(def) : def.type,
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
  if (def.interval && !def.dynamic && def.timeoutSeconds === undefined && !tupleFields(def.type)) set.autoMerge = true;
  if (def.comment) set.comment = def.comment;
  if (elements.length === 0) delete set.elements;
  if (!set.flags) delete set.flags;
  return set;
}
