// Per-rule match and action consistency: protocol prerequisites, address families and
// prefixes, interfaces per hook, ranges, recent/ipmark/nat/xt options.
import { error, warning, type Diagnostic, type Path } from "../diagnostics.ts";
import { parsePrefix } from "../net/address.ts";
import { CT_HELPERS, isNegated, unwrap, type Policy } from "../policy/index.ts";
import { asList, chainHooks, reachedFrom, rulesOf, type Hook, type RuleRef } from "./model.ts";
import { hostBitsProblem, isUnspecified } from "./prefix.ts";

const PORT_PROTOCOLS = new Set(["tcp", "udp", "sctp", "udplite", "dccp"]);
const NO_IIF: readonly Hook[] = ["output", "postrouting"];
const NO_OIF: readonly Hook[] = ["prerouting", "input"];

export function matchErrors(policy: Policy): Diagnostic[] {
  const out: Diagnostic[] = [];
  const hooks = chainHooks(policy);
  for (const r of rulesOf(policy)) {
    protocolPrerequisites(r, out);
    addresses(r, out);
    interfaces(r, hooks.get(r.chainName) ?? new Set(), out);
    socketOwner(r, hooks.get(r.chainName) ?? new Set(), out);
    ipsecDirection(r, hooks.get(r.chainName) ?? new Set(), out);
    ipsecTunnel(r, out);
    rangesAndOptions(r, out);
    markActions(r, out);
  }
  return out;
}

const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;

/** A mark or connmark value must fit its mask, and save/restore take no value: never dropped in silence. */
function markActions(r: RuleRef, out: Diagnostic[]): void {
  const a = r.action;
  const ap = [...r.path, "action"];
  if (a.type !== "mark" && a.type !== "connmark") return;
  if (a.type === "connmark" && a.op !== "set") {
    if (a.value !== undefined)
      out.push(
        error(
          [...ap, "value"],
          "connmark_value_unused",
          `connmark ${a.op} copies the ${a.op === "save" ? "packet mark into the connection mark" : "connection mark into the packet mark"} and takes no value; remove value (mask selects the bits copied)`,
        ),
      );
    return;
  }
  if (a.type === "connmark" && a.destMask !== undefined)
    out.push(
      error(
        [...ap, "destMask"],
        "connmark_destmask_unused",
        "connmark set writes value under mask; destMask only goes with save and restore (the bits of the destination that change)",
      ),
    );
  if (a.value === undefined || a.mask === undefined) return;
  const outside = (a.value & ~a.mask) >>> 0;
  if (outside !== 0)
    out.push(
      error(
        [...ap, "value"],
        "mark_value_outside_mask",
        `${a.type} value ${hex(a.value)} has bits ${hex(outside)} outside its mask ${hex(a.mask)}, which would not be set; put them in the mask (${hex(a.mask | a.value)}) or drop them from the value (${hex(a.value & a.mask)})`,
      ),
    );
}

