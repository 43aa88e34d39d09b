// iptables targets (-j NAME): their options and the policy action each becomes. Targets the
// policy refuses (MIRROR, ECHO) or cannot express are errors with the reason.
import type { ActionObject, CtHelperName, Rule } from "../policy/index.ts";
import { Address, AccountingDef, CT_HELPERS, NatTo, freeText } from "../policy/index.ts";
import { fail } from "./cursor.ts";
import { useSet } from "./ipset.ts";
import type { OptionValue, Options, RuleDraft } from "./rule-draft.ts";
import {
  familyOf,
  parseAddress,
  parseDscp,
  parseDscpClass,
  parseMarkValue,
  parsePort,
  parseUint,
  strtoulBase0,
} from "./values.ts";
import { CHAIN_NAME_CLASH, LOG_LEVEL_BY_NAME, REJECT_BY_NAME } from "./vocab.ts";

export interface TargetSpec {
  /** Option name -> number of arguments. */
  options: Record<string, 0 | 1 | 2>;
  build(o: Options, d: RuleDraft): Rule["action"];
}

const val = (o: OptionValue | undefined): string => o?.value ?? "";
const none = (action: Rule["action"]): TargetSpec => ({ options: {}, build: () => action });

const REFLECTION =
  "sends packets back to their source: reflection loops and denial of service (two mirrors bounce a spoofed packet 240-255 times); removed from the kernel in 2.5/2.6 and always refused by Palisade";

/** libxt_TOS symbolic values; they come with mask 0x3f (the two precedence bits are kept). */
const TOS_NAMES: Record<string, number> = {
  "minimize-delay": 0x10,
  "maximize-throughput": 0x08,
  "maximize-reliability": 0x04,
  "minimize-cost": 0x02,
  "normal-service": 0x00,
};

function byte(text: string, opt: string): number {
  const n = /^(0x[0-9a-f]{1,2}|\d{1,3})$/i.test(text) ? Number(text) : NaN;
  if (!(n >= 0 && n <= 0xff))
    fail("import_invalid_value", `${opt} ${text} is not a TOS value (0-255, or 0x00-0xff)`, text);
  return n;
}

/** `--set-tos value[/mask]` (mask 0xff by default) or a symbolic name (mask 0x3f). */
function tosValue(text: string): { value: number; mask?: number } {
  const named = TOS_NAMES[text.toLowerCase()];
  if (named !== undefined) return { value: named, mask: 0x3f };
  const [v, m] = text.split("/");
  if (!/^(0x[0-9a-f]{1,2}|\d{1,3})$/i.test(v!) && m === undefined) {
    fail(
      "import_invalid_value",
      `--set-tos ${text} is not a TOS value[/mask] or one of Minimize-Delay, Maximize-Throughput, Maximize-Reliability, Minimize-Cost, Normal-Service`,
      text,
    );
  }
  const value = byte(v!, "--set-tos");
  const mask = m === undefined ? 0xff : byte(m, "--set-tos mask");
  if (value === 0 && mask === 0) fail("import_invalid_value", `--set-tos ${text} changes nothing; drop the rule`, text);
  return mask === 0xff ? { value } : { value, mask };
}

function logPrefix(o: OptionValue | undefined, max: number): string | undefined {
  if (!o) return undefined;
  const text = val(o);
  // An empty prefix is no prefix; the policy leaves it out rather than carrying "".
  if (text === "") return undefined;
  if (!freeText(max).safeParse(text).success) {
    fail(
      "import_invalid_value",
      `log prefix ${JSON.stringify(text)} must be printable ASCII without quotes or backslashes, at most ${max} characters`,
      text,
    );
  }
  return text;
}

const LOG_DETAIL = ["--log-tcp-sequence", "--log-tcp-options", "--log-ip-options", "--log-uid", "--log-macdecode"];

/**
 * MARK/CONNMARK value and mask: mark = (mark & ~mask) | value (set-mark) or ^ value (set-xmark).
 * `xor`: the bits flipped after that (--xor-mark, and --set-xmark's value outside its mask, as
 * kube-proxy's `--set-xmark 0x4000/0x0`); only MARK takes it.
 */
