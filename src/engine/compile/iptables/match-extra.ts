// The extra match keys (policy/match-extra.ts) as iptables match options.
import { parsePrefix } from "../../net/address.ts";
import { PROTOCOL_NUMBERS, WEEKDAYS, ipsecTunnelFamily, unwrap, type Match } from "../../policy/index.ts";
import type { RuleEnv } from "./context.ts";
import { SLOT, piece, type Piece } from "./pieces.ts";
import { bare } from "./quote.ts";
import { ipsetName } from "./names.ts";

const neg = (n: boolean) => (n ? "! " : "");
const NAT_BITS = new Set(["snat", "dnat"]);
/** --ctproto takes a number (iptables-save prints one); the names libxtables would look up in /etc/protocols. */
const CT_PROTO_NUMBERS: Record<string, number> = {
  tcp: 6,
  udp: 17,
  icmp: 1,
  icmpv6: 58,
  sctp: 132,
  udplite: 136,
  dccp: 33,
  gre: 47,
  esp: 50,
  ah: 51,
};

/** False when the extra keys cannot match in this family (a range of the other family, -f in IPv6). */
export function extraApplies(m: Match, env: RuleEnv): boolean {
  for (const key of ["saddrRange", "daddrRange"] as const) {
    const v = m[key];
    if (v !== undefined && parsePrefix(unwrap(v).value.split("-")[0]!)?.family !== env.fam) return false;
  }
  for (const key of ["saddr", "daddr"] as const) {
    const v = m.ctOriginal?.[key];
    if (v !== undefined && parsePrefix(unwrap(v).value)?.family !== env.fam) return false;
  }
  const tunnel = m.ipsec ? ipsecTunnelFamily(m.ipsec) : undefined;
  if (tunnel !== undefined && tunnel !== env.fam) return false;
  if (m.routingHeader !== undefined && env.fam === "ipv4") return false;
  if (m.tupleSet !== undefined) {
    const set = env.ctx.policy.sets[unwrap(m.tupleSet).value.set];
    if (!set?.type.startsWith(env.fam === "ipv4" ? "ipv4_addr," : "ipv6_addr,")) return false;
  }
  return !(m.fragment !== undefined && env.fam === "ipv6");
}

