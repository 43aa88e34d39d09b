// iptables match modules for the extra match keys (policy/match-extra.ts): owner, iprange.
// (conntrack --ctstate DNAT/SNAT and --ctstatus live with the conntrack module; -f with the
// core options in iptables.ts.)
import { AddressRange, OWNER_NAME, TIME_DATE_MAX, WEEKDAYS, type PKT_TYPES, type Match } from "../policy/index.ts";
import { zoneIdProblem } from "../net/address.ts";
import { fail } from "./cursor.ts";
import { negate, setMatch, type OptionValue, type Options, type RuleDraft } from "./rule-draft.ts";
import { familyOf, parseAddress, parseDscp, parseDscpClass, parseInterface, strtoulBase0 } from "./values.ts";

/** The shape of matches.ts's ModuleSpec (kept structural so the two files do not import each other). */
interface ExtraModule {
  options: Record<string, { arity: 0 | 1 | 2; neg?: boolean }>;
  build(o: Options, d: RuleDraft): void;
}

/** Refuses the first of `refused` the rule gives: module `mod` has it, the policy has not (it has `supported`). */
function refuseOptions(o: Options, mod: string, refused: readonly string[], supported: string): void {
  for (const k of refused) {
    const x = o.get(k);
    if (x) fail("import_unsupported", `${mod} ${k} has no equivalent in the policy schema (${supported} do)`, x.opt);
  }
}

const negArg = { arity: 1 as const, neg: true };
const arg1 = { arity: 1 as const };
const flag0 = { arity: 0 as const };
const val = (o: OptionValue) => o.value ?? "";

/**
 * A uid/gid, a range, or a name: iptables resolves a name on the host that loads the rule
 * (getpwnam/getgrnam), as nft does for `meta skuid "name"`, so the policy keeps it. root is 0
 * (the one name with the same id everywhere).
 */
function ownerId(o: OptionValue, what: string): number | string {
  const t = val(o);
  if (t === "root") return 0;
  // Numbers as libxt_owner reads them (measured, iptables 1.8.9): strtoul base 0 (010 is 8,
  // 0x21 is 33, 08 is refused), at most 4294967294 (-1 is reserved: 4294967295 is "Bad
  // value"), `-` or `:` between a range's ends; a range whose ends are reversed the kernel
  // refuses (Invalid argument).
  const m = /^([0-9a-fA-FxX]+)(?:[-:]([0-9a-fA-FxX]+))?$/.exec(t);
  if (m) {
    const lo = ownerNumber(m[1]!);
    const hi = m[2] === undefined ? lo : ownerNumber(m[2]);
    if (lo !== undefined && hi !== undefined && lo <= hi) return lo === hi ? lo : `${lo}-${hi}`;
  }
  if (OWNER_NAME.test(t)) return t;
  const kind = what.includes("gid") ? "group" : "user";
  return fail(
    "import_invalid_value",
    `${what} ${t}: not a ${kind} id, range or name (a name: letters, digits, ., _ and -, starting with a letter or _, at most 32)`,
    t,
  );
}

/**
 * One id as strtoul base 0 reads it (digits capped at an unsigned long's: 16 hex, 0 and 22
 * octal, 20 decimal), or undefined where iptables says "Bad value".
 */
const ownerNumber = (t: string): number | undefined => strtoulBase0(t, 0xfffffffe, { hex: 16, octal: 22, decimal: 20 });

const owner: ExtraModule = {
  options: {
    "--uid-owner": negArg,
    "--gid-owner": negArg,
    "--socket-exists": { arity: 0, neg: true },
    "--suppl-groups": { arity: 0 },
  },
  build(o, d) {
    refuseOptions(o, "owner", ["--socket-exists", "--suppl-groups"], "--uid-owner and --gid-owner");
    const u = o.get("--uid-owner");
    if (u) setMatch(d, "skuid", negate(u.neg, ownerId(u, "--uid-owner")), u.opt);
    const g = o.get("--gid-owner");
    if (g) setMatch(d, "skgid", negate(g.neg, ownerId(g, "--gid-owner")), g.opt);
  },
};