function markSet(o: Options, what: string): { value: number; mask?: number; xor?: number } | undefined {
  const set = o.get("--set-mark") ?? o.get("--set-xmark");
  const and = o.get("--and-mark");
  const or = o.get("--or-mark");
  const xor = o.get("--xor-mark");
  const flip = (value: number, mask: number, opt: string) => {
    if (what !== "MARK")
      fail("import_unsupported", `${what} ${opt}: flipping bits of the connection mark has no equivalent`, opt);
    // (mark & ~mask) ^ value: the value's bits under the mask are set, the others flipped.
    return { value: (value & mask) >>> 0, mask, xor: (value & ~mask) >>> 0 };
  };
  if (xor) return flip(parseUint(val(xor), "mark", 0xffffffff), 0, xor.opt);
  // --and-mark A keeps A's bits and clears the others: 0 under the mask ~A.
  if (and) {
    const keep = parseUint(val(and), "mark", 0xffffffff);
    return keep === 0 ? { value: 0 } : { value: 0, mask: ~keep >>> 0 };
  }
  if (or) {
    const v = parseUint(val(or), "mark", 0xffffffff);
    return { value: v, mask: v };
  }
  if (!set) return undefined;
  const { value, mask } = parseMarkValue(val(set), "mark");
  // With every value bit inside the mask, XOR into cleared bits equals OR: both are "set under mask".
  if (set.opt === "--set-xmark" && mask !== undefined && (value & ~mask) >>> 0 !== 0) return flip(value, mask, set.opt);
  // --set-mark v/m clears v|m and then sets v (the kernel's mask is v|m: libxt_MARK and
  // libxt_CONNMARK both store it so), so v's bits outside m are set too.
  const effective = mask === undefined || set.opt === "--set-xmark" ? mask : (mask | value) >>> 0;
  return effective === undefined || effective === 0xffffffff ? { value } : { value, mask: effective };
}

const natTo = (
  o: OptionValue | undefined,
  what: string,
): NonNullable<Extract<ActionObject, { type: "dnat" }>["to"]> => {
  const text = val(o);
  if (!o || text === "")
    fail("import_missing_argument", `${what} needs ${what === "DNAT" ? "--to-destination" : "--to-source"}`, what);
  // addr, addr:port, addr:lo-hi, [v6]:port; address ranges a-b are not expressible.
  let addr = text;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.+))?$/.exec(text);
  if (v6) {
    addr = v6[1]!;
    port = v6[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [addr, port] = text.split(":") as [string, string];
  }
  const out: { address?: string; addressLast?: string; port?: number | string } = {};
  if (addr !== "") {
    // A-B: ip6tables writes [A-B]:P, nft [A]-[B]:P.
    const ends = addr.split("-");
    if (ends.length > 2) fail("import_invalid_value", `${addr} is not an address or a range first-last`, addr);
    for (const e of ends) if (!Address.safeParse(e).success) fail("import_invalid_value", `${e} is not an address`, e);
    out.address = ends[0]!;
    if (ends.length === 2) {
      if (!NatTo.safeParse({ address: ends[0], addressLast: ends[1] }).success)
        fail(
          "import_invalid_value",
          `${what} address range ${addr} is not first-last with first <= last, of one family`,
          addr,
        );
      out.addressLast = ends[1]!;
    }
  }
  if (port !== undefined) out.port = natPort(port, what);
  return out;
};

function natPort(text: string, what: string): number | string {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m || Number(m[1]) > 65535 || Number(m[2] ?? 0) > 65535)
    fail("import_invalid_value", `${text} is not a port or port range for ${what}`, text);
  return m[2] === undefined ? Number(m[1]) : `${m[1]}-${m[2]}`;
}

function ignoreFlags(o: Options, d: RuleDraft, flags: string[], why: string): void {
  for (const f of flags) if (o.has(f)) d.notes.push(`${f} ${why}`);
}

/** A queue number as libxt_NFQUEUE reads it (strtoul base 0, at most 8 hex digits), 0-65535. */
function queueNum(text: string, what: string): number {
  const n = strtoulBase0(text, 65535, { hex: 8, decimal: 10 });
  return n ?? fail("import_invalid_value", `${what} is not a queue number (0-65535)`, text);
}

