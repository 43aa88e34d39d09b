// iptables match modules (-m NAME and the protocol matches -p loads implicitly): which
// options each takes, and how the collected options become keys of the policy's Match.
import type { Match } from "../policy/index.ts";
import { ADDR_TYPES, CT_STATES, IFACE_FLAGS, Name } from "../policy/index.ts";
import { fail } from "./cursor.ts";
import { isNftKeyword } from "../nft/names.ts";
import { EXTRA_MODULES } from "./matches-extra.ts";
import { useSet } from "./ipset.ts";
import { negate, noNegation, setMatch, type OptionValue, type Options, type RuleDraft } from "./rule-draft.ts";
import {
  parseAddress,
  parseMarkValue,
  parsePortItem,
  parsePortList,
  parseRate,
  parseUint,
  parseInterface,
} from "./values.ts";
import {
  ALL_TCP_FLAGS,
  ICMPV6_BY_NAME,
  ICMPV6_BY_NUMBER,
  ICMP_BY_NAME,
  ICMP_BY_NUMBER,
  ICMP_CODE_NAMES,
  ICMPV6_CODE_NAMES,
  IPT_TCP_FLAGS,
  PORT_PROTOCOLS,
  PROTOCOLS,
} from "./vocab.ts";

interface OptionSpec {
  /** Number of arguments (0: a flag). */
  arity: 0 | 1 | 2;
  /** `!` allowed before it. */
  neg?: boolean;
  /** Canonical option name when this is an alias. */
  alias?: string;
}

export interface ModuleSpec {
  options: Record<string, OptionSpec>;
  build(o: Options, d: RuleDraft): void;
}

const flag: OptionSpec = { arity: 0 };
const negFlag: OptionSpec = { arity: 0, neg: true };
const arg: OptionSpec = { arity: 1 };
const negArg: OptionSpec = { arity: 1, neg: true };

function val(o: OptionValue): string {
  return o.value ?? "";
}

function ports(o: Options, d: RuleDraft): void {
  const s = o.get("--sport");
  if (s) setMatch(d, "sport", negate(s.neg, parsePortItem(val(s), s.opt)), s.opt);
  const p = o.get("--dport");
  if (p) setMatch(d, "dport", negate(p.neg, parsePortItem(val(p), p.opt)), p.opt);
}
const portOptions: Record<string, OptionSpec> = {
  "--sport": negArg,
  "--source-port": { ...negArg, alias: "--sport" },
  "--dport": negArg,
  "--destination-port": { ...negArg, alias: "--dport" },
};

type TcpFlag = (typeof ALL_TCP_FLAGS)[number];
function tcpFlagList(text: string, _opt: string): TcpFlag[] {
  if (text === "ALL") return [...ALL_TCP_FLAGS];
  if (text === "NONE") return [];
  const out = new Set<TcpFlag>();
  for (const name of text.split(",")) {
    const f = IPT_TCP_FLAGS[name.toUpperCase()];
    if (!f) fail("import_invalid_value", `${name} is not a TCP flag (SYN, ACK, FIN, RST, URG, PSH, ALL, NONE)`, name);
    out.add(f);
  }
  // Canonical order, so the same flags always give the same document.
  return ALL_TCP_FLAGS.filter((f) => out.has(f));
}

const tcp: ModuleSpec = {
  options: {
    ...portOptions,
    "--tcp-flags": { arity: 2, neg: true },
    "--syn": negFlag,
    "--tcp-option": negArg,
  },
  build(o, d) {
    ports(o, d);
    const opt = o.get("--tcp-option");
    if (opt)
      fail("import_unsupported", "--tcp-option (TCP option presence) has no equivalent in the policy schema", opt.opt);
    const f = o.get("--tcp-flags");
    if (f) {
      const [maskText, compText] = (f.value ?? "").split(" ") as [string, string];
      const mask = tcpFlagList(maskText, f.opt);
      const compare = tcpFlagList(compText, f.opt);
      if (mask.length === 0)
        fail(
          "import_invalid_value",
          "--tcp-flags with an empty mask (NONE) matches every packet; drop the option",
          f.opt,
        );
      const missing = compare.find((c) => !mask.includes(c));
      if (missing)
        fail("import_invalid_value", `--tcp-flags: ${missing.toUpperCase()} is compared but not in the mask`, compText);
      setMatch(d, "tcpFlags", negate(f.neg, { mask, compare }), f.opt);
    }
    const syn = o.get("--syn");
    // --syn is shorthand for --tcp-flags SYN,RST,ACK,FIN SYN.
    if (syn)
      setMatch(d, "tcpFlags", negate(syn.neg, { mask: ["fin", "syn", "rst", "ack"], compare: ["syn"] }), syn.opt);
  },
};
const udp: ModuleSpec = { options: portOptions, build: ports };

type IcmpType = Extract<NonNullable<Match["icmpType"]>, string | number>;
type Icmpv6Type = Extract<NonNullable<Match["icmpv6Type"]>, string | number>;

/** `--icmp-type` text: a name, a number, `type/code`, or a name standing for a type and code. */
function icmpType<T extends string>(
  o: OptionValue,
  byName: Record<string, T>,
  byNumber: Record<number, T>,
  codeNames: Record<string, [number, number]>,
  v6: boolean,
): { type: T | number; code?: number } | null {
  const text = val(o);
  if (text === "any") return null;
  const named = codeNames[text];
  const [typeText, codeText] = named
    ? [String(named[0]), String(named[1])]
    : (text.split("/") as [string, string | undefined]);
  let type: T | number | undefined;
  if (/^\d{1,3}$/.test(typeText) && Number(typeText) <= 255) type = byNumber[Number(typeText)] ?? Number(typeText);
  else type = byName[typeText];
  if (type === undefined) fail("import_invalid_value", `${text} is not an ICMP${v6 ? "v6" : ""} type`, text);
  if (codeText === undefined) return { type };
  if (!/^\d{1,3}$/.test(codeText) || Number(codeText) > 255)
    fail("import_invalid_value", `${codeText} is not an ICMP code (0-255)`, text);
  if (o.neg)
    fail(
      "import_unsupported",
      `! --icmp${v6 ? "v6" : ""}-type ${text}: the policy negates ICMP types, not a type with its code`,
      text,
    );
  return { type, code: Number(codeText) };
}