export function extraPieces(m: Match, env: RuleEnv): Piece[] {
  const out: Piece[] = [];
  const owner: string[] = [];
  for (const [key, opt] of [
    ["skuid", "--uid-owner"],
    ["skgid", "--gid-owner"],
  ] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    owner.push(`${neg(negated)}${opt} ${value}`);
  }
  if (owner.length) out.push(piece(SLOT.owner, `-m owner ${owner.join(" ")}`));
  if (m.tupleSet !== undefined) {
    const { value, negated } = unwrap(m.tupleSet);
    out.push(
      piece(SLOT.setTuple, `-m set ${neg(negated)}--match-set ${ipsetName(value.set)} ${value.directions.join(",")}`),
    );
  }
  if (m.ctStatus !== undefined) {
    const { value, negated } = unwrap(m.ctStatus);
    // DNAT/SNAT are --ctstate pseudo-states; the other bits are --ctstatus. "Any of" across
    // the two options is an OR one rule cannot hold.
    const nat = value.filter((b) => NAT_BITS.has(b));
    const other = value.filter((b) => !NAT_BITS.has(b));
    if (nat.length && other.length) {
      env.ctx.error(
        [...env.path, "ctStatus"],
        "iptables_ctstatus_mixed",
        "iptables tests snat/dnat (--ctstate) and the other status bits (--ctstatus) in different options; split the rule or use target nftables",
      );
    } else if (nat.length) {
      out.push(
        piece(SLOT.ctStatus, `-m conntrack ${neg(negated)}--ctstate ${nat.map((b) => b.toUpperCase()).join(",")}`),
      );
    } else {
      out.push(
        piece(
          SLOT.ctStatus,
          `-m conntrack ${neg(negated)}--ctstatus ${other.map((b) => b.toUpperCase().replace("-", "_")).join(",")}`,
        ),
      );
    }
  }
  if (m.ctOriginal !== undefined) {
    const c = m.ctOriginal;
    const opts: string[] = [];
    if (c.protocol !== undefined) {
      const { value, negated } = unwrap(c.protocol);
      opts.push(`${neg(negated)}--ctproto ${PROTOCOL_NUMBERS[value] ?? CT_PROTO_NUMBERS[value] ?? value}`);
    }
    for (const [key, opt] of [
      ["saddr", "--ctorigsrc"],
      ["daddr", "--ctorigdst"],
      ["sport", "--ctorigsrcport"],
      ["dport", "--ctorigdstport"],
    ] as const) {
      const v = c[key];
      if (v === undefined) continue;
      const { value, negated } = unwrap(v);
      opts.push(`${neg(negated)}${opt} ${typeof value === "string" ? value.replace(/^(\d+)-(\d+)$/, "$1:$2") : value}`);
    }
    out.push(piece(SLOT.ctOriginal, `-m conntrack ${opts.join(" ")}`));
  }
  const ranges: string[] = [];
  for (const [key, opt] of [
    ["saddrRange", "--src-range"],
    ["daddrRange", "--dst-range"],
  ] as const) {
    const v = m[key];
    if (v === undefined) continue;
    const { value, negated } = unwrap(v);
    ranges.push(`${neg(negated)}${opt} ${value}`);
  }
  if (ranges.length) out.push(piece(SLOT.iprange, `-m iprange ${ranges.join(" ")}`));
  if (m.fragment !== undefined) out.push(piece(SLOT.fragment, m.fragment ? "-f" : "! -f"));
  if (m.pktType !== undefined) {
    const { value, negated } = unwrap(m.pktType);
    out.push(
      piece(
        SLOT.pkttype,
        `-m pkttype ${neg(negated)}--pkt-type ${({ host: "unicast", broadcast: "broadcast", multicast: "multicast", other: "otherhost" } as const)[value]}`,
      ),
    );
  }
  if (m.routingHeader !== undefined) {
    // ip6t_rt: --rt-segsleft takes min:max.
    const { type, segmentsLeft } = m.routingHeader;
    const opts: string[] = [];
    if (type !== undefined) {
      const { value, negated } = unwrap(type);
      opts.push(`${neg(negated)}--rt-type ${value}`);
    }
    if (segmentsLeft !== undefined) {
      const { value, negated } = unwrap(segmentsLeft);
      opts.push(`${neg(negated)}--rt-segsleft ${String(value).replace("-", ":")}`);
    }
    out.push(piece(SLOT.rt, ["-m rt", ...opts].join(" ")));
  }
  if (m.socket !== undefined) {
    // xt_socket (both families); options in iptables-save's order.
    const s = m.socket;
    const opts = [
      "-m socket",
      ...(s.transparent ? ["--transparent"] : []),
      ...(s.wildcard ? ["--nowildcard"] : []),
      ...(s.restoreMark ? ["--restore-skmark"] : []),
    ];
    out.push(piece(SLOT.socket, opts.join(" ")));
  }
  if (m.dscp !== undefined) {
    // xt_dscp serves both families; written as iptables-save prints it.
    const { value, negated } = unwrap(m.dscp);
    out.push(piece(SLOT.dscp, `-m dscp ${neg(negated)}--dscp 0x${value.toString(16).padStart(2, "0")}`));
  }
  if (m.ttl !== undefined) {
    // xt_ttl (IPv4) and xt_hl (IPv6) take the same comparisons; ne is `! --ttl-eq`.
    const [mod, p] = env.fam === "ipv6" ? ["hl", "--hl"] : ["ttl", "--ttl"];
    const { op, value } = m.ttl;
    out.push(piece(SLOT.ttl, `-m ${mod} ${op === "ne" ? `! ${p}-eq` : `${p}-${op}`} ${value}`));
  }
  if (m.connlimit !== undefined) {
    const c = m.connlimit;
    const full = env.fam === "ipv6" ? 128 : 32;
    if ((c.prefix ?? full) > full)
      env.ctx.error(
        [...env.path, "connlimit", "prefix"],
        "iptables_connlimit_prefix",
        `connlimit prefix ${c.prefix} is longer than an ${env.fam} address`,
      );
    const mask = ` --connlimit-mask ${Math.min(c.prefix ?? full, full)}`;
    out.push(
      piece(
        SLOT.connlimit,
        `-m connlimit --connlimit-${c.over ? "above" : "upto"} ${c.count}${mask} --connlimit-${c.key}`,
      ),
    );
  }
  if (m.statistic !== undefined) {
    const { value, negated } = unwrap(m.statistic);
    out.push(
      piece(
        SLOT.statistic,
        value.mode === "random"
          ? `-m statistic --mode random ${neg(negated)}--probability ${value.probability.toFixed(11)}`
          : `-m statistic --mode nth ${neg(negated)}--every ${value.every} --packet ${value.packet}`,
      ),
    );
  }
  if (m.macSource !== undefined) {
    const { value, negated } = unwrap(m.macSource);
    out.push(piece(SLOT.mac, `-m mac ${neg(negated)}--mac-source ${value}`));
  }
  if (m.physdev !== undefined) out.push(piece(SLOT.physdev, physdevText(m.physdev, env)));
  if (m.time !== undefined) {
    // xt_time works in UTC unless --kerneltz, which the policy never asks for.
    const t = m.time;
    const opts = [
      t.start !== undefined ? `--timestart ${t.start}` : "",
      t.stop !== undefined ? `--timestop ${t.stop}` : "",
      t.days !== undefined ? `--weekdays ${WEEKDAYS.filter((d) => t.days!.includes(d)).join(",")}` : "",
      t.dateStart !== undefined ? `--datestart ${t.dateStart}` : "",
      t.dateStop !== undefined ? `--datestop ${t.dateStop}` : "",
    ].filter(Boolean);
    out.push(piece(SLOT.time, `-m time ${opts.join(" ")}`));
  }
  if (m.ipsec !== undefined) {
    const { direction, policy, protocol, tunnelSrc, tunnelDst } = m.ipsec;
    const opts = [`--dir ${direction}`, `--pol ${policy}`, ...(protocol ? [`--proto ${protocol}`] : [])];
    // libxt_policy takes tunnel addresses only with --mode tunnel (iptables 1.8.9 refuses the
    // manual's line without it), which is what they mean: the outer addresses of a tunnel-mode SA.
    if (tunnelSrc !== undefined || tunnelDst !== undefined) opts.push("--mode tunnel");
    for (const [v, opt] of [
      [tunnelSrc, "--tunnel-src"],
      [tunnelDst, "--tunnel-dst"],
    ] as const) {
      if (v === undefined) continue;
      const { value, negated } = unwrap(v);
      opts.push(`${neg(negated)}${opt} ${value}`);
    }
    out.push(piece(SLOT.ipsec, `-m policy ${opts.join(" ")}`));
  }
  return out;
}

/** `-m physdev` in the order iptables-save prints its options (so a saved rule imports back the same). */
function physdevText(p: NonNullable<Match["physdev"]>, env: RuleEnv): string {
  const opts: string[] = [];
  const flag = (v: boolean | undefined, opt: string) => {
    if (v !== undefined) opts.push(`${neg(!v)}${opt}`);
  };
  const port = (v: NonNullable<Match["physdev"]>["iif"], opt: string, key: string) => {
    if (v === undefined) return;
    const { value, negated } = unwrap(v);
    const name = value.endsWith("*") ? `${value.slice(0, -1)}+` : value;
    opts.push(`${neg(negated)}${opt} ${bare(name, env.ctx, [...env.path, "physdev", key], "bridge port")}`);
  };
  flag(p.isIn, "--physdev-is-in");
  port(p.iif, "--physdev-in", "iif");
  flag(p.isOut, "--physdev-is-out");
  port(p.oif, "--physdev-out", "oif");
  flag(p.isBridged, "--physdev-is-bridged");
  return `-m physdev ${opts.join(" ")}`;
}