function protocolPrerequisites(r: RuleRef, out: Diagnostic[]): void {
  const m = r.match;
  const mp = [...r.path, "match"];
  const proto = m.protocol === undefined ? undefined : unwrap(m.protocol);
  const positive = proto && !proto.negated ? proto.value : undefined;
  for (const key of ["sport", "dport"] as const) {
    if (m[key] === undefined) continue;
    if (!positive || !PORT_PROTOCOLS.has(positive)) {
      const why = proto?.negated
        ? "a negated protocol does not say which header carries the port"
        : positive
          ? `${positive} has no ports`
          : "no protocol is given";
      out.push(
        error([...mp, key], "port_without_protocol", `${key} needs protocol tcp, udp, sctp, udplite or dccp: ${why}`),
      );
    }
  }
  if (m.tcpMss !== undefined && positive !== "tcp")
    out.push(error([...mp, "tcpMss"], "tcp_mss_without_tcp", `tcpMss needs protocol: tcp`));
  if (m.tcpFlags !== undefined && positive !== "tcp")
    out.push(error([...mp, "tcpFlags"], "tcp_flags_without_tcp", `tcpFlags needs protocol: tcp`));
  if (m.icmpType !== undefined && positive !== "icmp")
    out.push(
      error(
        [...mp, "icmpType"],
        "icmp_type_without_icmp",
        `icmpType needs protocol: icmp (use icmpv6Type with protocol icmpv6 for IPv6)`,
      ),
    );
  if (m.icmpv6Type !== undefined && positive !== "icmpv6")
    out.push(error([...mp, "icmpv6Type"], "icmpv6_type_without_icmpv6", `icmpv6Type needs protocol: icmpv6`));
  if (m.icmpCode !== undefined) {
    const t = m.icmpType ?? m.icmpv6Type;
    const single =
      t !== undefined && !isNegated(t) && !Array.isArray(t) && (m.icmpType === undefined || m.icmpv6Type === undefined);
    if (!single)
      out.push(
        error(
          [...mp, "icmpCode"],
          "icmp_code_needs_one_type",
          "icmpCode needs exactly one, not negated, icmpType or icmpv6Type",
        ),
      );
  }
  // family ipv6 + protocol icmp is what ip6tables -p icmp means (next header 1), and the
  // reverse iptables -p ipv6-icmp: valid, the lint (icmp_other_family) says what was likely meant.
  // A type is the ICMP header of its own family, which the other family has no match for.
  for (const [key, fam, other] of [
    ["icmpType", "ipv4", "icmpv6Type with protocol icmpv6"],
    ["icmpv6Type", "ipv6", "icmpType with protocol icmp"],
  ] as const)
    if (m[key] !== undefined && m.family !== undefined && m.family !== fam)
      out.push(
        error(
          [...mp, key],
          "icmp_type_family_mismatch",
          `${key} matches the ${fam === "ipv4" ? "ICMP" : "ICMPv6"} header of ${fam} packets, and the rule is restricted to ${m.family} (${m.family === "ipv6" ? "ip6tables" : "iptables"} has no such match); use ${other}`,
        ),
      );
}