const icmp: ModuleSpec = {
  options: { "--icmp-type": negArg },
  build(o, d) {
    const t = o.get("--icmp-type");
    if (!t) return;
    const r = icmpType<Extract<IcmpType, string>>(t, ICMP_BY_NAME, ICMP_BY_NUMBER, ICMP_CODE_NAMES, false);
    if (r === null) {
      if (t.neg) fail("import_unsupported", "! --icmp-type any never matches", t.opt);
      d.notes.push("--icmp-type any matches every ICMP packet: only the protocol is kept");
      return;
    }
    setMatch(d, "icmpType", negate(t.neg, r.type), t.opt);
    if (r.code !== undefined) setMatch(d, "icmpCode", r.code, t.opt);
  },
};
const icmp6: ModuleSpec = {
  options: { "--icmpv6-type": negArg },
  build(o, d) {
    const t = o.get("--icmpv6-type");
    if (!t) return;
    const r = icmpType<Extract<Icmpv6Type, string>>(t, ICMPV6_BY_NAME, ICMPV6_BY_NUMBER, ICMPV6_CODE_NAMES, true);
    if (r === null) return;
    setMatch(d, "icmpv6Type", negate(t.neg, r.type), t.opt);
    if (r.code !== undefined) setMatch(d, "icmpCode", r.code, t.opt);
  },
};

const multiport: ModuleSpec = {
  options: {
    "--sports": negArg,
    "--source-ports": { ...negArg, alias: "--sports" },
    "--dports": negArg,
    "--destination-ports": { ...negArg, alias: "--dports" },
    "--ports": negArg,
  },
  build(o, d) {
    const any = o.get("--ports");
    if (any) d.portsEither = { ports: parsePortList(val(any), any.opt), neg: any.neg, opt: any.opt };
    const s = o.get("--sports");
    if (s) setMatch(d, "sport", negate(s.neg, parsePortList(val(s), s.opt)), s.opt);
    const p = o.get("--dports");
    if (p) setMatch(d, "dport", negate(p.neg, parsePortList(val(p), p.opt)), p.opt);
  },
};

type CtState = (typeof CT_STATES)[number];
function ctStates(o: OptionValue): CtState[] {
  return val(o)
    .split(",")
    .map((s) => {
      const st = s.toLowerCase();
      if (!(CT_STATES as readonly string[]).includes(st)) {
        fail(
          "import_unsupported",
          `conntrack state ${s} is not one of NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED${o.opt === "--ctstate" ? ", DNAT, SNAT" : ""}`,
          s,
        );
      }
      return st as CtState;
    });
}
/** `--ctstate`: the states, or (DNAT/SNAT, which are status bits) the conntrack status. */
function ctStateOrStatus(o: OptionValue, d: RuleDraft): void {
  const words = val(o).split(",");
  const nat = words.filter((w) => /^(DNAT|SNAT)$/i.test(w));
  if (nat.length === 0) return setMatch(d, "ctState", negate(o.neg, ctStates(o)), o.opt);
  // "NEW,DNAT" is NEW or DNAT: two different keys of the policy cannot say "or", so the line
  // becomes two rules (splitEither; firewalld's `--ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT`).
  // Negated it is neither: both keys negated (kubelet's `! --ctstate RELATED,ESTABLISHED,DNAT`).
  if (nat.length !== words.length) {
    const states = ctStates({ ...o, value: words.filter((w) => !/^(DNAT|SNAT)$/i.test(w)).join(",") });
    const bits = nat.map((w) => w.toLowerCase() as "dnat" | "snat");
    if (!o.neg) {
      if (d.match.ctState !== undefined || d.match.ctStatus !== undefined || d.ctEither)
        fail("import_conflict", `--ctstate ${val(o)} conflicts with an earlier conntrack state or status`, o.opt);
      d.ctEither = { states, nat: bits, opt: o.opt };
      return;
    }
    setMatch(d, "ctState", negate(true, states), o.opt);
  }
  setMatch(
    d,
    "ctStatus",
    negate(
      o.neg,
      nat.map((w) => w.toLowerCase() as "dnat" | "snat"),
    ),
    o.opt,
  );
}
const CT_STATUS_WORDS: Record<string, "expected" | "seen-reply" | "assured" | "confirmed"> = {
  EXPECTED: "expected",
  SEEN_REPLY: "seen-reply",
  ASSURED: "assured",
  CONFIRMED: "confirmed",
};
const state: ModuleSpec = {
  options: { "--state": negArg },
  build(o, d) {
    const s = o.get("--state");
    if (s) setMatch(d, "ctState", negate(s.neg, ctStates(s)), s.opt);
  },
};
const CONNTRACK_OTHER = ["--ctreplsrc", "--ctrepldst", "--ctreplsrcport", "--ctrepldstport", "--ctexpire", "--ctdir"];
const CONNTRACK_ORIGINAL = ["--ctproto", "--ctorigsrc", "--ctorigdst", "--ctorigsrcport", "--ctorigdstport"];
/** `--ctproto` and `--ctorig*`: the connection's original tuple (Match.ctOriginal). */
function ctOriginal(o: Options, d: RuleDraft): void {
  const c: NonNullable<Match["ctOriginal"]> = {};
  let first: string | undefined;
  for (const k of CONNTRACK_ORIGINAL) {
    const x = o.get(k);
    if (!x) continue;
    first ??= x.opt;
    if (k === "--ctproto") {
      const p = PROTOCOLS[val(x).toLowerCase()];
      if (!p) fail("import_unsupported", `--ctproto ${val(x)}: not a protocol the policy schema names`, val(x));
      c.protocol = negate(x.neg, p);
    } else if (k === "--ctorigsrc" || k === "--ctorigdst") {
      c[k === "--ctorigsrc" ? "saddr" : "daddr"] = negate(x.neg, parseAddress(val(x), x.opt));
    } else {
      c[k === "--ctorigsrcport" ? "sport" : "dport"] = negate(x.neg, parsePortItem(val(x), x.opt));
    }
  }
  if (first === undefined) return;
  if (
    (c.sport !== undefined || c.dport !== undefined) &&
    !(typeof c.protocol === "string" && PORT_PROTOCOLS.has(c.protocol))
  )
    fail(
      "import_unsupported",
      "--ctorigsrcport/--ctorigdstport without --ctproto tcp, udp, sctp, udplite or dccp: the port of which protocol is not said",
      first,
    );
  setMatch(d, "ctOriginal", c, first);
}
/**
 * xt_conntrack tests a packet without a conntrack entry (INVALID, UNTRACKED) on --ctstate
 * alone: it returns the state test's answer and skips every other option of the match. So
 * where the state test can pass for such a packet (positive INVALID/UNTRACKED, or negated
 * without both), iptables matches it whatever --ctorig*, --ctproto or --ctstatus say, while
 * the policy's keys (nft ct original, ct status) need an entry. One rule cannot say that:
 * refused, with the two rules that do.
 */