/**
 * `-j TTL --ttl-set|--ttl-inc|--ttl-dec N` (iptables only) and `-j HL --hl-set|--hl-inc|--hl-dec N`
 * (ip6tables only): libxt_TTL/libxt_HL read N as an 8-bit number (strtoul base 0), 0-255 for
 * set and 1-255 for inc/dec (xt_HL's checkentry refuses 0 too), exactly one option; each tool
 * knows only its own target (`unknown option`), so the rule keeps that target's family.
 */
function hopTarget(name: "TTL" | "HL"): TargetSpec {
  const [p, family, other, field] =
    name === "TTL" ? (["--ttl", "ipv4", "ipv6", "TTL"] as const) : (["--hl", "ipv6", "ipv4", "hop limit"] as const);
  const opts = ["set", "inc", "dec"] as const;
  return {
    options: { [`${p}-set`]: 1, [`${p}-inc`]: 1, [`${p}-dec`]: 1 },
    build(o, d) {
      if (d.family === other || (name === "HL" && d.ipv4Program))
        fail(
          "import_invalid_value",
          name === "TTL"
            ? "ip6tables has no TTL target (ip6tables-restore refuses the rule); IPv6's hop limit is -j HL --hl-set/--hl-inc/--hl-dec"
            : "iptables has no HL target (iptables-restore refuses the rule); IPv4's TTL is -j TTL --ttl-set/--ttl-inc/--ttl-dec",
          name,
        );
      const given = opts.filter((k) => o.has(`${p}-${k}`));
      if (given.length !== 1)
        fail("import_syntax", `${name} needs exactly one of ${opts.map((k) => `${p}-${k}`).join(", ")}`, name);
      const op = given[0]!;
      const text = val(o.get(`${p}-${op}`));
      const n = strtoulBase0(text, 255);
      if (n === undefined || (op !== "set" && n === 0))
        fail(
          "import_invalid_value",
          `${p}-${op} ${text} is not ${op === "set" ? `a ${field} (0-255)` : `an amount to ${op === "inc" ? "raise" : "lower"} the ${field} by (1-255; the kernel refuses 0)`}`,
          text,
        );
      // The target touches only its family's header: the rule is that family's.
      d.family = family;
      return op === "set" ? { type: "ttl", set: n } : op === "inc" ? { type: "ttl", inc: n } : { type: "ttl", dec: n };
    },
  };
}

