// Policy matches -> iptables match options. A policy list (addresses, interfaces, ICMP
// types, long port lists) that one iptables rule cannot hold becomes several rules with
// the same target: the alternatives this module returns. A rule that can never match in a
// family (an IPv4 address in the IPv6 ruleset) returns null and is left out there, as nft's
// `ip saddr` implies IPv4.
import type { Path } from "../../diagnostics.ts";
import { parsePrefix } from "../../net/address.ts";
import {
  ICMP_TYPE_NUMBERS,
  ICMPV6_TYPE_NUMBERS,
  PROTOCOL_NUMBERS,
  parseRate,
  quotaRuleGrows,
  unwrap,
  type Match,
  type Policy,
} from "../../policy/index.ts";
import { cidr } from "./address.ts";
import type { Fam, RuleEnv } from "./context.ts";
import { ipsetName, limitName } from "./names.ts";
import { SLOT, piece, product, type Alt, type Piece } from "./pieces.ts";
import { bare } from "./quote.ts";
import { xtMatchPieces } from "./xt-match.ts";
import { extraApplies, extraPieces } from "./match-extra.ts";

const PORT_PROTOS = new Set(["tcp", "udp", "sctp", "dccp", "udplite"]);
/** Protocols with their own port match (`-m tcp --dport`); the others use multiport. */
const PORT_MATCH = new Set(["tcp", "udp", "sctp", "dccp"]);
const MULTIPORT_MAX = 15;

const TCP_FLAG_ORDER = ["fin", "syn", "rst", "psh", "ack", "urg"] as const;
const CT_ORDER = ["invalid", "new", "related", "established", "untracked"] as const;
const RATE_UNIT: Record<string, string> = { second: "sec", minute: "min", hour: "hour", day: "day" };
const UNIT_SECONDS: Record<string, number> = { second: 1, minute: 60, hour: 3600, day: 86400 };

const neg = (n: boolean) => (n ? "! " : "");
const hex = (n: number) => `0x${n.toString(16)}`;
const asList = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

export function protoName(p: string): string {
  // Names iptables does not know without /etc/protocols are written as numbers.
  return p === "icmpv6" ? "ipv6-icmp" : PROTOCOL_NUMBERS[p] !== undefined ? String(PROTOCOL_NUMBERS[p]) : p;
}

/** `N/sec` as iptables writes rates; refuses rates the kernel module cannot represent. */
export function iptRate(rate: string, scale: number, env: RuleEnv, path: Path): string {
  const { count, per } = parseRate(rate);
  if (count > scale * (UNIT_SECONDS[per] ?? 1)) {
    env.ctx.error(
      path,
      "iptables_rate_too_fast",
      `rate ${rate} is faster than the iptables module can count (at most ${scale}/second)`,
    );
  }
  return `${count}/${RATE_UNIT[per]}`;
}

/** The transport protocol a rule is pinned to: explicit (positive) or implied by its other matches. */
export function positiveProtocol(m: Match | undefined): string | undefined {
  if (!m) return undefined;
  if (m.protocol) {
    const { value, negated } = unwrap(m.protocol);
    if (!negated) return value;
  }
  if (m.tcpFlags) return "tcp";
  if (m.icmpType) return "icmp";
  if (m.icmpv6Type) return "icmpv6";
  return undefined;
}

function itemFamily(item: string, policy: Policy): Fam | undefined | "bad-set" {
  if (item.startsWith("@")) {
    const set = policy.sets[item.slice(1)];
    if (set?.type === "ipv4_addr") return "ipv4";
    if (set?.type === "ipv6_addr") return "ipv6";
    return "bad-set";
  }
  return parsePrefix(item)?.family;
}

function addressDim(key: "saddr" | "daddr", m: Match, env: RuleEnv): Alt[] | null {
  const v = m[key];
  if (v === undefined) return [[]];
  const { value, negated } = unwrap(v);
  const items = asList(value);
  const mine: string[] = [];
  for (const it of items) {
    const f = itemFamily(it, env.ctx.policy);
    if (f === "bad-set") {
      env.ctx.error(
        [...env.path, key],
        "iptables_set_type",
        `${it} is not a set of type ipv4_addr or ipv6_addr, so it cannot match an address`,
      );
    } else if (f === env.fam) mine.push(it);
  }
  if (mine.length === 0) return null;
  const flag = key === "saddr" ? "-s" : "-d";
  return mine.map((it) => {
    if (it.startsWith("@")) {
      const slot = key === "saddr" ? SLOT.setSrc : SLOT.setDst;
      return [
        piece(slot, `-m set ${neg(negated)}--match-set ${ipsetName(it.slice(1))} ${key === "saddr" ? "src" : "dst"}`),
      ];
    }
    return [piece(key === "saddr" ? SLOT.s : SLOT.d, `${neg(negated)}${flag} ${cidr(parsePrefix(it)!)}`)];
  });
}