function noEntryState(o: Options): void {
  const s = o.get("--ctstate");
  if (!s) return;
  const others = [...CONNTRACK_ORIGINAL, "--ctstatus"].flatMap((k) => {
    const x = o.get(k);
    return x ? [x.opt] : [];
  });
  if (others.length === 0) return;
  const words = val(s)
    .split(",")
    .map((w) => w.toUpperCase());
  const noEntry = ["INVALID", "UNTRACKED"].filter((w) => words.includes(w) === !s.neg);
  if (noEntry.length === 0) return;
  const rest = s.neg ? [...words, ...noEntry] : words.filter((w) => !noEntry.includes(w));
  const restState = rest.length === 0 ? "" : `${s.neg ? "! " : ""}--ctstate ${rest.join(",")} `;
  fail(
    "import_unsupported",
    `-m conntrack ${s.neg ? "! " : ""}--ctstate ${val(s)} with ${others.join(", ")}: for a packet without a conntrack entry (${noEntry.join(", ")}), which this state test lets through, xt_conntrack skips the other options, so iptables matches it whatever the other options (${others.join(", ")}) say; the policy's conntrack keys need an entry. Write two rules with the same target: -m conntrack --ctstate ${noEntry.join(",")} (those packets), then -m conntrack ${restState}${others.map((x) => `${x} ...`).join(" ")} (the packets with an entry)`,
    s.opt,
  );
}
const conntrack: ModuleSpec = {
  options: {
    "--ctstate": negArg,
    "--ctstatus": negArg,
    ...Object.fromEntries([...CONNTRACK_OTHER, ...CONNTRACK_ORIGINAL].map((k) => [k, negArg])),
  },
  build(o, d) {
    for (const k of CONNTRACK_OTHER) {
      const x = o.get(k);
      if (x)
        fail(
          "import_unsupported",
          `conntrack ${k} has no equivalent in the policy schema (--ctstate, --ctstatus, --ctproto and --ctorig* do)`,
          x.opt,
        );
    }
    noEntryState(o);
    ctOriginal(o, d);
    const s = o.get("--ctstate");
    const st = o.get("--ctstatus");
    if (s) ctStateOrStatus(s, d);
    if (st) {
      const bits = val(st)
        .split(",")
        .map((w) => {
          const b = CT_STATUS_WORDS[w.toUpperCase()];
          if (!b)
            fail(
              "import_invalid_value",
              `conntrack status ${w} is not one of EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED${w.toUpperCase() === "NONE" ? " (NONE, no bit set, has no equivalent)" : ""}`,
              w,
            );
          return b;
        });
      setMatch(d, "ctStatus", negate(st.neg, bits), st.opt);
    }
  },
};

const statistic: ModuleSpec = {
  options: { "--mode": arg, "--probability": negArg, "--every": negArg, "--packet": arg },
  build(o, d) {
    const mode = o.get("--mode");
    if (!mode) fail("import_missing_argument", "-m statistic needs --mode random or nth", "-m statistic");
    if (val(mode) === "random") {
      const p = o.get("--probability");
      if (!p || !/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(val(p)))
        fail("import_invalid_value", "--mode random needs --probability between 0 and 1", p?.opt ?? "--mode");
      setMatch(d, "statistic", negate(p.neg, { mode: "random", probability: Number(val(p)) }), p.opt);
      return;
    }
    if (val(mode) !== "nth") fail("import_invalid_value", `--mode ${val(mode)}: random or nth`, val(mode));
    const e = o.get("--every");
    if (!e) fail("import_missing_argument", "--mode nth needs --every", "--mode");
    const every = parseUint(val(e), "--every", 0x7fffffff);
    const pk = o.get("--packet");
    const packet = pk ? parseUint(val(pk), "--packet", 0x7fffffff) : 0;
    if (every === 0 || packet >= every)
      fail("import_invalid_value", `--every ${every} --packet ${packet}: packet must be 0 to every-1`, e.opt);
    setMatch(d, "statistic", negate(e.neg, { mode: "nth", every, packet }), e.opt);
  },
};

const limit: ModuleSpec = {
  options: { "--limit": arg, "--limit-burst": arg },
  build(o, d) {
    const r = o.get("--limit");
    const b = o.get("--limit-burst");
    // iptables' own default rate when only the module is named.
    const rate = r ? parseRate(val(r), r.opt) : "3/hour";
    const burst = b ? parseUint(val(b), "burst", 1_000_000) : undefined;
    if (burst === 0) fail("import_invalid_value", "--limit-burst must be at least 1", val(b!));
    setMatch(d, "limit", burst === undefined ? { rate } : { rate, burst }, r?.opt ?? "-m limit");
  },
};