function addresses(r: RuleRef, out: Diagnostic[]): void {
  for (const key of ["saddr", "daddr"] as const) {
    const v = r.match[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    const base: Path = [...r.path, "match", key, ...(negated ? ["not"] : [])];
    asList(value).forEach((item, i) => {
      if (item.startsWith("@")) return;
      const at = Array.isArray(value) ? [...base, i] : base;
      const p = parsePrefix(item);
      if (!p) return;
      if (r.match.family && p.family !== r.match.family) {
        out.push(
          error(
            at,
            "address_family_mismatch",
            `${item} is an ${p.family} address but the rule is restricted to family ${r.match.family}`,
          ),
        );
      }
      const hb = hostBitsProblem(item);
      if (hb) out.push(error(at, "address_host_bits", hb));
    });
  }
}

function interfaces(r: RuleRef, hooks: Set<Hook>, out: Diagnostic[]): void {
  const reached = reachedFrom(r);
  for (const [key, unavailable, why, instead] of [
    ["iif", NO_IIF, "locally generated and outgoing packets have no input interface", "oif"],
    ["oif", NO_OIF, "the output interface is not chosen yet", "iif"],
  ] as const) {
    if (r.match[key] === undefined) continue;
    const bad = [...hooks].filter((h) => (unavailable as readonly Hook[]).includes(h)).sort();
    if (!bad.length) continue;
    const at = [...r.path, "match", key];
    // A chain shared by several hooks (Docker's nat DOCKER chain, reached from prerouting and
    // output, holds `-i docker0 -j RETURN`): on the paths without the interface the match
    // means what it means in iptables and nftables (empty name: a positive match never
    // matches, a negated one always does). Only a chain whose every path lacks it is a mistake.
    if (!r.chain.hook && bad.length < hooks.size) {
      out.push(
        warning(
          at,
          `${key}_not_available`,
          `${key} never matches at the ${bad.join("/")} hook${reached}: ${why} (a negated ${key} always matches there)`,
        ),
      );
    } else {
      out.push(
        error(
          at,
          `${key}_not_available`,
          `${key} cannot match at the ${bad.join("/")} hook${reached}: ${why}; use ${instead}`,
        ),
      );
    }
  }
}

/**
 * A match the kernel runs only at the `allowed` hooks: an error at match.`key` naming the hooks
 * outside them that the rule's chain is reached from, with `why`.
 */
function hookUnavailable(
  r: RuleRef,
  hooks: Set<Hook>,
  key: "skuid" | "skgid" | "socket" | "macSource",
  allowed: readonly Hook[],
  code: string,
  why: string,
  out: Diagnostic[],
): void {
  if (r.match[key] === undefined) return;
  const bad = [...hooks].filter((h) => !allowed.includes(h)).sort();
  if (!bad.length) return;
  out.push(
    error([...r.path, "match", key], code, `${key} cannot match at the ${bad.join("/")} hook${reachedFrom(r)}: ${why}`),
  );
}

/** The socket owner is known for locally generated packets only (iptables refuses -m owner elsewhere). */
function socketOwner(r: RuleRef, hooks: Set<Hook>, out: Diagnostic[]): void {
  for (const key of ["skuid", "skgid"] as const)
    hookUnavailable(
      r,
      hooks,
      key,
      ["output", "postrouting"],
      "socket_owner_not_available",
      "only locally generated packets have a socket owner (output, postrouting)",
      out,
    );
  // xt_socket registers for prerouting and input only (iptables-restore: Invalid argument
  // in OUTPUT and FORWARD, measured); the lookup finds the socket an arriving packet is for.
  hookUnavailable(
    r,
    hooks,
    "socket",
    ["prerouting", "input"],
    "socket_not_available",
    "the kernel's socket match only runs at prerouting and input, for packets arriving at this host",
    out,
  );
  // xt_mac hooks only prerouting, input and forward (iptables refuses to load it elsewhere):
  // a locally generated packet has no link-layer source yet.
  hookUnavailable(
    r,
    hooks,
    "macSource",
    ["prerouting", "input", "forward"],
    "mac_not_available",
    "a packet has a link-layer source only at prerouting, input and forward (iptables refuses -m mac elsewhere too)",
    out,
  );
  // xt_physdev's checkentry: at output the bridge port is not chosen yet, so iptables refuses
  // --physdev-out and --physdev-is-out (negated too) there unless --physdev-is-bridged holds.
  const pd = r.match.physdev;
  if (pd && (pd.oif !== undefined || pd.isOut !== undefined) && pd.isBridged !== true && hooks.has("output")) {
    out.push(
      error(
        [...r.path, "match", "physdev", pd.oif !== undefined ? "oif" : "isOut"],
        "physdev_out_not_available",
        `physdev oif/isOut cannot be tested at the output hook${reachedFrom(r)} without isBridged: true: a locally generated packet's bridge port is not chosen there (iptables refuses --physdev-out and --physdev-is-out in OUTPUT without --physdev-is-bridged); add isBridged: true or move the rule to postrouting`,
      ),
    );
  }
  for (const key of ["saddrRange", "daddrRange"] as const) {
    const v = r.match[key];
    if (v === undefined || !r.match.family) continue;
    const fam = parsePrefix(unwrap(v).value.split("-")[0]!)?.family;
    if (fam !== r.match.family)
      out.push(
        error(
          [...r.path, "match", key],
          "address_family_mismatch",
          `${unwrap(v).value} is an ${fam} range but the rule is restricted to family ${r.match.family}`,
        ),
      );
  }
}

/** iptables refuses `--dir in` at output/postrouting and `--dir out` at prerouting/input (the kernel does not know it there). */
function ipsecDirection(r: RuleRef, hooks: Set<Hook>, out: Diagnostic[]): void {
  const m = r.match.ipsec;
  if (!m) return;
  const bad = [...hooks].filter((h) => (m.direction === "in" ? NO_IIF : NO_OIF).includes(h)).sort();
  if (!bad.length) return;
  const why =
    m.direction === "in"
      ? "a locally generated packet was not decapsulated"
      : "the packet's route (and so its IPsec policy) is not chosen yet";
  out.push(
    error(
      [...r.path, "match", "ipsec", "direction"],
      "ipsec_direction_not_available",
      `ipsec direction ${m.direction} cannot be tested at the ${bad.join("/")} hook${reachedFrom(r)}: ${why}; use direction ${m.direction === "in" ? "out" : "in"} or move the rule`,
    ),
  );
}

/** Tunnel endpoints are of the rule's family (iptables: the table's), without host bits. */
function ipsecTunnel(r: RuleRef, out: Diagnostic[]): void {
  const m = r.match.ipsec;
  if (!m) return;
  const addrs = [r.match.saddr, r.match.daddr].flatMap((v) => (v === undefined ? [] : asList(unwrap(v).value)));
  const families = new Set(addrs.flatMap((a) => parsePrefix(a)?.family ?? []));
  for (const key of ["tunnelSrc", "tunnelDst"] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    const at: Path = [...r.path, "match", "ipsec", key, ...(negated ? ["not"] : [])];
    const fam = parsePrefix(value)?.family;
    const other = r.match.family ?? (families.size === 1 ? [...families][0] : undefined);
    if (fam && other && fam !== other)
      out.push(
        error(
          at,
          "address_family_mismatch",
          `${value} is an ${fam} tunnel endpoint but the rule matches ${other} packets (iptables tests tunnel endpoints of the table's own family)`,
        ),
      );
    const hb = hostBitsProblem(value);
    if (hb) out.push(error(at, "address_host_bits", hb));
  }
}

function range(text: string): [number, number] | null {
  const m = /^(\d+)-(\d+)$/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function checkRange(text: unknown, max: number, at: Path, what: string, out: Diagnostic[]): void {
  if (typeof text !== "string") return;
  const r = range(text);
  if (r && (r[0] > r[1] || r[1] > max))
    out.push(error(at, "invalid_range", `${what} range ${text} must be low-high with low <= high <= ${max}`));
}

function rangesAndOptions(r: RuleRef, out: Diagnostic[]): void {
  const m = r.match;
  const mp = [...r.path, "match"];
  const ap = [...r.path, "action"];
  if (m.length !== undefined) {
    const { negated, value } = unwrap(m.length);
    checkRange(value, 65535, negated ? [...mp, "length", "not"] : [...mp, "length"], "length", out);
  }
  if (m.recent) {
    const { mode, seconds, hitcount } = m.recent;
    if ((seconds !== undefined || hitcount !== undefined) && mode !== "update" && mode !== "rcheck") {
      out.push(
        error(
          [...mp, "recent", seconds !== undefined ? "seconds" : "hitcount"],
          "recent_option_needs_check",
          `recent seconds/hitcount only apply with mode update or rcheck, not ${mode}`,
        ),
      );
    }
  }
  if (m.xt?.iface) {
    const f = m.xt.iface;
    const n = (f.interface ? 1 : 0) + (f.devIn ? 1 : 0) + (f.devOut ? 1 : 0);
    if (n !== 1)
      out.push(
        error(
          [...mp, "xt", "iface"],
          "iface_selector",
          `iface needs exactly one of interface, devIn or devOut (got ${n})`,
        ),
      );
  }
  if (m.xt?.fuzzy && m.xt.fuzzy.lowerLimit > m.xt.fuzzy.upperLimit) {
    out.push(
      error(
        [...mp, "xt", "fuzzy"],
        "invalid_range",
        `fuzzy lowerLimit (${m.xt.fuzzy.lowerLimit}) must not exceed upperLimit (${m.xt.fuzzy.upperLimit})`,
      ),
    );
  }
  const a = r.action;
  switch (a.type) {
    case "snat":
    case "dnat":
      if (!a.to.address && a.to.port === undefined)
        out.push(error([...ap, "to"], "nat_target_empty", `${a.type} needs an address and/or a port to translate to`));
      checkRange(a.to.port, 65535, [...ap, "to", "port"], "port", out);
      if (
        a.to.port !== undefined &&
        (!m.protocol || !PORT_PROTOCOLS.has(String(unwrap(m.protocol).value)) || unwrap(m.protocol).negated)
      ) {
        out.push(
          error(
            [...ap, "to", "port"],
            "port_without_protocol",
            `translating the port needs match protocol tcp, udp, sctp, udplite or dccp`,
          ),
        );
      }
      break;
    case "tproxy": {
      // xt_TPROXY's checkentry and nft's tproxy both need a positive TCP or UDP match.
      const p = m.protocol === undefined ? undefined : unwrap(m.protocol);
      if (!p || p.negated || (p.value !== "tcp" && p.value !== "udp"))
        out.push(
          error(
            ap,
            "tproxy_needs_protocol",
            "TPROXY hands the packet to a TCP or UDP socket: add match protocol tcp or udp (the kernel refuses it otherwise)",
          ),
        );
      break;
    }
    case "ctHelper": {
      // The kernel finds a helper by name and protocol: ftp on udp is ENOENT, as is a rule without -p.
      const p = m.protocol === undefined ? undefined : unwrap(m.protocol);
      const want: readonly string[] = CT_HELPERS[a.helper];
      const proto = p === undefined ? undefined : String(p.value);
      if (!p || p.negated || proto === undefined || !want.includes(proto))
        out.push(
          error(
            ap,
            "ct_helper_protocol",
            `the ${a.helper} helper tracks ${want.join(" or ")}: add match protocol ${want.join(" or ")} (the kernel has no ${a.helper} helper for ${p && !p.negated ? proto : "other protocols"})`,
          ),
        );
      break;
    }
    case "masquerade":
    case "redirect":
      checkRange(a.port, 65535, [...ap, "port"], "port", out);
      break;
    case "tee":
      if (isUnspecified(a.gateway))
        out.push(
          error(
            [...ap, "gateway"],
            "tee_gateway_unspecified",
            `TEE gateway ${a.gateway} is invalid: name the host on the local segment that receives the clones`,
          ),
        );
      break;
    case "ipmark": {
      const v4only = m.family === "ipv4" || onlyFamily(r, a.addr === "src" ? "saddr" : "daddr") === "ipv4";
      if (v4only && (a.shift ?? 0) >= 32)
        out.push(
          error(
            [...ap, "shift"],
            "ipmark_shift_too_large",
            `shifting an IPv4 address right by ${a.shift} bits leaves nothing: use a shift below 32`,
          ),
        );
      if (a.andMask === 0)
        out.push(
          warning(
            [...ap, "andMask"],
            "ipmark_constant_mark",
            `andMask 0 discards the address: every packet gets mark ${a.orMask ?? 0}; use a mark action instead`,
          ),
        );
      break;
    }
    case "rawsnat":
    case "rawdnat":
    case "netmap": {
      const hb = hostBitsProblem(a.to);
      if (hb) out.push(error([...ap, "to"], "address_host_bits", hb));
      break;
    }
    case "connmark":
      if (a.op === "set" && a.value === undefined)
        out.push(error([...ap, "value"], "missing_field", `connmark op set needs a value`));
      break;
  }
}

/** The single family of a rule's address match when all its items are literal addresses of one family. */
function onlyFamily(r: RuleRef, key: "saddr" | "daddr"): "ipv4" | "ipv6" | undefined {
  const v = r.match[key];
  if (v === undefined) return undefined;
  const fams = new Set(asList(unwrap(v).value).map((s) => parsePrefix(s)?.family ?? "set"));
  return fams.size === 1 && !fams.has("set") ? ([...fams][0] as "ipv4" | "ipv6") : undefined;
}