function ifaceDim(key: "iif" | "oif", m: Match, env: RuleEnv): Alt[] {
  const v = m[key];
  if (v === undefined) return [[]];
  const { value, negated } = unwrap(v);
  const flag = key === "iif" ? "-i" : "-o";
  return asList(value).map((name) => {
    const text = bare(name.endsWith("*") ? `${name.slice(0, -1)}+` : name, env.ctx, [...env.path, key], "interface");
    return [piece(key === "iif" ? SLOT.i : SLOT.o, `${neg(negated)}${flag} ${text}`)];
  });
}

interface PortOpt {
  /** Goes into `-m tcp` (one port or range). */
  single?: string;
  /** A whole `-m multiport` match. */
  multi?: string;
}

function portOpts(dir: "sport" | "dport", m: Match, proto: string, env: RuleEnv): PortOpt[] {
  const v = m[dir];
  if (v === undefined) return [{}];
  const { value, negated } = unwrap(v);
  const items = asList(value).map((p) => (typeof p === "number" ? String(p) : p.replace("-", ":")));
  if (items.length === 1 && PORT_MATCH.has(proto)) return [{ single: `${neg(negated)}--${dir} ${items[0]}` }];
  // multiport holds 15 ports; a range counts twice.
  const chunks: string[][] = [];
  let cur: string[] = [];
  let weight = 0;
  for (const it of items) {
    const w = it.includes(":") ? 2 : 1;
    if (weight + w > MULTIPORT_MAX) {
      chunks.push(cur);
      cur = [];
      weight = 0;
    }
    cur.push(it);
    weight += w;
  }
  chunks.push(cur);
  if (negated && chunks.length > 1) {
    env.ctx.error(
      [...env.path, dir],
      "iptables_negated_ports",
      `iptables can negate at most ${MULTIPORT_MAX} ports in one rule (a range counts twice); use fewer ports or target nftables`,
    );
    return [];
  }
  return chunks.map((c) => ({ multi: `-m multiport ${neg(negated)}--${dir}s ${c.join(",")}` }));
}

function tcpFlagsText(m: Match): string | undefined {
  if (!m.tcpFlags) return undefined;
  const { value, negated } = unwrap(m.tcpFlags);
  const fmt = (flags: readonly string[]) => {
    const list = TCP_FLAG_ORDER.filter((f) => flags.includes(f)).map((f) => f.toUpperCase());
    return list.length === 0 ? "NONE" : list.join(",");
  };
  return `${neg(negated)}--tcp-flags ${fmt(value.mask)} ${fmt(value.compare)}`;
}

/** `-p` plus the protocol's own match (ports, TCP flags, ICMP types). */
function protocolDims(m: Match, env: RuleEnv): Alt[][] | null {
  const dims: Alt[][] = [];
  const implied = m.tcpFlags ? "tcp" : m.icmpType ? "icmp" : m.icmpv6Type ? "icmpv6" : undefined;
  if (m.icmpType && env.fam === "ipv6") return null;
  if (m.icmpv6Type && env.fam === "ipv4") return null;
  let proto: string | undefined;
  if (m.protocol) {
    const { value, negated } = unwrap(m.protocol);
    // ICMP of the other family: a rule without a family is not in this family's ruleset; under
    // an explicit family it is that protocol number there (ip6tables -p icmp: next header 1).
    // Negated, it renders as nft's meta l4proto != icmp does: true unless the number is there.
    const otherFamily = (value === "icmp" && env.fam === "ipv6") || (value === "icmpv6" && env.fam === "ipv4");
    if (!negated && otherFamily && !m.family) return null;
    if (implied && (negated || value !== implied)) {
      env.ctx.error(
        [...env.path, "protocol"],
        "iptables_protocol_conflict",
        `this rule's other matches need protocol ${implied}`,
      );
      return null;
    }
    if (!negated) proto = value;
    dims.push([[piece(SLOT.p, `${neg(negated)}-p ${protoName(value)}`)]]);
  } else if (implied) {
    proto = implied;
    dims.push([[piece(SLOT.p, `-p ${protoName(implied)}`)]]);
  }
  if (m.sport !== undefined || m.dport !== undefined) {
    if (!proto || !PORT_PROTOS.has(proto)) {
      env.ctx.error(
        [...env.path, m.dport !== undefined ? "dport" : "sport"],
        "iptables_ports_need_protocol",
        "iptables matches ports only with protocol tcp, udp, sctp, dccp or udplite; add the protocol (or split the rule per protocol)",
      );
      return null;
    }
  }
  if (proto && PORT_PROTOS.has(proto)) {
    const flags = tcpFlagsText(m);
    const alts: Alt[] = [];
    for (const s of portOpts("sport", m, proto, env)) {
      for (const d of portOpts("dport", m, proto, env)) {
        const own = [s.single, d.single, flags].filter((x): x is string => x !== undefined);
        const alt: Piece[] = [];
        if (own.length > 0) alt.push(piece(SLOT.proto, `-m ${proto} ${own.join(" ")}`));
        for (const mp of [s.multi, d.multi]) if (mp) alt.push(piece(SLOT.multiport, mp));
        alts.push(alt);
      }
    }
    if (alts.length === 0) return null;
    dims.push(alts);
  }
  for (const [key, table, mod, opt] of [
    ["icmpType", ICMP_TYPE_NUMBERS, "icmp", "--icmp-type"],
    ["icmpv6Type", ICMPV6_TYPE_NUMBERS, "icmp6", "--icmpv6-type"],
  ] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    const types = asList(value as string | number | Array<string | number>);
    if (negated && types.length > 1) {
      env.ctx.error(
        [...env.path, key],
        "iptables_negated_list",
        "iptables can negate only one ICMP type per rule; split the rule or use target nftables",
      );
      return null;
    }
    const code = m.icmpCode !== undefined ? `/${m.icmpCode}` : "";
    dims.push(
      types.map((t) => [
        piece(SLOT.icmp, `-m ${mod} ${neg(negated)}${opt} ${typeof t === "number" ? t : table[t]}${code}`),
      ]),
    );
  }
  return dims;
}