/** A name as the schema allows it; the change is noted in the report. */
function schemaName(text: string, what: string, d: RuleDraft): string {
  if (Name.safeParse(text).success) return text;
  let n = text.replace(/[^A-Za-z0-9_]/g, "_");
  if (!/^[A-Za-z]/.test(n)) n = `n_${n}`;
  n = n.slice(0, 32);
  d.notes.push(`${what} name ${JSON.stringify(text)} renamed to ${n}`);
  return n;
}

const recent: ModuleSpec = {
  options: {
    "--set": negFlag,
    "--update": negFlag,
    "--rcheck": negFlag,
    "--remove": negFlag,
    "--seconds": arg,
    "--hitcount": arg,
    "--name": arg,
    "--rsource": flag,
    "--rdest": flag,
    "--reap": flag,
    "--rttl": flag,
    "--mask": arg,
  },
  build(o, d) {
    const modes = (["--set", "--update", "--rcheck", "--remove"] as const).filter((m) => o.has(m));
    if (modes.length !== 1)
      fail("import_syntax", "-m recent needs exactly one of --set, --update, --rcheck, --remove", "-m recent");
    const modeOpt = o.get(modes[0]!)!;
    noNegation(modeOpt);
    // --rttl: settled once the rule's place in its chain is known (iptables.ts settleRttl).
    const rttl = o.get("--rttl");
    if (rttl) d.rttl = rttl;
    // iptables-save always prints the mask; the all-ones default (the whole address) is what the policy's lists key on.
    const mask = o.get("--mask");
    if (mask && !/^(255\.255\.255\.255|ffff(:ffff){7})$/i.test(val(mask))) {
      fail(
        "import_unsupported",
        `recent --mask ${val(mask)}: the policy's recent lists key on whole addresses (mask 255.255.255.255)`,
        val(mask),
      );
    }
    if (o.has("--reap")) d.notes.push("--reap only frees memory early: listed addresses expire by themselves");
    const nameOpt = o.get("--name");
    const name = schemaName(nameOpt ? val(nameOpt) : "DEFAULT", "recent list", d);
    const sec = o.get("--seconds");
    const hit = o.get("--hitcount");
    const seconds = sec ? parseUint(val(sec), "number of seconds", 365 * 86400) : undefined;
    const hitcount = hit ? parseUint(val(hit), "hit count", 1_000_000) : undefined;
    if (seconds === 0) fail("import_invalid_value", "--seconds must be at least 1", val(sec!));
    if (hitcount === 0) fail("import_invalid_value", "--hitcount must be at least 1", val(hit!));
    const mode = modeOpt.opt.slice(2) as "set" | "update" | "rcheck" | "remove";
    if ((seconds !== undefined || hitcount !== undefined) && (mode === "set" || mode === "remove")) {
      fail(
        "import_syntax",
        `--seconds/--hitcount only apply to --update and --rcheck, not --${mode}`,
        sec?.opt ?? hit!.opt,
      );
    }
    const m: NonNullable<Match["recent"]> = { name, mode, side: o.has("--rdest") ? "destination" : "source" };
    if (seconds !== undefined) m.seconds = seconds;
    if (hitcount !== undefined) m.hitcount = hitcount;
    setMatch(d, "recent", m, modeOpt.opt);
  },
};

/** quota2 names the kernel refuses (xtables-addons manual). */
function checkQuotaName(name: string, opt: string): void {
  if (name === "") fail("import_invalid_value", "quota2 --name must not be empty", opt);
  if (name.startsWith("."))
    fail("import_invalid_value", `quota2 name ${name} starts with a dot, which the kernel refuses`, name);
  if (name.includes("/"))
    fail("import_invalid_value", `quota2 name ${name} contains a slash, which the kernel refuses`, name);
  if (!/^[\x21-\x7e]{1,15}$/.test(name))
    fail("import_invalid_value", `quota2 name ${name} must be 1-15 printable characters`, name);
}

/**
 * The policy name of a quota2 name: a word nft reads as a keyword (`drop`, `log`, ...) cannot
 * name an nft quota, so it gets the prefix `q_` (12 characters at most: quota2's 15 hold it).
 */
function quotaPolicyName(name: string): string {
  return isNftKeyword(name) ? `q_${name}` : name;
}

const quota2: ModuleSpec = {
  options: { "--name": arg, "--quota": negArg, "--grow": flag, "--no-change": flag, "--packets": flag },
  build(o, d) {
    const nameOpt = o.get("--name");
    const q = o.get("--quota");
    let name: string;
    if (nameOpt) {
      const raw = val(nameOpt);
      checkQuotaName(raw, nameOpt.opt);
      name = quotaPolicyName(raw);
      const origin = d.policy.quotaOrigins.get(name) ?? (Object.hasOwn(d.policy.quotas, name) ? name : raw);
      if (origin !== raw)
        fail(
          "import_conflict",
          `quota2 counters ${raw} and ${origin} would both be the policy quota ${name}; rename one`,
          raw,
        );
      if (name !== raw && !d.policy.quotaOrigins.has(name)) {
        d.policy.quotaOrigins.set(name, raw);
        d.notes.push(`quota2 counter ${raw} is the policy quota ${name} (${raw} is an nft keyword)`);
      }
    } else {
      // Plain xt_quota (`-m quota --quota N`): a per-rule budget, i.e. a quota2 counter nobody else shares.
      if (!q) fail("import_missing_argument", "-m quota needs --quota BYTES (or --name for quota2)", "-m quota");
      name = d.policy.freshName(`quota_${d.chainKey}`.slice(0, 12), (n) => n in d.policy.quotas);
      d.notes.push(`unnamed -m quota becomes quota2 counter ${name}`);
    }
    // quota2 decides --grow per rule (the manual's bytebucket grows in one rule and counts
    // down in another): it goes on the rule here, and PolicyDraft.settleQuotas moves it to
    // the quota when every rule of the counter grows.
    const grow = o.has("--grow");
    const mode = o.has("--packets") ? "packets" : "bytes";
    // quota2 without --quota starts at 0 (an exhausted budget, an empty bucket or up-counter).
    const initial = q ? parseUint(val(q), "quota", Number.MAX_SAFE_INTEGER) : 0;
    const existing = d.policy.quotas[name];
    if (existing) {
      if (existing.mode !== mode)
        fail(
          "import_conflict",
          `quota2 counter ${name} counts ${existing.mode} in an earlier rule and ${mode} here; a policy quota has one mode`,
          nameOpt?.opt ?? "--quota",
        );
      if (q && existing.limit !== initial)
        d.notes.push(`quota2 keeps the existing counter ${name}: its initial value ${existing.limit ?? 0} stays`);
    } else {
      d.policy.quotas[name] = { mode, limit: initial };
    }
    const m: NonNullable<Match["quota"]> = { name };
    if (grow) m.grow = true;
    if (q?.neg) {
      if (grow) d.notes.push("'!' before --quota has no effect with --grow (quota2 manual); dropped");
      else m.invert = true;
    }
    if (o.has("--no-change")) m.noChange = true;
    setMatch(d, "quota", m, nameOpt?.opt ?? "--quota");
  },
};

