// ipsets of tuples: hash:ip,port and hash:net,port as policy tuple sets ("ipv4_addr,port",
// "ipv6_addr,port"; compile/nft/sets.ts, compile/iptables/ipset.ts). Their elements as ipset
// writes them: "10.0.0.0/8,tcp:22", "192.0.2.1,udp:53", a port without a protocol is tcp
// ("192.0.2.1,22"), a port range is every port of it (interval, as for prefixes).
import { compressIpv6, expandIpv6, hasHostBits, parsePrefix, prefixNetwork } from "../net/address.ts";
import { TUPLE_PORT_PROTOCOLS, tupleFields, type SetDef, type TupleSetType } from "../policy/index.ts";
import { fail } from "./cursor.ts";

/** The tuple ipset types the import takes: whether the address field holds prefixes. */
const TUPLE_IPSETS: Record<string, { interval: boolean }> = {
  "hash:ip,port": { interval: false },
  "hash:net,port": { interval: true },
};

/** The ipset types the import takes: sets of addresses, and the tuple types above. */
export type ImportedIpsetType = "hash:ip" | "hash:net" | "hash:ip,port" | "hash:net,port";

export function isImportedIpsetType(type: string): type is ImportedIpsetType {
  return type === "hash:ip" || type === "hash:net" || tupleSetOf(type, "inet") !== undefined;
}

/** The policy set of an ipset tuple type, or undefined for any other type. */
export function tupleSetOf(type: string, family: "inet" | "inet6"): Pick<SetDef, "type" | "interval"> | undefined {
  // Own keys only: "constructor" or "toString" is no ipset type.
  const t = Object.hasOwn(TUPLE_IPSETS, type) ? TUPLE_IPSETS[type] : undefined;
  if (!t) return undefined;
  const policyType: TupleSetType = family === "inet" ? "ipv4_addr,port" : "ipv6_addr,port";
  return t.interval ? { type: policyType, interval: true } : { type: policyType };
}

/** A tuple ipset's add, as the policy writes it (its port range one element). */
export interface TupleAdd {
  /** ADDRESS,PROTO: what the ports belong to. */
  head: string;
  lo: number;
  hi: number;
}

/**
 * One element of a tuple ipset. `elems`: the entries ipset makes of it, one per port (ipset
 * adds a range port by port, and counts, refuses and deletes each: measured, ipset 7.17);
 * `add`: the element as the policy writes it; `masked`: a hash:net,port prefix written with
 * host bits (ipset stores its network). A port range in a hash:ip,port set makes the policy
 * set an interval set (nft needs the flag).
 */
export function tupleElement(
  text: string | undefined,
  set: SetDef,
): { elems: string[]; add: TupleAdd; masked?: string } {
  if (!text) fail("import_missing_argument", "ipset add needs an element", "add");
  const fields = tupleFields(set.type)!;
  const parts = text.split(",");
  if (parts.length !== fields.length)
    fail("import_invalid_value", `ipset element ${text}: an ADDRESS,PROTO:PORT tuple (e.g. 10.0.0.0/8,tcp:22)`, text);
  const family = fields[0] === "ipv6_addr" ? "ipv6" : "ipv4";
  const p = parsePrefix(parts[0]!);
  if (!p || p.family !== family)
    fail(
      "import_invalid_value",
      `ipset element ${text}: ${parts[0]} is not an ${family === "ipv6" ? "IPv6" : "IPv4"} address${set.interval ? " or prefix" : ""} (an address range a-b is not imported)`,
      text,
    );
  const max = family === "ipv6" ? 128 : 32;
  if (p.length < max && !set.interval)
    fail(
      "import_unsupported",
      `ipset element ${text}: a prefix in a hash:ip,port set is one element per address of it; not imported (a hash:net,port set holds the prefix)`,
      text,
    );
  if (p.length === 0)
    fail(
      "import_invalid_value",
      `ipset element ${text}: a hash:net,port prefix is /1 to /${max} (ipset refuses /0)`,
      text,
    );
  const m = /^(?:([a-z]+):)?(\d{1,5})(?:-(\d{1,5}))?$/.exec(parts[1]!);
  const proto = m?.[1] ?? "tcp";
  if (!m || !(TUPLE_PORT_PROTOCOLS as readonly string[]).includes(proto))
    fail(
      "import_unsupported",
      `ipset element ${text}: ${parts[1]} is not PROTO:PORT with PROTO one of ${TUPLE_PORT_PROTOCOLS.join(", ")} (ICMP types, other protocols and service names are not imported)`,
      text,
    );
  const lo = Number(m[2]);
  const hi = m[3] === undefined ? lo : Number(m[3]);
  if (hi > 65535 || lo > hi) fail("import_invalid_value", `ipset element ${text}: ports are 0-65535, low-high`, text);
  if (hi !== lo) set.interval = true;
  const address =
    p.length === max
      ? family === "ipv6"
        ? compressIpv6(expandIpv6(p.address))
        : p.address
      : `${prefixNetwork(p)}/${p.length}`;
  const head = `${address},${proto}`;
  const elems: string[] = [];
  for (let port = lo; port <= hi; port++) elems.push(`${head}:${port}`);
  const add = { head, lo, hi };
  return hasHostBits(p) ? { elems, add, masked: text } : { elems, add };
}

/**
 * A tuple set's members (one per port) as the policy's elements: each add's port range in
 * the order of the adds, split where ports of it were deleted, a port written once.
 */
export function tupleSetElements(adds: readonly TupleAdd[], members: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const written = new Set<string>();
  for (const { head, lo, hi } of adds) {
    let start = -1;
    for (let port = lo; port <= hi + 1; port++) {
      const k = `${head}:${port}`;
      const take = port <= hi && members.has(k) && !written.has(k);
      if (take) {
        written.add(k);
        if (start < 0) start = port;
      } else if (start >= 0) {
        out.push(`${head}:${start === port - 1 ? start : `${start}-${port - 1}`}`);
        start = -1;
      }
    }
  }
  return out;
}