function markText(v: NonNullable<Match["mark"]>): string {
  const { value, negated } = unwrap(v);
  const text =
    typeof value === "number"
      ? hex(value)
      : value.mask === 0xffffffff
        ? hex(value.value)
        : `${hex(value.value)}/${hex(value.mask)}`;
  return `${neg(negated)}--mark ${text}`;
}

/** Matches that never multiply a rule. */
function singlePieces(m: Match, env: RuleEnv): Piece[] {
  const out: Piece[] = [];
  const at = (...rest: string[]) => [...env.path, ...rest];
  if (m.ctState) {
    const { value, negated } = unwrap(m.ctState);
    const states = CT_ORDER.filter((s) => value.includes(s)).map((s) => s.toUpperCase());
    out.push(piece(SLOT.conntrack, `-m conntrack ${neg(negated)}--ctstate ${states.join(",")}`));
  }
  if (m.tcpMss !== undefined) {
    const { value, negated } = unwrap(m.tcpMss);
    out.push(piece(SLOT.tcpmss, `-m tcpmss ${neg(negated)}--mss ${String(value).replace("-", ":")}`));
  }
  if (m.length !== undefined) {
    const { value, negated } = unwrap(m.length);
    out.push(piece(SLOT.length, `-m length ${neg(negated)}--length ${String(value).replace("-", ":")}`));
  }
  if (m.mark !== undefined) out.push(piece(SLOT.mark, `-m mark ${markText(m.mark)}`));
  if (m.ctmark !== undefined) out.push(piece(SLOT.connmark, `-m connmark ${markText(m.ctmark)}`));
  if (m.daddrType) {
    const { value, negated } = unwrap(m.daddrType);
    // IPv6 has no broadcast (dropped from the list: it never matches there; see
    // matchAlternatives), and ip6t addrtype refuses the route types below.
    const types = env.fam === "ipv6" ? value.filter((t) => t !== "broadcast") : value;
    if (env.fam === "ipv6" && types.some((t) => t === "blackhole" || t === "unreachable" || t === "prohibit")) {
      env.ctx.error(
        at("daddrType"),
        "iptables_addrtype_ipv6",
        "ip6tables' addrtype match cannot test blackhole, unreachable or prohibit; restrict the rule to family ipv4 or use target nftables",
      );
    }
    if (types.length > 0)
      out.push(
        piece(SLOT.addrtype, `-m addrtype ${neg(negated)}--dst-type ${types.map((t) => t.toUpperCase()).join(",")}`),
      );
  }
  if (m.rpfilter) out.push(piece(SLOT.rpfilter, m.rpfilter === "fail" ? "-m rpfilter --invert" : "-m rpfilter"));
  if (m.limit) {
    const rate = iptRate(m.limit.rate, m.limit.over ? 1_000_000 : 10_000, env, at("limit", "rate"));
    if (m.limit.over) {
      // iptables' limit cannot invert; a hashlimit without --hashlimit-mode is one bucket.
      const burst = m.limit.burst !== undefined ? ` --hashlimit-burst ${m.limit.burst}` : "";
      out.push(
        piece(SLOT.limit, `-m hashlimit --hashlimit-above ${rate}${burst} --hashlimit-name ${limitName(env.seed)}`),
      );
    } else {
      const burst = m.limit.burst !== undefined ? ` --limit-burst ${m.limit.burst}` : "";
      out.push(piece(SLOT.limit, `-m limit --limit ${rate}${burst}`));
    }
  }
  if (m.meter) {
    const mt = m.meter;
    const rate = iptRate(mt.rate, 1_000_000, env, at("meter", "rate"));
    const parts = [
      `-m hashlimit --hashlimit-${mt.over ? "above" : "upto"} ${rate}`,
      ...(mt.burst !== undefined ? [`--hashlimit-burst ${mt.burst}`] : []),
      `--hashlimit-mode ${mt.key === "saddr" ? "srcip" : "dstip"}`,
      `--hashlimit-name ${bare(mt.name, env.ctx, at("meter", "name"), "meter name")}`,
      `--hashlimit-htable-size ${mt.size} --hashlimit-htable-max ${mt.size}`,
      `--hashlimit-htable-expire ${mt.timeoutSeconds * 1000}`,
    ];
    out.push(piece(SLOT.meter, parts.join(" ")));
  }
  if (m.recent) {
    const r = m.recent;
    const parts = [
      `-m recent --${r.mode}`,
      ...(r.seconds !== undefined ? [`--seconds ${r.seconds}`] : []),
      ...(r.hitcount !== undefined ? [`--hitcount ${r.hitcount}`] : []),
      `--name ${bare(r.name, env.ctx, at("recent", "name"), "recent list name")}`,
      r.side === "source" ? "--rsource" : "--rdest",
    ];
    out.push(piece(SLOT.recent, parts.join(" ")));
  }
  out.push(...extraPieces(m, env));
  if (m.quota) out.push(...quotaPieces(m.quota, env));
  if (m.xt) out.push(...xtMatchPieces(m.xt, env));
  return out;
}