function lengthValue(o: OptionValue): number | string {
  const text = val(o);
  const m = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(text);
  if (!m || Number(m[1]) > 65535 || Number(m[2] ?? 0) > 65535)
    fail("import_invalid_value", `${text} is not a length or a range min:max`, text);
  return m[2] === undefined ? Number(m[1]) : `${m[1]}-${m[2]}`;
}

/** `-m tcpmss --mss value[:max]` (needs -p tcp). */
const tcpmss: ModuleSpec = {
  options: { "--mss": negArg },
  build(o, d) {
    const l = o.get("--mss");
    if (!l) fail("import_missing_argument", "-m tcpmss needs --mss", "-m tcpmss");
    setMatch(d, "tcpMss", negate(l.neg, lengthValue(l)), l.opt);
  },
};

const length: ModuleSpec = {
  options: { "--length": negArg },
  build(o, d) {
    const l = o.get("--length");
    if (!l) fail("import_missing_argument", "-m length needs --length", "-m length");
    setMatch(d, "length", negate(l.neg, lengthValue(l)), l.opt);
  },
};

/** xtables-addons length2: --layer3 (the default) is the core length match. */
const length2: ModuleSpec = {
  options: { "--length": negArg, "--layer3": flag, "--layer4": flag, "--layer5": flag },
  build(o, d) {
    const l = o.get("--length");
    if (!l) fail("import_missing_argument", "-m length2 needs --length", "-m length2");
    const layers = (["layer3", "layer4", "layer5"] as const).filter((x) => o.has(`--${x}`));
    if (layers.length > 1)
      fail("import_syntax", "-m length2 takes one of --layer3, --layer4, --layer5", `--${layers[1]!}`);
    const layer = layers[0] ?? "layer3";
    const v = negate(l.neg, lengthValue(l));
    if (layer === "layer3") setMatch(d, "length", v, l.opt);
    else setXt(d, "length2", { layer, length: v }, l.opt);
  },
};

function markMatch(o: OptionValue): number | { value: number; mask: number } {
  const { value, mask } = parseMarkValue(val(o), "mark");
  return mask === undefined || mask === 0xffffffff ? value : { value, mask };
}
const mark: ModuleSpec = {
  options: { "--mark": negArg },
  build(o, d) {
    const m = o.get("--mark");
    if (m) setMatch(d, "mark", negate(m.neg, markMatch(m)), m.opt);
  },
};
const connmark: ModuleSpec = {
  options: { "--mark": negArg },
  build(o, d) {
    const m = o.get("--mark");
    if (m) setMatch(d, "ctmark", negate(m.neg, markMatch(m)), m.opt);
  },
};

const iface: ModuleSpec = {
  options: {
    "--iface": arg,
    "--dev-in": flag,
    "--dev-out": flag,
    ...Object.fromEntries(IFACE_FLAGS.map((f) => [`--${f}`, negFlag])),
  },
  build(o, d) {
    const name = o.get("--iface");
    const selectors = [name, o.get("--dev-in"), o.get("--dev-out")].filter(Boolean);
    if (selectors.length !== 1)
      fail("import_syntax", "-m iface needs exactly one of --iface NAME, --dev-in, --dev-out", "-m iface");
    const flags = IFACE_FLAGS.filter((f) => o.has(`--${f}`)).map((f) =>
      o.get(`--${f}`)!.neg ? { flag: f, not: true } : { flag: f },
    );
    if (flags.length === 0)
      fail("import_syntax", "-m iface needs at least one flag to check (--up, --running, ...)", "-m iface");
    const x: NonNullable<NonNullable<Match["xt"]>["iface"]> = { flags };
    if (name) x.interface = parseInterface(val(name), name.opt);
    if (o.has("--dev-in")) x.devIn = true;
    if (o.has("--dev-out")) x.devOut = true;
    setXt(d, "iface", x, "-m iface");
  },
};

function setXt<K extends keyof NonNullable<Match["xt"]>>(
  d: RuleDraft,
  key: K,
  value: NonNullable<Match["xt"]>[K],
  opt: string,
): void {
  const xt = (d.match.xt ??= {});
  if (xt[key] !== undefined) fail("import_conflict", `${opt} given twice`, opt);
  xt[key] = value;
}