const iprange: ExtraModule = {
  options: { "--src-range": negArg, "--dst-range": negArg },
  build(o, d) {
    for (const [opt, key] of [
      ["--src-range", "saddrRange"],
      ["--dst-range", "daddrRange"],
    ] as const) {
      const x = o.get(opt);
      if (!x) continue;
      if (!AddressRange.safeParse(val(x)).success)
        fail(
          "import_invalid_value",
          zoneIdProblem(val(x)) ?? `${val(x)} is not an address range first-last (one family, first <= last)`,
          val(x),
        );
      setMatch(d, key, negate(x.neg, val(x)), x.opt);
    }
  },
};

/**
 * `-m policy`: direction and policy, the protocol and tunnel endpoints of the (one) element;
 * `--mode tunnel` only beside the endpoints (which imply it); the rest has no policy key.
 */
const policy: ExtraModule = {
  options: {
    "--dir": { arity: 1 },
    "--pol": { arity: 1 },
    "--strict": { arity: 0 },
    "--next": { arity: 0 },
    "--proto": negArg,
    "--reqid": negArg,
    "--spi": negArg,
    "--mode": negArg,
    "--tunnel-src": negArg,
    "--tunnel-dst": negArg,
  },
  build(o, d) {
    const dir = o.get("--dir");
    const pol = o.get("--pol");
    if (!dir || !pol) fail("import_missing_argument", "-m policy needs --dir in|out and --pol ipsec|none", "-m policy");
    if (val(dir) !== "in" && val(dir) !== "out")
      fail("import_invalid_value", `--dir ${val(dir)}: must be in or out`, val(dir));
    if (val(pol) !== "ipsec" && val(pol) !== "none")
      fail("import_invalid_value", `--pol ${val(pol)}: must be ipsec or none`, val(pol));
    const tunnel = o.has("--tunnel-src") || o.has("--tunnel-dst");
    const mode = o.get("--mode");
    for (const k of ["--strict", "--next", "--reqid", "--spi", "--mode"]) {
      const x = o.get(k);
      if (x && !(k === "--mode" && tunnel && !x.neg && val(x) === "tunnel"))
        fail(
          "import_unsupported",
          `policy ${k === "--mode" && x.value ? `${x.neg ? "! " : ""}--mode ${val(x)}` : k} has no equivalent in the policy schema (--dir, --pol, --proto, --tunnel-src and --tunnel-dst do, the last two with --mode tunnel): drop it to match any IPsec packet of that direction, or keep the rule on an iptables host`,
          x.opt,
        );
    }
    const m: NonNullable<Match["ipsec"]> = {
      direction: val(dir) as "in" | "out",
      policy: val(pol) as "ipsec" | "none",
    };
    const proto = o.get("--proto");
    if (proto) {
      if (proto.neg)
        fail("import_unsupported", "! --proto: the policy schema tests one protocol, not its absence", proto.opt);
      const p = ({ esp: "esp", ah: "ah", ipcomp: "ipcomp", "50": "esp", "51": "ah", "108": "ipcomp" } as const)[
        val(proto).toLowerCase() as "esp"
      ];
      if (!p) fail("import_invalid_value", `--proto ${val(proto)}: must be esp, ah or ipcomp`, val(proto));
      if (m.policy === "none")
        fail(
          "import_invalid_value",
          "--proto with --pol none: a packet without IPsec has no protocol to test",
          proto.opt,
        );
      m.protocol = p;
    }
    for (const [k, key] of [
      ["--tunnel-src", "tunnelSrc"],
      ["--tunnel-dst", "tunnelDst"],
    ] as const) {
      const x = o.get(k);
      if (!x) continue;
      if (m.policy === "none")
        fail("import_invalid_value", `${k} with --pol none: a packet without IPsec has no tunnel`, x.opt);
      const a = parseAddress(val(x), x.opt);
      const fam = familyOf(a);
      if (d.family !== undefined && fam !== d.family)
        fail("import_invalid_value", `${k} ${val(x)} is not an ${d.family} address, as the rule's family is`, val(x));
      const src = m.tunnelSrc;
      if (src !== undefined && familyOf(typeof src === "string" ? src : src.not) !== fam)
        fail("import_invalid_value", "--tunnel-src and --tunnel-dst must be of one family", x.opt);
      m[key] = negate(x.neg, a);
    }
    // libxt_policy takes tunnel endpoints only with --mode tunnel (the manual's SYSRQ line has
    // none, and iptables 1.8.9 refuses it): they mean a tunnel-mode SA, which the render says.
    if (tunnel && !mode) d.notes.push("--tunnel-src/--tunnel-dst: a tunnel-mode SA (rendered with --mode tunnel)");
    setMatch(d, "ipsec", m, "-m policy");
  },
};

