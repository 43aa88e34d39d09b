// iptables match modules for the extra match keys (policy/match-extra.ts): owner, iprange.
// (conntrack --ctstate DNAT/SNAT and --ctstatus live with the conntrack module; -f with the
// core options in iptables.ts.)
import { AddressRange, type PKT_TYPES, type Match } from "../policy/index.ts";
import { fail } from "./cursor.ts";
import { negate, setMatch, type OptionValue, type Options, type RuleDraft } from "./rule-draft.ts";

/** The shape of matches.ts's ModuleSpec (kept structural so the two files do not import each other). */
interface ExtraModule {
  options: Record<string, { arity: 0 | 1 | 2; neg?: boolean }>;
  build(o: Options, d: RuleDraft): void;
}

const negArg = { arity: 1 as const, neg: true };
const arg1 = { arity: 1 as const };
const flag0 = { arity: 0 as const };
const val = (o: OptionValue) => o.value ?? "";

/** A uid/gid, a range, or root (the one name with the same id everywhere). */
function ownerId(o: OptionValue, what: string): number | string {
  const t = val(o);
  if (t === "root") return 0;
  if (/^\d{1,10}$/.test(t) && Number(t) <= 0xffffffff) return Number(t);
  const m = /^(\d{1,10})-(\d{1,10})$/.exec(t);
  if (m && Number(m[1]) <= Number(m[2]) && Number(m[2]) <= 0xffffffff)
    return Number(m[1]) === Number(m[2]) ? Number(m[1]) : t;
  if (/^[a-z_][a-z0-9_-]*\$?$/i.test(t))
    fail(
      "import_unsupported",
      `${what} ${t}: user and group names are resolved on the host that runs the rule; write the numeric id`,
      t,
    );
  return fail("import_invalid_value", `${t} is not a ${what.includes("gid") ? "group" : "user"} id or range`, t);
}

const owner: ExtraModule = {
  options: {
    "--uid-owner": negArg,
    "--gid-owner": negArg,
    "--socket-exists": { arity: 0, neg: true },
    "--suppl-groups": { arity: 0 },
  },
  build(o, d) {
    for (const k of ["--socket-exists", "--suppl-groups"]) {
      const x = o.get(k);
      if (x)
        fail(
          "import_unsupported",
          `owner ${k} has no equivalent in the policy schema (--uid-owner and --gid-owner do)`,
          x.opt,
        );
    }
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
          `${val(x)} is not an address range first-last (one family, first <= last)`,
          val(x),
        );
      setMatch(d, key, negate(x.neg, val(x)), x.opt);
    }
  },
};

/** `-m policy`: direction and policy, and the protocol of the (one) element; the rest has no policy key. */
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
    for (const k of ["--strict", "--next", "--reqid", "--spi", "--mode", "--tunnel-src", "--tunnel-dst"]) {
      const x = o.get(k);
      if (x)
        fail(
          "import_unsupported",
          `policy ${k} has no equivalent in the policy schema (--dir, --pol and --proto do): drop it to match any IPsec packet of that direction, or keep the rule on an iptables host`,
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

export const EXTRA_MODULES = {
  owner,
  iprange,
  policy,
  pkttype,
  connlimit,
  ttl: ttlModule("--ttl"),
  hl: ttlModule("--hl"),
};