const geoip: ModuleSpec = {
  options: {
    "--src-cc": negArg,
    "--source-country": { ...negArg, alias: "--src-cc" },
    "--dst-cc": negArg,
    "--destination-country": { ...negArg, alias: "--dst-cc" },
  },
  build(o, d) {
    const s = o.get("--src-cc");
    const t = o.get("--dst-cc");
    if (!s && !t) fail("import_missing_argument", "-m geoip needs --src-cc or --dst-cc", "-m geoip");
    if (s && t && s.neg !== t.neg)
      fail("import_unsupported", "geoip with one negated and one plain country list has no equivalent", t.opt);
    const list = (x: OptionValue) =>
      val(x)
        .split(",")
        .map((c) => c.toUpperCase());
    const g: NonNullable<NonNullable<Match["xt"]>["geoip"]> = {};
    if (s) g.source = list(s);
    if (t) g.destination = list(t);
    if ((s ?? t)!.neg) g.invert = true;
    setXt(d, "geoip", g, "-m geoip");
  },
};

const comment: ModuleSpec = {
  options: { "--comment": arg },
  build(o, d) {
    const c = o.get("--comment");
    if (!c) return;
    // Palisade's iptables renderer tags the rules of a named counter this way.
    const tag = /^palisade-counter:([A-Za-z][A-Za-z0-9_]{0,31})$/.exec(val(c));
    if (tag) {
      if (d.counterTag !== undefined) fail("import_conflict", "a rule counts into one named counter", c.opt);
      d.counterTag = tag[1]!;
      return;
    }
    if (d.comment !== undefined) fail("import_conflict", "a rule carries one comment", c.opt);
    // The schema keeps comments injection-proof: printable ASCII, no quote or backslash, 128 chars.
    let text = val(c)
      .replace(/[^\x20-\x7e]/g, "?")
      .replace(/["\\]/g, "'");
    if (text.length > 128) text = text.slice(0, 128);
    if (text !== val(c))
      d.notes.push("comment adjusted to printable ASCII without quotes or backslashes (at most 128 characters)");
    d.comment = text;
  },
};

const addrtype: ModuleSpec = {
  options: { "--dst-type": negArg, "--src-type": negArg, "--limit-iface-in": flag, "--limit-iface-out": flag },
  build(o, d) {
    for (const k of ["--src-type", "--limit-iface-in", "--limit-iface-out"]) {
      const x = o.get(k);
      if (x)
        fail("import_unsupported", `addrtype ${k} has no equivalent in the policy schema (only --dst-type)`, x.opt);
    }
    const t = o.get("--dst-type");
    if (!t) fail("import_missing_argument", "-m addrtype needs --dst-type", "-m addrtype");
    const types = val(t)
      .split(",")
      .map((x) => {
        const lower = x.toLowerCase();
        if (!(ADDR_TYPES as readonly string[]).includes(lower))
          fail("import_unsupported", `address type ${x} is not one of ${ADDR_TYPES.join(", ").toUpperCase()}`, x);
        return lower as (typeof ADDR_TYPES)[number];
      });
    setMatch(d, "daddrType", negate(t.neg, types), t.opt);
  },
};

const hashlimit: ModuleSpec = {
  options: {
    "--hashlimit-upto": arg,
    "--hashlimit": { arity: 1, alias: "--hashlimit-upto" },
    "--hashlimit-above": arg,
    "--hashlimit-burst": arg,
    "--hashlimit-mode": arg,
    "--hashlimit-name": arg,
    "--hashlimit-htable-size": arg,
    "--hashlimit-htable-max": arg,
    "--hashlimit-htable-expire": arg,
    "--hashlimit-htable-gcinterval": arg,
    "--hashlimit-srcmask": arg,
    "--hashlimit-dstmask": arg,
    "--hashlimit-rate-match": flag,
    "--hashlimit-rate-interval": arg,
  },
  build(o, d) {
    const up = o.get("--hashlimit-upto");
    const above = o.get("--hashlimit-above");
    if (!!up === !!above)
      fail("import_syntax", "-m hashlimit needs exactly one of --hashlimit-upto and --hashlimit-above", "-m hashlimit");
    for (const k of ["--hashlimit-rate-match", "--hashlimit-rate-interval"]) {
      const x = o.get(k);
      if (x) fail("import_unsupported", `hashlimit ${k} has no equivalent in the policy schema`, x.opt);
    }
    for (const k of ["--hashlimit-srcmask", "--hashlimit-dstmask"]) {
      const x = o.get(k);
      if (x && val(x) !== "32" && val(x) !== "128")
        fail(
          "import_unsupported",
          `hashlimit ${k} ${val(x)}: per-prefix buckets have no equivalent (only whole addresses)`,
          x.opt,
        );
    }
    const r = (up ?? above)!;
    const rate = parseRate(val(r), r.opt);
    const b = o.get("--hashlimit-burst");
    const burst = b ? parseUint(val(b), "burst", 1_000_000) : undefined;
    if (burst === 0) fail("import_invalid_value", "--hashlimit-burst must be at least 1", val(b!));
    const modeOpt = o.get("--hashlimit-mode");
    const mode = modeOpt ? val(modeOpt) : "";
    if (mode === "") {
      // No mode: one bucket for all packets, which is exactly a plain rate limit.
      setMatch(
        d,
        "limit",
        { rate, ...(burst !== undefined ? { burst } : {}), ...(above ? { over: true } : {}) },
        r.opt,
      );
      if (o.has("--hashlimit-name"))
        d.notes.push("hashlimit without --hashlimit-mode is one shared bucket: imported as a plain limit");
      return;
    }
    if (mode !== "srcip" && mode !== "dstip") {
      fail(
        "import_unsupported",
        `--hashlimit-mode ${mode}: only per source (srcip) or per destination (dstip) address meters are supported`,
        mode,
      );
    }
    const nameOpt = o.get("--hashlimit-name");
    if (!nameOpt) fail("import_missing_argument", "-m hashlimit needs --hashlimit-name", "-m hashlimit");
    const meter: NonNullable<Match["meter"]> = {
      name: schemaName(val(nameOpt), "hashlimit", d),
      key: mode === "srcip" ? "saddr" : "daddr",
      rate,
      over: Boolean(above),
      timeoutSeconds: 60,
      size: 65536,
    };
    if (burst !== undefined) meter.burst = burst;
    const exp = o.get("--hashlimit-htable-expire");
    // hashlimit expires entries in milliseconds; the policy counts whole seconds.
    if (exp)
      meter.timeoutSeconds = Math.max(1, Math.ceil(parseUint(val(exp), "expiry in ms", 365 * 86400 * 1000) / 1000));
    const size = o.get("--hashlimit-htable-size");
    if (size) meter.size = Math.max(1, Math.min(1_000_000, parseUint(val(size), "table size", 1_000_000)));
    for (const k of ["--hashlimit-htable-max", "--hashlimit-htable-gcinterval"])
      if (o.has(k)) d.notes.push(`${k} only tunes memory use; not carried over`);
    setMatch(d, "meter", meter, r.opt);
  },
};

const condition: ModuleSpec = {
  options: { "--condition": negArg },
  build(o, d) {
    const c = o.get("--condition");
    if (!c) fail("import_missing_argument", "-m condition needs --condition NAME", "-m condition");
    if (!/^[A-Za-z0-9_]{1,27}$/.test(val(c)))
      fail("import_invalid_value", `condition name ${val(c)} must be 1-27 letters, digits or '_'`, val(c));
    setXt(d, "condition", negate(c.neg, val(c)), c.opt);
  },
};

const IPP2P = ["edk", "kazaa", "gnu", "dc", "bit", "apple", "soul", "winmx", "ares"] as const;
const ipp2p: ModuleSpec = {
  options: { ...Object.fromEntries(IPP2P.map((p) => [`--${p}`, flag])), "--debug": flag },
  build(o, d) {
    const list = IPP2P.filter((p) => o.has(`--${p}`));
    if (list.length === 0)
      fail("import_missing_argument", "-m ipp2p needs at least one protocol option (--edk, --bit, ...)", "-m ipp2p");
    if (o.has("--debug")) d.notes.push("ipp2p --debug only adds kernel log output; not carried over");
    setXt(d, "ipp2p", list, "-m ipp2p");
  },
};

const IPV4_OPTION_NUMBERS: Record<string, string> = {
  "1": "nop",
  "2": "security",
  "3": "lsrr",
  "4": "timestamp",
  "7": "record-route",
  "9": "ssrr",
  "11": "mtu-probe",
  "12": "mtu-reply",
  "18": "traceroute",
  "20": "router-alert",
};
type Ipv4Option = NonNullable<NonNullable<Match["xt"]>["ipv4options"]>["flags"][number]["option"];
const ipv4options: ModuleSpec = {
  options: { "--flags": arg, "--any": flag },
  build(o, d) {
    const f = o.get("--flags");
    if (!f) fail("import_missing_argument", "-m ipv4options needs --flags", "-m ipv4options");
    const known = new Set(Object.values(IPV4_OPTION_NUMBERS));
    const flags = val(f)
      .split(",")
      .map((s) => {
        const not = s.startsWith("!");
        const sym = not ? s.slice(1) : s;
        const option = IPV4_OPTION_NUMBERS[sym] ?? sym;
        if (!known.has(option)) fail("import_invalid_value", `${sym} is not an IPv4 option name or number`, sym);
        return not ? { option: option as Ipv4Option, not: true } : { option: option as Ipv4Option };
      });
    setXt(d, "ipv4options", o.has("--any") ? { flags, any: true } : { flags }, "-m ipv4options");
  },
};

const LSCAN = ["stealth", "synscan", "cnscan", "grscan"] as const;
const lscan: ModuleSpec = {
  options: Object.fromEntries(LSCAN.map((p) => [`--${p}`, flag])),
  build(o, d) {
    const list = LSCAN.filter((p) => o.has(`--${p}`));
    if (list.length === 0)
      fail(
        "import_missing_argument",
        "-m lscan needs at least one of --stealth, --synscan, --cnscan, --grscan",
        "-m lscan",
      );
    setXt(d, "lscan", list, "-m lscan");
  },
};

const PSD: Record<string, "weightThreshold" | "delayThreshold" | "loPortsWeight" | "hiPortsWeight"> = {
  "--psd-weight-threshold": "weightThreshold",
  "--psd-delay-threshold": "delayThreshold",
  "--psd-lo-ports-weight": "loPortsWeight",
  "--psd-hi-ports-weight": "hiPortsWeight",
};
const psd: ModuleSpec = {
  options: Object.fromEntries(Object.keys(PSD).map((k) => [k, arg])),
  build(o, d) {
    const x: NonNullable<NonNullable<Match["xt"]>["psd"]> = {};
    for (const [opt, key] of Object.entries(PSD)) {
      const v = o.get(opt);
      if (v) {
        const n = parseUint(val(v), opt.slice(2), 1_000_000_000);
        if (n < 1) fail("import_invalid_value", `${opt} must be at least 1`, val(v));
        x[key] = n;
      }
    }
    setXt(d, "psd", x, "-m psd");
  },
};

const fuzzy: ModuleSpec = {
  options: { "--lower-limit": arg, "--upper-limit": arg },
  build(o, d) {
    const lo = o.get("--lower-limit");
    const hi = o.get("--upper-limit");
    if (!lo || !hi) fail("import_missing_argument", "-m fuzzy needs --lower-limit and --upper-limit", "-m fuzzy");
    const lowerLimit = parseUint(val(lo), "packets per second", 1_000_000_000);
    const upperLimit = parseUint(val(hi), "packets per second", 1_000_000_000);
    if (lowerLimit < 1 || upperLimit < 1) fail("import_invalid_value", "fuzzy limits must be at least 1", lo.opt);
    setXt(d, "fuzzy", { lowerLimit, upperLimit }, "-m fuzzy");
  },
};

const gradm: ModuleSpec = {
  options: { "--enabled": negFlag, "--disabled": negFlag },
  build(o, d) {
    const e = o.get("--enabled") ?? o.get("--disabled");
    if (!e || (o.has("--enabled") && o.has("--disabled")))
      fail("import_syntax", "-m gradm needs one of --enabled or --disabled", "-m gradm");
    const enabled = (e.opt === "--enabled") !== e.neg;
    setXt(d, "gradm", enabled ? "enabled" : "disabled", "-m gradm");
  },
};

const dhcpmac: ModuleSpec = {
  options: { "--mac": negArg },
  build(o, d) {
    const m = o.get("--mac");
    if (!m) fail("import_missing_argument", "-m dhcpmac needs --mac", "-m dhcpmac");
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}(\/\d{1,2})?$/i.test(val(m)))
      fail("import_invalid_value", `${val(m)} is not a MAC address aa:bb:cc:dd:ee:ff[/bits]`, val(m));
    setXt(d, "dhcpmac", negate(m.neg, val(m).toLowerCase()), m.opt);
  },
};