export const TARGETS: Record<string, TargetSpec> = {
  ACCEPT: none("accept"),
  // ip_queue's QUEUE is queue 0 (iptables-nft 1.8.9 cannot load it; NFQUEUE --queue-num 0 is the same).
  QUEUE: none({ type: "queue", num: 0 }),
  NFQUEUE: {
    options: { "--queue-num": 1, "--queue-balance": 1, "--queue-bypass": 0, "--queue-cpu-fanout": 0 },
    build(o) {
      const n = o.get("--queue-num");
      const b = o.get("--queue-balance");
      if (n && b) fail("import_syntax", "NFQUEUE takes --queue-num or --queue-balance, not both", "--queue-balance");
      const a: Extract<ActionObject, { type: "queue" }> = { type: "queue", num: 0 };
      if (n) a.num = queueNum(val(n), `--queue-num ${val(n)}`);
      if (b) {
        const what = `--queue-balance ${val(b)}`;
        const m = /^([^:]+):([^:]+)$/.exec(val(b));
        const lo = m && /^\d{1,5}$/.test(m[1]!) ? Number(m[1]) : NaN;
        const hi = m && /^\d{1,5}$/.test(m[2]!) ? Number(m[2]) : NaN;
        if (!(lo >= 0 && hi <= 65535 && lo < hi))
          fail("import_invalid_value", `${what} is not a range A:B of queue numbers with A < B (0-65535)`, val(b));
        if (hi - lo > 65534)
          fail(
            "import_invalid_value",
            `${what} spans 65536 queues; the kernel counts at most 65535 (iptables: Invalid argument)`,
            val(b),
          );
        a.num = lo;
        a.to = hi;
      }
      if (o.has("--queue-bypass")) a.bypass = true;
      if (o.has("--queue-cpu-fanout")) {
        if (!b) fail("import_syntax", "NFQUEUE --queue-cpu-fanout needs --queue-balance", "--queue-cpu-fanout");
        a.fanout = true;
      }
      return a;
    },
  },
  DROP: none("drop"),
  RETURN: none("return"),
  NOTRACK: none("notrack"),
  STEAL: none({ type: "steal" }),
  SYSRQ: none({ type: "sysrq" }),
  DELUDE: none({ type: "delude" }),
  REJECT: {
    options: { "--reject-with": 1 },
    build(o) {
      const w = o.get("--reject-with");
      if (!w) return { type: "reject" };
      const type = REJECT_BY_NAME[val(w)];
      if (!type) fail("import_invalid_value", `--reject-with ${val(w)} is not a known reject type`, val(w));
      return { type: "reject", with: type };
    },
  },
  LOG: {
    options: { "--log-prefix": 1, "--log-level": 1, ...Object.fromEntries(LOG_DETAIL.map((k) => [k, 0 as const])) },
    build(o, d) {
      const a: Extract<ActionObject, { type: "log" }> = { type: "log" };
      const prefix = logPrefix(o.get("--log-prefix"), 127);
      if (prefix !== undefined) a.prefix = prefix;
      const l = o.get("--log-level");
      if (l) {
        const level = LOG_LEVEL_BY_NAME[val(l).toLowerCase()];
        if (!level) fail("import_invalid_value", `--log-level ${val(l)} is not 0-7 or a syslog level name`, val(l));
        a.level = level;
      } else {
        // -j LOG means the kernel log; a level already implies the kernel-log copy.
        a.kernelLog = true;
      }
      ignoreFlags(o, d, LOG_DETAIL, "only adds detail to the log line; not carried over");
      return a;
    },
  },
  NFLOG: {
    options: { "--nflog-group": 1, "--nflog-prefix": 1, "--nflog-range": 1, "--nflog-size": 1, "--nflog-threshold": 1 },
    build(o, d) {
      const g = o.get("--nflog-group");
      const a: Extract<ActionObject, { type: "log" }> = {
        type: "log",
        group: g ? parseUint(val(g), "NFLOG group", 65535) : 0,
      };
      const prefix = logPrefix(o.get("--nflog-prefix"), 64);
      if (prefix !== undefined) a.prefix = prefix;
      ignoreFlags(
        o,
        d,
        ["--nflog-range", "--nflog-size", "--nflog-threshold"],
        "only tunes how much is copied/batched to userspace; not carried over",
      );
      return a;
    },
  },
  MARK: {
    options: { "--set-mark": 1, "--set-xmark": 1, "--and-mark": 1, "--or-mark": 1, "--xor-mark": 1 },
    build(o) {
      const m = markSet(o, "MARK");
      if (!m) fail("import_missing_argument", "MARK needs --set-mark or --set-xmark", "MARK");
      return { type: "mark", ...m };
    },
  },
  CONNMARK: {
    options: {
      "--set-mark": 1,
      "--set-xmark": 1,
      "--and-mark": 1,
      "--or-mark": 1,
      "--xor-mark": 1,
      "--save-mark": 0,
      "--restore-mark": 0,
      "--mask": 1,
      "--nfmask": 1,
      "--ctmask": 1,
    },
    build(o) {
      // xt_CONNMARK: save: ctmark = (ctmark & ~ctmask) ^ (mark & nfmask); restore: mark =
      // (mark & ~nfmask) ^ (ctmark & ctmask); --mask sets both. The destination's mask is
      // destMask (nft: one rule per bit, compile/nft/action.ts), the source's mask is mask.
      const mask = (k: string) => {
        const x = o.get(k) ?? o.get("--mask");
        return x ? parseUint(val(x), "mask", 0xffffffff) : 0xffffffff;
      };
      for (const [op, dest, src] of [
        ["save", "--ctmask", "--nfmask"],
        ["restore", "--nfmask", "--ctmask"],
      ] as const) {
        if (!o.has(`--${op}-mark`)) continue;
        const a: Extract<ActionObject, { type: "connmark" }> = { type: "connmark", op };
        if (mask(src) !== 0xffffffff) a.mask = mask(src);
        if (mask(dest) !== 0xffffffff) a.destMask = mask(dest);
        return a;
      }
      if (o.has("--mask") || o.has("--nfmask") || o.has("--ctmask"))
        fail(
          "import_unsupported",
          "CONNMARK --mask/--nfmask/--ctmask only go with --save-mark or --restore-mark",
          "CONNMARK",
        );
      const m = markSet(o, "CONNMARK");
      if (!m) fail("import_missing_argument", "CONNMARK needs --set-mark, --save-mark or --restore-mark", "CONNMARK");
      return m.mask === undefined
        ? { type: "connmark", op: "set", value: m.value }
        : { type: "connmark", op: "set", value: m.value, mask: m.mask };
    },
  },
  ACCOUNT: {
    options: { "--addr": 1, "--tname": 1 },
    build(o, d) {
      const addr = o.get("--addr");
      const tname = o.get("--tname");
      if (!addr || !tname)
        fail(
          "import_missing_argument",
          "ACCOUNT takes two mandatory parameters: --addr network/netmask and --tname NAME",
          addr ? "--tname" : "--addr",
        );
      const name = val(tname);
      if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(name))
        fail(
          "import_invalid_value",
          `accounting table name ${name} must start with a letter and contain only letters, digits and '_'`,
          name,
        );
      const prefix = parseAddress(val(addr), "--addr");
      const p = prefix.includes("/") ? prefix : `${prefix}/32`;
      const def = AccountingDef.safeParse({ prefix: p });
      if (!def.success)
        fail(
          "import_invalid_value",
          `ACCOUNT --addr ${val(addr)}: ${def.error.issues[0]?.message ?? "invalid prefix"}`,
          val(addr),
        );
      const existing = d.policy.accounting[name];
      // The manual: a table may be referenced again only with the same address/netmask block.
      if (existing && existing.prefix !== p)
        fail(
          "import_conflict",
          `accounting table ${name} was defined for ${existing.prefix}; ACCOUNT may reuse it only with the same --addr`,
          val(addr),
        );
      if (!existing) d.policy.accounting[name] = { prefix: p };
      return { type: "account", table: name };
    },
  },
  LOGMARK: {
    options: { "--log-prefix": 1, "--log-level": 1, "--log-nfmark": 0, "--log-ctmark": 0, "--log-secmark": 0 },
    build(o, d) {
      const a: Extract<ActionObject, { type: "logmark" }> = { type: "logmark" };
      const prefix = logPrefix(o.get("--log-prefix"), 29);
      if (prefix !== undefined) a.prefix = prefix;
      const l = o.get("--log-level");
      if (l) a.level = parseUint(val(l), "log level (0-8)", 8);
      ignoreFlags(
        o,
        d,
        ["--log-nfmark", "--log-ctmark", "--log-secmark"],
        "selects old-style output fields; LOGMARK events always carry both marks",
      );
      return a;
    },
  },
  IPMARK: {
    options: { "--addr": 1, "--and-mask": 1, "--or-mask": 1, "--shift": 1 },
    build(o) {
      const addr = val(o.get("--addr"));
      if (addr !== "src" && addr !== "dst")
        fail("import_invalid_value", "IPMARK --addr must be src or dst", addr || "IPMARK");
      const a: Extract<ActionObject, { type: "ipmark" }> = { type: "ipmark", addr };
      const shift = o.get("--shift");
      if (shift) a.shift = parseUint(val(shift), "shift", 127);
      const and = o.get("--and-mask");
      if (and) a.andMask = parseUint(val(and), "mask", 0xffffffff);
      const or = o.get("--or-mask");
      if (or) a.orMask = parseUint(val(or), "mask", 0xffffffff);
      return a;
    },
  },
  TEE: {
    options: { "--gateway": 1, "--oif": 1 },
    build(o) {
      const g = o.get("--gateway");
      if (!g) fail("import_missing_argument", "TEE needs --gateway", "TEE");
      if (o.has("--oif")) fail("import_unsupported", "TEE --oif has no equivalent in the policy schema", "--oif");
      if (!Address.safeParse(val(g)).success) fail("import_invalid_value", `${val(g)} is not an address`, val(g));
      if (val(g) === "0.0.0.0" || val(g) === "::")
        fail("import_invalid_value", `TEE --gateway ${val(g)} is invalid (xtables-addons manual)`, val(g));
      return { type: "tee", gateway: val(g) };
    },
  },
  RAWDNAT: {
    options: { "--to-destination": 1 },
    build(o) {
      const t = o.get("--to-destination");
      if (!t) fail("import_missing_argument", "RAWDNAT needs --to-destination addr[/mask]", "RAWDNAT");
      return { type: "rawdnat", to: parseAddress(val(t), "--to-destination") };
    },
  },
  RAWSNAT: {
    options: { "--to-source": 1 },
    build(o) {
      const t = o.get("--to-source");
      if (!t) fail("import_missing_argument", "RAWSNAT needs --to-source addr[/mask]", "RAWSNAT");
      return { type: "rawsnat", to: parseAddress(val(t), "--to-source") };
    },
  },
  /** ipset SET target: the set must be created by the input, as iptables-restore requires (ipset.ts useSet). */
  SET: {
    options: { "--add-set": 2, "--del-set": 2, "--exist": 0, "--timeout": 1 },
    build(o, d) {
      const given = (["--add-set", "--del-set"] as const).filter((k) => o.has(k));
      if (given.length !== 1) fail("import_syntax", "SET needs exactly one of --add-set and --del-set", "SET");
      const [ipset, dir] = val(o.get(given[0]!)).split(" ") as [string, string];
      const name = useSet(d, ipset, dir, given[0]!, true);
      for (const k of ["--exist", "--timeout"]) {
        const x = o.get(k);
        if (x) fail("import_unsupported", `SET ${k}: elements take the set's own timeout; ${k} is not imported`, x.opt);
      }
      // The kernel adds to it at runtime: the set must be declared dynamic.
      d.policy.sets[name]!.dynamic = true;
      return {
        type: "setUpdate",
        op: given[0] === "--add-set" ? "add" : "delete",
        set: name,
        key: dir === "src" ? "saddr" : "daddr",
      };
    },
  },
  TPROXY: {
    options: { "--on-port": 1, "--on-ip": 1, "--tproxy-mark": 1 },
    build(o, d) {
      const p = o.get("--on-port");
      // libxt_TPROXY requires --on-port (0: the packet's own destination port).
      if (!p)
        fail(
          "import_missing_argument",
          'TPROXY needs --on-port (iptables: option "--on-port" must be specified)',
          "TPROXY",
        );
      const a: Extract<ActionObject, { type: "tproxy" }> = { type: "tproxy", port: parsePort(val(p), "--on-port") };
      const ip = o.get("--on-ip");
      // iptables-save prints --on-ip 0.0.0.0 (ip6tables-save ::) for "none given": the receiving
      // interface's first address, which is what leaving it out means.
      if (ip && val(ip) !== "0.0.0.0" && val(ip) !== "::") {
        const addr = val(ip);
        if (!Address.safeParse(addr).success)
          fail("import_invalid_value", `TPROXY --on-ip ${addr} is not an address`, addr);
        // An iptables (IPv4) line carries ipv4Program, not a family: iptables-restore refuses an
        // IPv6 --on-ip too (getaddrinfo: Address family for hostname not supported; measured 1.8.9).
        const family = d.family ?? (d.ipv4Program ? "ipv4" : undefined);
        if (family && familyOf(addr) !== family)
          fail(
            "import_invalid_value",
            `TPROXY --on-ip ${addr} is not an ${family} address (${family === "ipv6" ? "ip6tables" : "iptables"}-restore refuses it)`,
            addr,
          );
        a.address = addr;
      }
      const mk = o.get("--tproxy-mark");
      if (mk) {
        // mark = (mark & ~mask) ^ value; a value alone has mask 0xffffffff; 0x0/0x0 (what
        // iptables-save prints when none was given) changes nothing.
        const { value, mask } = parseMarkValue(val(mk), "--tproxy-mark");
        if (value !== 0 || mask !== 0) {
          a.mark = value;
          if (mask !== undefined && mask !== 0xffffffff) a.mask = mask;
        }
      }
      return a;
    },
  },
  TCPMSS: {
    options: { "--clamp-mss-to-pmtu": 0, "--set-mss": 1 },
    build(o) {
      const set = o.get("--set-mss");
      if (o.has("--clamp-mss-to-pmtu") === (set !== undefined))
        fail("import_syntax", "TCPMSS needs exactly one of --clamp-mss-to-pmtu and --set-mss", "TCPMSS");
      if (!set) return { type: "tcpmss", mss: "pmtu" };
      const n = Number(val(set));
      if (!/^\d+$/.test(val(set)) || n < 1 || n > 65535)
        fail("import_invalid_value", `--set-mss ${val(set)} is not an MSS (1-65535)`, val(set));
      return { type: "tcpmss", mss: n };
    },
  },
  TOS: {
    options: { "--set-tos": 1, "--and-tos": 1, "--or-tos": 1, "--xor-tos": 1 },
    build(o) {
      const given = ["--set-tos", "--and-tos", "--or-tos", "--xor-tos"].filter((k) => o.has(k));
      if (given.length !== 1)
        fail("import_syntax", "TOS needs exactly one of --set-tos, --and-tos, --or-tos, --xor-tos", "TOS");
      const opt = given[0]!;
      const text = val(o.get(opt));
      if (opt === "--set-tos") return { type: "tos", ...tosValue(text) };
      const bits = byte(text, opt);
      // libxt_TOS: --and-tos b = --set-tos 0/~b, --or-tos b = b/b, --xor-tos b = b/0.
      const vm =
        opt === "--and-tos"
          ? { value: 0, mask: ~bits & 0xff }
          : opt === "--or-tos"
            ? { value: bits, mask: bits }
            : { value: bits, mask: 0 };
      if (vm.value === 0 && vm.mask === 0)
        fail("import_invalid_value", `${opt} ${text} changes nothing; drop the rule`, text);
      return { type: "tos", ...vm };
    },
  },
  TTL: hopTarget("TTL"),
  HL: hopTarget("HL"),
  DSCP: {
    options: { "--set-dscp": 1, "--set-dscp-class": 1 },
    build(o) {
      const n = o.get("--set-dscp");
      const c = o.get("--set-dscp-class");
      if (!n === !c) fail("import_syntax", "DSCP needs exactly one of --set-dscp and --set-dscp-class", "DSCP");
      const dscp = n ? parseDscp(val(n), "--set-dscp") : parseDscpClass(val(c), "--set-dscp-class");
      // The DSCP bits of the TOS byte; ECN is kept.
      return { type: "tos", value: dscp << 2, mask: 0xfc };
    },
  },
  // SELinux labels: the security table's own targets; the policy has no packet security context.
  SECMARK: {
    options: { "--selctx": 1 },
    build: () =>
      fail("import_unsupported", "SECMARK (SELinux packet labels) has no equivalent in the policy schema", "SECMARK"),
  },
  CONNSECMARK: {
    options: { "--save": 0, "--restore": 0 },
    build: () =>
      fail(
        "import_unsupported",
        "CONNSECMARK (SELinux connection labels) has no equivalent in the policy schema",
        "CONNSECMARK",
      ),
  },
  CHECKSUM: {
    options: { "--checksum-fill": 0 },
    build(o) {
      if (!o.has("--checksum-fill")) fail("import_missing_argument", "CHECKSUM needs --checksum-fill", "CHECKSUM");
      return { type: "checksumFill" };
    },
  },
  TARPIT: {
    options: { "--tarpit": 0, "--honeypot": 0, "--reset": 0 },
    build(o) {
      for (const k of ["--honeypot", "--reset"])
        if (o.has(k))
          fail(
            "import_unsupported",
            `TARPIT ${k} mode has no equivalent in the policy schema (only the default tarpit mode)`,
            k,
          );
      return { type: "tarpit" };
    },
  },
  CHAOS: {
    options: { "--delude": 0, "--tarpit": 0 },
    build(o) {
      if (o.has("--delude") && o.has("--tarpit"))
        fail("import_syntax", "CHAOS takes one of --delude or --tarpit", "--tarpit");
      if (o.has("--delude")) return { type: "chaos", mode: "delude" };
      if (o.has("--tarpit")) return { type: "chaos", mode: "tarpit" };
      return { type: "chaos" };
    },
  },
  DHCPMAC: {
    options: { "--set-mac": 1 },
    build(o) {
      const m = val(o.get("--set-mac"));
      if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}(\/\d{1,2})?$/i.test(m))
        fail(
          "import_invalid_value",
          `DHCPMAC --set-mac needs a MAC address aa:bb:cc:dd:ee:ff[/bits], got ${m || "nothing"}`,
          m || "DHCPMAC",
        );
      return { type: "dhcpmac", setMac: m.toLowerCase() };
    },
  },
  CT: {
    options: {
      "--notrack": 0,
      "--helper": 1,
      "--zone": 1,
      "--ctevents": 1,
      "--expevents": 1,
      "--timeout": 1,
      "--zone-orig": 1,
      "--zone-reply": 1,
    },
    build(o) {
      const helper = o.get("--helper");
      if (helper && o.size === 1) {
        const name = val(helper);
        // Own keys only: "constructor" is no helper. Case matters, as in the kernel (FTP is ENOENT).
        if (!Object.hasOwn(CT_HELPERS, name))
          fail(
            "import_invalid_value",
            `CT --helper ${name || "(nothing)"} is not a conntrack helper of the kernel (${Object.keys(CT_HELPERS).join(", ")}; H.323 is RAS and Q.931); iptables-restore refuses it (No such file or directory)`,
            name || "--helper",
          );
        return { type: "ctHelper", helper: name as CtHelperName };
      }
      if (!o.has("--notrack") || o.size > 1) {
        const other =
          [...o.keys()].find((k) => k !== "--notrack" && k !== "--helper") ?? (o.has("--helper") ? "--helper" : "CT");
        fail(
          "import_unsupported",
          `CT ${other === "CT" ? "without --notrack or --helper" : other} has no equivalent in the policy schema (only CT --notrack, and CT --helper alone, have one)`,
          other,
        );
      }
      return "notrack";
    },
  },
  MASQUERADE: {
    options: { "--to-ports": 1, "--random": 0, "--random-fully": 0 },
    build(o, d) {
      const p = o.get("--to-ports");
      ignoreFlags(o, d, ["--random", "--random-fully"], "only changes how source ports are chosen; not carried over");
      return p ? { type: "masquerade", port: natPort(val(p), "MASQUERADE") } : { type: "masquerade" };
    },
  },
  DNAT: {
    options: { "--to-destination": 1, "--random": 0, "--persistent": 0 },
    build(o, d) {
      ignoreFlags(o, d, ["--random", "--persistent"], "only changes how ports/addresses are chosen; not carried over");
      return { type: "dnat", to: natTo(o.get("--to-destination"), "DNAT") };
    },
  },
  SNAT: {
    options: { "--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0 },
    build(o, d) {
      ignoreFlags(
        o,
        d,
        ["--random", "--random-fully", "--persistent"],
        "only changes how ports/addresses are chosen; not carried over",
      );
      return { type: "snat", to: natTo(o.get("--to-source"), "SNAT") };
    },
  },
  REDIRECT: {
    options: { "--to-ports": 1, "--random": 0 },
    build(o, d) {
      const p = o.get("--to-ports");
      ignoreFlags(o, d, ["--random"], "only changes how ports are chosen; not carried over");
      return p ? { type: "redirect", port: natPort(val(p), "REDIRECT") } : { type: "redirect" };
    },
  },
  NETMAP: {
    options: { "--to": 1 },
    build(o) {
      const t = o.get("--to");
      if (!t) fail("import_missing_argument", "NETMAP needs --to address/prefix", "NETMAP");
      return { type: "netmap", to: parseAddress(val(t), "--to") };
    },
  },
};