const PKT_TYPE_WORDS: Record<string, (typeof PKT_TYPES)[number]> = {
  unicast: "host",
  host: "host",
  broadcast: "broadcast",
  multicast: "multicast",
  otherhost: "other",
};
const pkttype: ExtraModule = {
  options: { "--pkt-type": negArg },
  build(o, d) {
    const t = o.get("--pkt-type");
    if (!t) fail("import_missing_argument", "-m pkttype needs --pkt-type", "-m pkttype");
    const v = PKT_TYPE_WORDS[val(t).toLowerCase()];
    if (!v)
      fail(
        "import_unsupported",
        `--pkt-type ${val(t)}: the policy matches unicast (host), broadcast, multicast and otherhost`,
        val(t),
      );
    setMatch(d, "pktType", negate(t.neg, v), t.opt);
  },
};

/** `-m dscp --dscp N | --dscp-class NAME` (either negated): both families. */
const dscp: ExtraModule = {
  options: { "--dscp": negArg, "--dscp-class": negArg },
  build(o, d) {
    const n = o.get("--dscp");
    const c = o.get("--dscp-class");
    if (!n === !c) fail("import_syntax", "-m dscp needs exactly one of --dscp and --dscp-class", "-m dscp");
    const x = (n ?? c)!;
    const v = n ? parseDscp(val(n), "--dscp") : parseDscpClass(val(x), "--dscp-class");
    setMatch(d, "dscp", negate(x.neg, v), x.opt);
  },
};

/**
 * `-m socket [--transparent] [--nowildcard] [--restore-skmark]` (both families; no negation,
 * libxt_socket has none): `socket`, --nowildcard as `wildcard: true`.
 */
const socket: ExtraModule = {
  options: { "--transparent": flag0, "--nowildcard": flag0, "--restore-skmark": flag0 },
  build(o, d) {
    const m: NonNullable<Match["socket"]> = {};
    if (o.has("--transparent")) m.transparent = true;
    if (o.has("--nowildcard")) m.wildcard = true;
    if (o.has("--restore-skmark")) m.restoreMark = true;
    setMatch(d, "socket", m, "-m socket");
  },
};

/** `-m ttl` (IPv4) and `-m hl` (IPv6): one comparison; `! --ttl-eq` is ne. */
function ttlModule(p: "--ttl" | "--hl"): ExtraModule {
  return {
    options: { [`${p}-eq`]: negArg, [`${p}-lt`]: { arity: 1 }, [`${p}-gt`]: { arity: 1 } },
    build(o, d) {
      const given = (["eq", "lt", "gt"] as const).filter((k) => o.has(`${p}-${k}`));
      if (given.length !== 1)
        fail("import_syntax", `-m ${p.slice(2)} needs exactly one of ${p}-eq, ${p}-lt, ${p}-gt`, `-m ${p.slice(2)}`);
      const x = o.get(`${p}-${given[0]!}`)!;
      const value = /^\d{1,3}$/.test(val(x)) ? Number(val(x)) : NaN;
      if (!(value >= 0 && value <= 255))
        fail(
          "import_invalid_value",
          `${x.opt} ${val(x)} is not a ${p === "--ttl" ? "TTL" : "hop limit"} (0-255)`,
          val(x),
        );
      setMatch(d, "ttl", { op: x.neg ? "ne" : given[0]!, value }, x.opt);
    },
  };
}