const rpfilter: ModuleSpec = {
  options: { "--invert": flag, "--loose": flag, "--validmark": flag, "--accept-local": flag },
  build(o, d) {
    for (const k of ["--loose", "--validmark", "--accept-local"]) {
      const x = o.get(k);
      if (x) fail("import_unsupported", `rpfilter ${k} has no equivalent in the policy schema`, x.opt);
    }
    setMatch(d, "rpfilter", o.has("--invert") ? "fail" : "pass", "-m rpfilter");
  },
};

/** pknock is lifted as a whole rule (protections.portKnock); the options are kept for that. */
const pknock: ModuleSpec = {
  options: {
    "--knockports": arg,
    "--time": arg,
    "--t": { arity: 1, alias: "--time" },
    "--autoclose": arg,
    "--name": arg,
    "--strict": flag,
    "--opensecret": arg,
    "--closesecret": arg,
    "--checkip": flag,
  },
  build(o, d) {
    d.pknock = o;
  },
};

/**
 * `-m set --match-set NAME src|dst` (a tuple set: `src,dst`, match.tupleSet): a set the input created (ipset commands, `ipset save`
 * lines); a set it does not hold is refused, as iptables-restore refuses it (ipset.ts useSet).
 */
const set: ModuleSpec = {
  options: {
    "--match-set": { arity: 2, neg: true },
    "--set": { arity: 2, neg: true, alias: "--match-set" },
    "--return-nomatch": flag,
    "--update-counters": negFlag,
    "--update-subcounters": negFlag,
    "--packets-eq": negArg,
    "--packets-lt": arg,
    "--packets-gt": arg,
    "--bytes-eq": negArg,
    "--bytes-lt": arg,
    "--bytes-gt": arg,
  },
  build(o, d) {
    const m = o.get("--match-set");
    if (!m) fail("import_missing_argument", "-m set needs --match-set NAME src|dst", "-m set");
    // The counter test itself is the reason; `! --update-counters` only comes with one.
    const keys = [...o.keys()];
    const counter = keys.find((k) => /^--(packets|bytes)-/.test(k)) ?? keys.find((k) => k.startsWith("--update-"));
    if (counter)
      fail(
        "import_unsupported",
        `-m set ${counter}: the per-element packet and byte counters of an ipset have no equivalent in the policy schema`,
        o.get(counter)!.opt,
      );
    if (o.has("--return-nomatch"))
      fail(
        "import_unsupported",
        "-m set --return-nomatch: nomatch elements (exceptions inside a hash:net set) are not imported",
        "--return-nomatch",
      );
    const [ipsetName, dir] = (m.value ?? "").split(" ") as [string, string];
    const name = useSet(d, ipsetName, dir, "--match-set", false, m.neg);
    const directions = dir.split(",") as ("src" | "dst")[];
    if (directions.length > 1) setMatch(d, "tupleSet", negate(m.neg, { set: name, directions }), m.opt);
    else setMatch(d, dir === "src" ? "saddr" : "daddr", negate(m.neg, `@${name}`), m.opt);
  },
};

