// Elements of tuple sets ("ipv4_addr,port", "ipv6_addr,port"), written as ipset writes them:
// "ADDRESS,PROTO:PORT" ("10.0.0.0/8,tcp:22", "2001:db8::1,udp:53", "192.0.2.1,tcp:1000-2000").
// Shared by the validator and both compilers. Pure.
import { hasHostBits, parsePrefix, prefixNetwork, type Prefix } from "../net/address.ts";
import { TUPLE_PORT_PROTOCOLS, tupleFields } from "./objects.ts";

export interface TupleElement {
  address: Prefix;
  protocol: (typeof TUPLE_PORT_PROTOCOLS)[number];
  /** First and last port (equal for one port). */
  ports: [number, number];
}

export type TupleParse = { ok: true; element: TupleElement } | { ok: false; problem: string; needsInterval?: true };

const PORT_FIELD = /^([a-z]+):(\d{1,5})(?:-(\d{1,5}))?$/;

/** Parse one element of a tuple set of `type`; `interval`: the set holds prefixes and port ranges. */
export function parseTupleElement(type: string, el: string | number, interval: boolean): TupleParse {
  const fields = tupleFields(type);
  if (!fields) return { ok: false, problem: `set type ${type} is not a tuple type` };
  const parts = String(el).split(",");
  if (typeof el !== "string" || parts.length !== fields.length)
    return {
      ok: false,
      problem: `${JSON.stringify(el)} is not an element of a ${type} set: write ${fields.length} fields separated by ',' (e.g. "${type.startsWith("ipv6") ? "2001:db8::/32" : "10.0.0.0/8"},tcp:22")`,
    };
  const fam = fields[0] === "ipv6_addr" ? "ipv6" : "ipv4";
  const address = parsePrefix(parts[0]!);
  if (!address || address.family !== fam)
    return { ok: false, problem: `${JSON.stringify(el)}: ${parts[0]} is not an ${fam} address or prefix` };
  const max = fam === "ipv4" ? 32 : 128;
  if (address.length === 0)
    return { ok: false, problem: `${JSON.stringify(el)}: a prefix is /1 to /${max} (ipset refuses /0)` };
  if (hasHostBits(address))
    return {
      ok: false,
      problem: `${JSON.stringify(el)}: ${parts[0]} has host bits set; write its network ${prefixNetwork(address)}/${address.length}`,
    };
  const m = PORT_FIELD.exec(parts[1]!);
  const protocol = m?.[1] as TupleElement["protocol"] | undefined;
  if (!m || !protocol || !(TUPLE_PORT_PROTOCOLS as readonly string[]).includes(protocol))
    return {
      ok: false,
      problem: `${JSON.stringify(el)}: ${parts[1]} is not PROTO:PORT or PROTO:LOW-HIGH with PROTO one of ${TUPLE_PORT_PROTOCOLS.join(", ")}`,
    };
  const lo = Number(m[2]);
  const hi = m[3] === undefined ? lo : Number(m[3]);
  if (hi > 65535 || lo > hi)
    return { ok: false, problem: `${JSON.stringify(el)}: ports are 0-65535, a range low-high with low <= high` };
  if (!interval && (address.length < max || hi !== lo))
    return {
      ok: false,
      needsInterval: true,
      problem: `${JSON.stringify(el)} holds ${address.length < max ? "a prefix" : "a port range"}; add interval: true to the set to hold prefixes and port ranges`,
    };
  return { ok: true, element: { address, protocol, ports: [lo, hi] } };
}

/** The address field as nft and ipset write it: the address alone for a whole-address prefix. */
export function tupleAddressText(a: Prefix): string {
  const max = a.family === "ipv4" ? 32 : 128;
  return a.length === max ? a.address : `${a.address}/${a.length}`;
}