/** `-m connlimit`: --connlimit-above/--connlimit-upto N, --connlimit-mask P, --connlimit-saddr/--connlimit-daddr. */
const connlimit: ExtraModule = {
  options: {
    "--connlimit-above": arg1,
    "--connlimit-upto": arg1,
    "--connlimit-mask": arg1,
    "--connlimit-saddr": flag0,
    "--connlimit-daddr": flag0,
  },
  build(o, d) {
    const given = (["--connlimit-above", "--connlimit-upto"] as const).filter((k) => o.has(k));
    if (given.length !== 1)
      fail("import_syntax", "-m connlimit needs exactly one of --connlimit-above and --connlimit-upto", "-m connlimit");
    const c = o.get(given[0]!)!;
    const count = /^\d{1,5}$/.test(val(c)) ? Number(val(c)) : NaN;
    if (!(count <= 65535)) fail("import_invalid_value", `${c.opt} ${val(c)} is not a connection count`, val(c));
    const m = o.get("--connlimit-mask");
    const prefix = m ? (/^\d{1,3}$/.test(val(m)) ? Number(val(m)) : NaN) : undefined;
    if (prefix !== undefined && !(prefix <= 128))
      fail("import_invalid_value", `--connlimit-mask ${val(m!)} is not a prefix length`, val(m!));
    // The default mask is the whole address (32 from iptables, 128 from ip6tables): no prefix.
    const full = d.family === "ipv6" ? 128 : 32;
    // An IPv4 prefix shorter than an address means nothing for IPv6: keep the rule IPv4, as iptables had it.
    if (prefix !== undefined && prefix !== full && d.family === undefined) d.family = "ipv4";
    const key = o.has("--connlimit-daddr") ? "daddr" : "saddr";
    setMatch(
      d,
      "connlimit",
      {
        count,
        over: given[0] === "--connlimit-above",
        key,
        ...(prefix !== undefined && prefix !== full ? { prefix } : {}),
      },
      c.opt,
    );
  },
};

/** `-m mac --mac-source XX:XX:XX:XX:XX:XX` (libxtables also takes single hex digits). */
const mac: ExtraModule = {
  options: { "--mac-source": negArg },
  build(o, d) {
    const m = o.get("--mac-source");
    if (!m) fail("import_missing_argument", "-m mac needs --mac-source", "-m mac");
    const parts = val(m).split(":");
    if (parts.length !== 6 || !parts.every((p) => /^[0-9a-f]{1,2}$/i.test(p)))
      fail("import_invalid_value", `--mac-source ${val(m)} is not a MAC address (XX:XX:XX:XX:XX:XX)`, val(m));
    setMatch(d, "macSource", negate(m.neg, parts.map((p) => p.toLowerCase().padStart(2, "0")).join(":")), m.opt);
  },
};

/** "hh:mm[:ss]" (libxt_time also takes one-digit hours) as "hh:mm:ss". */
function dayTime(o: OptionValue): string {
  const x = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(val(o));
  if (!x || Number(x[1]) > 23 || Number(x[2]) > 59 || Number(x[3] ?? 0) > 59)
    fail("import_invalid_value", `${o.opt} ${val(o)} is not a time of day (hh:mm[:ss], 00:00:00 to 23:59:59)`, val(o));
  return `${x[1]!.padStart(2, "0")}:${x[2]}:${x[3] ?? "00"}`;
}

/** ISO 8601 as libxt_time takes it, YYYY[-MM[-DD[Thh[:mm[:ss]]]]], completed to the second (UTC). */
function isoDate(o: OptionValue): string {
  const x = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2}))?)?)?)?)?$/.exec(val(o));
  const s = x ? `${x[1]}-${x[2] ?? "01"}-${x[3] ?? "01"}T${x[4] ?? "00"}:${x[5] ?? "00"}:${x[6] ?? "00"}` : "";
  const t = Date.parse(`${s}Z`);
  if (!x || !Number.isFinite(t) || !new Date(t).toISOString().startsWith(s) || s > TIME_DATE_MAX || t < 0)
    fail(
      "import_invalid_value",
      `${o.opt} ${val(o)} is not a date from 1970-01-01 to ${TIME_DATE_MAX} (YYYY[-MM[-DD[Thh[:mm[:ss]]]]])`,
      val(o),
    );
  return s;
}