function quotaPieces(q: NonNullable<Match["quota"]>, env: RuleEnv): Piece[] {
  const path = [...env.path, "quota", "name"];
  const def = env.ctx.policy.quotas[q.name];
  if (!def) {
    env.ctx.error(path, "iptables_unknown_quota", `quota ${JSON.stringify(q.name)} is not declared under quotas`);
    return [];
  }
  if (q.name.length === 0 || q.name.length > 15 || q.name.startsWith(".") || q.name.includes("/")) {
    env.ctx.error(
      path,
      "iptables_quota_name",
      "quota2 names are 1-15 characters, must not start with a dot or contain a slash",
    );
    return [];
  }
  const name = bare(q.name, env.ctx, path, "quota name");
  const parts = [`-m quota2 --name ${name}`];
  // quota2's --grow is per rule: a bucket's filling rules grow, its other rules count down.
  const grow = quotaRuleGrows(def, q);
  if (grow) parts.push("--grow");
  if (q.noChange) parts.push("--no-change");
  if (def.mode === "packets") parts.push("--packets");
  // Every rule carries the same initial value (whichever creates the counter sets it);
  // 0 is quota2's default, so it is left out as the manual writes it (unless `!` needs it).
  const invert = q.invert === true && !grow;
  if (def.limit || invert) parts.push(`${neg(invert)}--quota ${def.limit ?? 0}`);
  return [piece(SLOT.quota, parts.join(" "))];
}

/**
 * The alternatives of a match in one family: each is the match part of one iptables rule.
 * null: the rule cannot match in this family (or an error was recorded).
 */
export function matchAlternatives(m: Match | undefined, env: RuleEnv): Alt[] | null {
  if (!m) return [[]];
  if (m.family && m.family !== env.fam) return null;
  if (m.xt?.ipv4options && env.fam === "ipv6") return null;
  if (!extraApplies(m, env)) return null;
  if (m.xt?.dhcpmac && env.fam === "ipv6") return null;
  // Only broadcast destinations asked for: no IPv6 packet has one.
  if (m.daddrType && env.fam === "ipv6") {
    const { value, negated } = unwrap(m.daddrType);
    if (!negated && value.every((t) => t === "broadcast")) return null;
  }
  const dims: Alt[][] = [];
  for (const key of ["saddr", "daddr"] as const) {
    const d = addressDim(key, m, env);
    if (!d) return null;
    dims.push(d);
  }
  dims.push(ifaceDim("iif", m, env), ifaceDim("oif", m, env));
  const proto = protocolDims(m, env);
  if (!proto) return null;
  dims.push(...proto);
  dims.push([singlePieces(m, env)]);
  return product(dims);
}