/** Targets that are refused or have no equivalent, with the reason. */
export const REFUSED_TARGETS: Record<string, { code: "import_refused" | "import_unsupported"; reason: string }> = {
  MIRROR: { code: "import_refused", reason: `MIRROR ${REFLECTION}` },
  ECHO: { code: "import_refused", reason: `ECHO ${REFLECTION}` },
  ULOG: { code: "import_unsupported", reason: "ULOG was removed from the kernel: use NFLOG" },
  CLASSIFY: { code: "import_unsupported", reason: "CLASSIFY has no equivalent in the policy schema" },
  SECMARK: { code: "import_unsupported", reason: "SECMARK has no equivalent in the policy schema" },
  MASQ: {
    code: "import_unsupported",
    reason: "MASQ is ipchains syntax: in iptables use -t nat -A POSTROUTING ... -j MASQUERADE",
  },
};

/**
 * NAME is a target the program that reads the line ships (of either when it is unknown): one
 * it refuses as a chain name (vocab.ts). Not xtables-addons' (TARPIT), MIRROR, ECHO or MASQ,
 * which stock iptables lacks, nor the other program's only (TTL is iptables', HL ip6tables').
 */
export function isTargetName(name: string, program?: "ipv4" | "ipv6"): boolean {
  if (program) return CHAIN_NAME_CLASH[program].has(name);
  return CHAIN_NAME_CLASH.ipv4.has(name) || CHAIN_NAME_CLASH.ipv6.has(name);
}