/**
 * `-m time` (xt_time, UTC by default). What iptables-save prints for a default (timestart
 * 00:00:00, timestop 23:59:59, datestop 2038-01-19T03:14:07, every weekday) is left out.
 * Refused: --kerneltz/--localtz (times in the kernel's time zone: nftables compares the time
 * of day in UTC), --monthdays (nftables has no day of the month), --contiguous where it
 * changes the meaning (weekdays with a range past midnight), and `--days`, the option of the
 * old ipt_time (local time), which current iptables does not take either.
 */
const time: ExtraModule = {
  options: {
    "--timestart": arg1,
    "--timestop": arg1,
    "--weekdays": negArg,
    "--monthdays": negArg,
    "--datestart": arg1,
    "--datestop": arg1,
    "--kerneltz": flag0,
    "--localtz": flag0,
    "--utc": flag0,
    "--contiguous": flag0,
    "--days": arg1,
  },
  build(o, d) {
    if (o.has("--days"))
      fail(
        "import_unsupported",
        "-m time --days is the old ipt_time option (local time); current iptables takes --weekdays (UTC) and refuses --days: write --weekdays with the days in UTC",
        "--days",
      );
    for (const tz of ["--kerneltz", "--localtz"])
      if (o.has(tz))
        fail(
          "import_unsupported",
          `-m time ${tz}: times in the kernel's time zone; nftables compares the time of day in UTC (meta hour), so write the times in UTC`,
          tz,
        );
    const md = o.get("--monthdays");
    if (md) {
      const days = new Set(val(md).split(",").map(Number));
      const all = [...Array(31).keys()].every((i) => days.has(i + 1));
      if (md.neg || !all)
        fail("import_unsupported", "-m time --monthdays: nftables has no day-of-month match", "--monthdays");
    }
    const t: NonNullable<Match["time"]> = {};
    const ts = o.get("--timestart");
    const te = o.get("--timestop");
    if (ts && dayTime(ts) !== "00:00:00") t.start = dayTime(ts);
    if (te && dayTime(te) !== "23:59:59") t.stop = dayTime(te);
    const wd = o.get("--weekdays");
    if (wd) {
      const chosen = new Set<(typeof WEEKDAYS)[number]>();
      for (const w of val(wd).split(",")) {
        const day = /^[1-7]$/.test(w)
          ? WEEKDAYS[Number(w) - 1]
          : WEEKDAYS.find((x) => x.toLowerCase() === w.toLowerCase());
        if (!day) fail("import_invalid_value", `--weekdays ${w}: Mon..Sun or 1..7`, w);
        chosen.add(day);
      }
      const days = WEEKDAYS.filter((x) => chosen.has(x) !== wd.neg);
      if (days.length === 0)
        fail("import_invalid_value", "! --weekdays with every day: the rule never matches", "--weekdays");
      if (days.length < 7) t.days = days;
    }
    const ds = o.get("--datestart");
    const de = o.get("--datestop");
    if (ds && isoDate(ds) !== "1970-01-01T00:00:00") t.dateStart = isoDate(ds);
    if (de && isoDate(de) !== TIME_DATE_MAX) t.dateStop = isoDate(de);
    const wraps = (t.start ?? "00:00:00") > (t.stop ?? "23:59:59");
    if (o.has("--contiguous") && wraps && t.days)
      fail(
        "import_unsupported",
        "-m time --contiguous with --weekdays and a range past midnight: the hours after midnight count for the day before, which nftables cannot test in one rule",
        "--contiguous",
      );
    if (Object.keys(t).length) setMatch(d, "time", t, "-m time");
  },
};