export const MODULES: Record<string, ModuleSpec> = {
  tcp,
  udp,
  sctp: udp,
  dccp: udp,
  udplite: udp,
  icmp,
  icmp6,
  multiport,
  statistic,
  state,
  conntrack,
  limit,
  recent,
  quota2,
  quota: quota2,
  length,
  length2,
  tcpmss,
  mark,
  connmark,
  iface,
  geoip,
  comment,
  addrtype,
  hashlimit,
  condition,
  ipp2p,
  ipv4options,
  lscan,
  psd,
  fuzzy,
  gradm,
  dhcpmac,
  rpfilter,
  pknock,
  set,
  ...EXTRA_MODULES,
};

/** Known modules that the policy cannot express, with the reason the report gives. */
export const UNSUPPORTED_MODULES: Record<string, string> = {
  string:
    "payload string matching has no equivalent in the policy schema: xt_string searches every offset between --from and --to, and nftables can only compare bytes at a fixed offset; match the traffic by address or port instead, or filter the content where it is parsed (a DNS resolver's or an HTTP proxy's policy)",
  u32: "u32 payload matching has no equivalent in the policy schema",
  tos: "TOS matching has no equivalent in the policy schema",
  helper: "conntrack helper matching has no equivalent in the policy schema",
};

/** The match module -p loads implicitly, for options given without -m. */
export const IMPLICIT_MODULE: Record<string, string> = {
  tcp: "tcp",
  udp: "udp",
  icmp: "icmp",
  icmpv6: "icmp6",
  sctp: "sctp",
  dccp: "dccp",
  udplite: "udplite",
};

export function canonicalOption(spec: ModuleSpec, opt: string): { name: string; spec: OptionSpec } | undefined {
  const s = spec.options[opt];
  if (!s) return undefined;
  return { name: s.alias ?? opt, spec: s };
}