/** `-m physdev`: bridge ports (`+` wildcards as `*`) and the is-in/is-out/is-bridged tests, each with `!`. */
const physdev: ExtraModule = {
  options: {
    "--physdev-in": negArg,
    "--physdev-out": negArg,
    "--physdev-is-in": { arity: 0, neg: true },
    "--physdev-is-out": { arity: 0, neg: true },
    "--physdev-is-bridged": { arity: 0, neg: true },
  },
  build(o, d) {
    const m: NonNullable<Match["physdev"]> = {};
    for (const [opt, key] of [
      ["--physdev-in", "iif"],
      ["--physdev-out", "oif"],
    ] as const) {
      const x = o.get(opt);
      if (x) m[key] = negate(x.neg, parseInterface(val(x), x.opt));
    }
    for (const [opt, key] of [
      ["--physdev-is-in", "isIn"],
      ["--physdev-is-out", "isOut"],
      ["--physdev-is-bridged", "isBridged"],
    ] as const) {
      const x = o.get(opt);
      if (x) m[key] = !x.neg;
    }
    if (Object.keys(m).length === 0) fail("import_missing_argument", "-m physdev needs an option", "-m physdev");
    setMatch(d, "physdev", m, "-m physdev");
  },
};

/**
 * `ip6tables -m rt` (ip6t_rt): --rt-type and --rt-segsleft N[:M], each negatable. A packet
 * without a routing header matches none of them (negated ones included), as nft's `rt`.
 * --rt-len and the type-0 address options (--rt-0-addrs, --rt-0-res, --rt-0-not-strict) are
 * refused: the policy has no key for them.
 */
const rt: ExtraModule = {
  options: {
    "--rt-type": negArg,
    "--rt-segsleft": negArg,
    "--rt-len": negArg,
    "--rt-0-res": flag0,
    "--rt-0-addrs": arg1,
    "--rt-0-not-strict": flag0,
  },
  build(o, d) {
    if (d.family === "ipv4" || d.ipv4Program)
      fail("import_unsupported", "-m rt is an ip6tables match (the IPv6 routing header)", "-m rt");
    refuseOptions(
      o,
      "rt",
      ["--rt-len", "--rt-0-res", "--rt-0-addrs", "--rt-0-not-strict"],
      "--rt-type and --rt-segsleft",
    );
    const m: NonNullable<Match["routingHeader"]> = {};
    const t = o.get("--rt-type");
    if (t) {
      const v = /^\d{1,3}$/.test(val(t)) ? Number(val(t)) : NaN;
      if (!(v >= 0 && v <= 255))
        fail("import_invalid_value", `--rt-type ${val(t)} is not a routing type (0-255)`, val(t));
      m.type = negate(t.neg, v);
    }
    const s = o.get("--rt-segsleft");
    if (s) {
      // ip6t_rt compares the 8-bit field with a u32 range; N: or :M leave one end open.
      const r = /^(\d{0,10})(?::(\d{0,10}))?$/.exec(val(s));
      const lo = r && r[1] !== "" ? Number(r[1]) : 0;
      const given = r ? (r[2] === undefined ? lo : r[2] === "" ? 255 : Number(r[2])) : NaN;
      // The field holds 0-255: an upper end above it is 255 (iptables-save prints 0:4294967295).
      const hi = Math.min(given, 255);
      if (!r || (r[1] === "" && r[2] === undefined) || !(lo <= given) || given > 0xffffffff || lo > 255)
        fail(
          "import_invalid_value",
          `--rt-segsleft ${val(s)} is not a segments-left value or range within 0-255`,
          val(s),
        );
      m.segmentsLeft = negate(s.neg, lo === hi ? lo : `${lo}-${hi}`);
    }
    setMatch(d, "routingHeader", m, "-m rt");
  },
};

export const EXTRA_MODULES = {
  physdev,
  mac,
  time,
  owner,
  iprange,
  policy,
  pkttype,
  connlimit,
  dscp,
  socket,
  ttl: ttlModule("--ttl"),
  hl: ttlModule("--hl"),
  rt,
};
