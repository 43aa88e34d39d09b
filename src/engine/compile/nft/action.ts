// Policy actions -> nft statements. Each action gives the tails of one or more rules
// (ACCOUNT needs three); everything before them is the rule's match.
import type { Path } from "../../diagnostics.ts";
import { logPrefix } from "../../nft/index.ts";
import { parsePrefix } from "../../net/address.ts";
import type { ActionObject } from "../../policy/index.ts";
import type { Ctx, Fam } from "./context.ts";
import { accountRules } from "./accounting.ts";
import { natFamily, natStatements, type NatEnv } from "./nat.ts";
import { unsupportedAction } from "./unsupported.ts";
import { tosStatements } from "./tos.ts";
import { ttlStatements } from "./ttl.ts";

/**
 * `log` and LOGMARK events go to this NFLOG group unless the action names one, so the
 * agent (which reads every group its applied ruleset uses) ships them to the API. NFLOG,
 * not the kernel log: an NFLOG message carries the packet mark (NFULA_MARK) and, when the
 * listener asks for conntrack data, the connection and its mark; an nft log prefix cannot
 * interpolate marks, and the kernel log is per host, not per namespace. A `log` action
 * with `kernelLog: true` or a `level` also keeps a kernel-log copy.
 */
export const LOG_DEFAULT_GROUP = 2;

export interface ActionEnv extends NatEnv {
  /** The match restricts the rule to TCP (needed by `reject with tcp reset`). */
  tcp: boolean;
  /** The match restricts the rule to UDP (a raw write into the UDP payload needs no test of its own). */
  udp?: boolean;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

/** The nft object for a helper on a protocol: helper_ftp_tcp, helper_q931_tcp, helper_netbios_ns_udp. */
export function ctHelperObjectName(helper: string, proto: "tcp" | "udp"): string {
  return `helper_${helper.toLowerCase().replace(/\./g, "").replace(/-/g, "_")}_${proto}`;
}

/** Families an action pins a rule to; `split` = it has per-family statements. */
export function actionFamilies(
  a: ActionObject,
  accounting: Record<string, { prefix: string }> = {},
  sets: Record<string, { type: string }> = {},
): { allowed?: Set<Fam>; split: boolean } {
  const nat = natFamily(a);
  if (nat) return { allowed: new Set([nat]), split: true };
  switch (a.type) {
    case "setUpdate":
      // `add @s { ip saddr }`: the key's family is the set's.
      return { allowed: new Set([sets[a.set]?.type === "ipv6_addr" ? "ipv6" : "ipv4"]), split: true };
    case "account": {
      // The table's prefix decides: ip/ip6 statements, one family.
      const p = accounting[a.table] ? parsePrefix(accounting[a.table]!.prefix) : null;
      return { allowed: new Set([p?.family ?? "ipv4"]), split: true };
    }
    case "tee":
      return { allowed: new Set([parsePrefix(a.gateway)?.family ?? "ipv4"]), split: true };
    case "tproxy":
      // `tproxy ip to` / `tproxy ip6 to`: an inet table needs the family in the statement.
      return a.address
        ? { allowed: new Set([parsePrefix(a.address)?.family ?? "ipv4"]), split: true }
        : { split: true };
    case "ipmark":
    case "tos":
    case "ttl":
      return { split: true };
    case "dhcpmac":
      // DHCP (BOOTP) is IPv4 only.
      return { allowed: new Set(["ipv4"]), split: true };
    case "reject":
      if (a.with === "icmp-proto-unreachable") return { allowed: new Set(["ipv4"]), split: true };
      return { split: a.with === "icmp-net-prohibited" || a.with === "icmp-host-prohibited" };
    default:
      return { split: false };
  }
}

/**
 * TPROXY. xt_TPROXY accepts the packet (mark = (mark & ~mask) ^ value) when it finds a
 * transparent socket and drops it otherwise; nft_tproxy only stops the rule (NFT_BREAK) when
 * there is none, so the rule is followed by one dropping what is left (the same match). The
 * mark is set after tproxy, so only on success, as xt_TPROXY does. nft needs the family in
 * an inet table and a TCP/UDP match before the statement (nft 1.0.6: "Transparent proxy
 * support requires transport protocol match").
 */
function tproxyRules(
  a: Extract<ActionObject, { type: "tproxy" }>,
  fam: Fam,
  env: ActionEnv,
  ctx: Ctx,
  path: Path,
): string[][] {
  if (!env.tcp && !env.udp) {
    ctx.error(path, "nft_tproxy_protocol", "tproxy needs a rule that matches protocol tcp or udp");
    return [];
  }
  const host = a.address === undefined ? "" : fam === "ipv6" ? `[${a.address}]` : a.address;
  // Port 0 is the packet's own destination port (nft_tproxy and xt_TPROXY alike).
  const to = a.port === 0 ? host || ":0" : `${host}:${a.port}`;
  const stmts = [`tproxy ${fam === "ipv4" ? "ip" : "ip6"} to ${to}`];
  if (a.mark !== undefined || a.mask !== undefined) {
    const value = (a.mark ?? 0) >>> 0;
    const keep = ~(a.mask ?? 0xffffffff) >>> 0;
    if (keep === 0) stmts.push(`meta mark set ${hex(value)}`);
    else if (keep !== 0xffffffff) stmts.push(`meta mark set meta mark & ${hex(keep)} ^ ${hex(value)}`);
    else if (value !== 0) stmts.push(`meta mark set meta mark ^ ${hex(value)}`);
  }
  return [[...stmts, "accept"], ["drop"]];
}

function rejectStatement(
  a: Extract<ActionObject, { type: "reject" }>,
  fam: Fam | undefined,
  env: ActionEnv,
  ctx: Ctx,
  path: Path,
): string {
  switch (a.with) {
    case undefined:
      return "reject";
    case "tcp-reset":
      if (!env.tcp)
        ctx.error(
          [...path, "with"],
          "nft_reject_tcp_reset",
          "reject with tcp-reset needs a rule that matches protocol tcp",
        );
      return "reject with tcp reset";
    case "icmp-port-unreachable":
      return "reject with icmpx type port-unreachable";
    case "icmp-host-unreachable":
      return "reject with icmpx type host-unreachable";
    case "icmp-net-unreachable":
      return "reject with icmpx type no-route";
    case "icmp-admin-prohibited":
      return "reject with icmpx type admin-prohibited";
    case "icmp-proto-unreachable":
      return "reject with icmp type prot-unreachable";
    case "icmp-net-prohibited":
    case "icmp-host-prohibited":
      // ICMPv6 has one "administratively prohibited" code for both.
      return fam === "ipv6" ? "reject with icmpv6 type admin-prohibited" : `reject with icmp type ${a.with.slice(5)}`;
  }
}

/**
 * IPMARK: mark = ((address >> shift) & andMask) | orMask, the address read as a number
 * in network ("human") order: 192.168.0.1 = 0xc0a80001. nft 1.0.6 refuses `ip saddr`
 * as a mark value (address type), so the address is read as raw network-header bits
 * (`@nh,OFFSET,32`, a plain integer). Measured on nft 1.0.6 + kernel 6.18:
 *  - a raw load followed only by `&`/`|` goes into the mark WITHOUT network-to-host
 *    conversion (the mark comes out byte-swapped); a shift makes nft insert `ntoh`;
 *  - the kernel refuses a shift by 0, and unaligned or shorter-than-32-bit loads do
 *    not evaluate to the right width.
 * So: with a shift, one rule `@nh,O,32 >> S & A | O`. Without one (IPv4 shift 0, IPv6
 * windows on byte boundaries), `>> 1 << 1` forces the conversion and a second rule puts
 * the lowest bit back: `@nh,LSB,1 1 meta mark set meta mark | 1`. IPv6 shifts above 96
 * load the top 32 bits and shift by the rest; other IPv6 shifts must be multiples of 8.
 */
function ipmarkStatements(a: Extract<ActionObject, { type: "ipmark" }>, fam: Fam, ctx: Ctx, path: Path): string[][] {
  const shift = a.shift ?? 0;
  const and = a.andMask === undefined ? "" : ` & ${hex(a.andMask)}`;
  const or = a.orMask === undefined ? "" : ` | ${hex(a.orMask)}`;
  let offset: number;
  let rest: number;
  if (fam === "ipv4") {
    if (shift > 31) {
      ctx.error([...path, "shift"], "nft_ipmark_shift", "an IPv4 address has 32 bits; shift must be below 32");
      return [];
    }
    offset = a.addr === "src" ? 96 : 128;
    rest = shift;
  } else {
    const base = a.addr === "src" ? 64 : 192;
    if (shift > 96) {
      offset = base;
      rest = shift - 96;
    } else if (shift % 8 === 0) {
      offset = base + 96 - shift;
      rest = 0;
    } else {
      ctx.error(
        [...path, "shift"],
        "nft_ipmark_shift",
        "IPMARK on IPv6 with nftables needs a shift that is a multiple of 8 or above 96 (nft 1.0.6 cannot load an unaligned 32-bit window); the iptables target (xtables-addons IPMARK) supports any shift",
      );
      return [];
    }
  }
  if (rest > 0) return [[`meta mark set @nh,${offset},32 >> ${rest}${and}${or}`]];
  const andMask = a.andMask ?? 0xffffffff;
  const first = [
    `meta mark set @nh,${offset},32 >> 1 << 1${a.andMask === undefined ? "" : ` & ${hex((andMask & ~1) >>> 0)}`}${or}`,
  ];
  const lowBitKept = (andMask & 1) === 1 && ((a.orMask ?? 0) & 1) === 0;
  return lowBitKept ? [first, [`@nh,${offset + 31},1 1`, "meta mark set meta mark | 0x00000001"]] : [first];
}

/** LOGMARK's numeric levels (printk's 0-7) as nft's names. */
const LOGMARK_LEVELS = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"] as const;

/**
 * DHCPMAC: write the prefix of the BOOTP client hardware address (28 bytes into the UDP
 * payload). A raw payload write leaves the UDP checksum stale (measured: the receiver sees a
 * bad checksum), so the checksum is set to 0, which IPv4 UDP defines as "none".
 */
function dhcpmacStatements(setMac: string, udpKnown: boolean): string[] {
  const [mac, bitsText] = setMac.split("/") as [string, string | undefined];
  const bits = bitsText === undefined ? 48 : Number(bitsText);
  const prefix = BigInt(`0x${mac.replaceAll(":", "")}`) >> BigInt(48 - bits);
  // The raw write comes before `udp checksum`'s own protocol test: the rule must test UDP first.
  return [
    ...(udpKnown ? [] : ["meta l4proto udp"]),
    `@th,288,${bits} set 0x${prefix.toString(16)}`,
    "udp checksum set 0",
  ];
}

/**
 * Rule tails for an action in family `fam` (undefined: family-agnostic rule). An empty
 * list means an error was reported.
 */
/**
 * CONNMARK save/restore into some bits of the destination only: dest = (dest & ~destMask) ^
 * (src & mask). nft 1.0.6 cannot combine two marks in one expression (the right side of | must
 * be constant), so the bits are moved one at a time, each by rules with constants only: a bit
 * of both masks is copied (two rules: source bit set, or clear), a bit of destMask only is
 * cleared (one rule for all of them), a bit of mask only is flipped where the source has it.
 * Bits are independent and the source is not written, so the rules in sequence give the
 * xt_CONNMARK value. Each is one tail: the rule's match is repeated per tail (rules.ts refuses
 * matches with state of their own, or that read the destination).
 */
function connmarkMerge(op: "save" | "restore", mask: number, destMask: number): string[][] {
  const [src, dest] = op === "save" ? ["meta mark", "ct mark"] : ["ct mark", "meta mark"];
  const tails: string[][] = [];
  const clear = (destMask & ~mask) >>> 0;
  if (clear !== 0) tails.push([`${dest} set ${dest} & ${hex(~clear >>> 0)}`]);
  for (let i = 0; i < 32; i++) {
    const b = (1 << i) >>> 0;
    if ((mask & b) === 0) continue;
    if ((destMask & b) !== 0) {
      tails.push([`${src} & ${hex(b)} != 0`, `${dest} set ${dest} | ${hex(b)}`]);
      tails.push([`${src} & ${hex(b)} == 0`, `${dest} set ${dest} & ${hex(~b >>> 0)}`]);
    } else tails.push([`${src} & ${hex(b)} != 0`, `${dest} set ${dest} ^ ${hex(b)}`]);
  }
  return tails.length ? tails : [[]];
}

export function compileAction(a: ActionObject, fam: Fam | undefined, env: ActionEnv, ctx: Ctx, path: Path): string[][] {
  if (unsupportedAction(a)) return [];
  const nat = natStatements(a, fam, env, ctx, path);
  if (nat !== undefined) return nat.length ? [nat] : [];
  switch (a.type) {
    case "notrack":
      // Only useful before conntrack sees the packet; the kernel also allows it only on
      // prerouting/output.
      if (env.table !== "raw") {
        ctx.error(
          path,
          "nft_notrack_table",
          "notrack must run before connection tracking: put it in a chain of table raw (hook prerouting or output)",
        );
        return [];
      }
      return [[a.type]];
    case "ctHelper": {
      // index.ts moves the rule to a chain after conntrack; here: the object and the statement.
      const proto = env.tcp ? "tcp" : env.udp ? "udp" : undefined;
      if (!proto) {
        ctx.error(path, "nft_ct_helper_protocol", `ct helper ${a.helper} needs the rule to match protocol tcp or udp`);
        return [];
      }
      const name = ctHelperObjectName(a.helper, proto);
      ctx.ctHelpers.set(name, { name, type: a.helper, protocol: proto });
      return [[`ct helper set "${name}"`]];
    }
    case "accept":
    case "drop":
    case "return":
      return [[a.type]];
    case "reject":
      return [[rejectStatement(a, fam, env, ctx, path)]];
    case "jump":
    case "goto":
      if (!ctx.policy.chains[a.chain]) {
        ctx.error([...path, "chain"], "nft_unknown_chain", `chain "${a.chain}" is not declared under chains`);
        return [];
      }
      if (ctx.policy.chains[a.chain]!.hook) {
        ctx.error(
          [...path, "chain"],
          "nft_jump_to_base_chain",
          `chain "${a.chain}" is a base chain (hook ${ctx.policy.chains[a.chain]!.hook}); jump/goto needs a chain without hook`,
        );
        return [];
      }
      return [[`${a.type} ${a.chain}`]];
    case "log": {
      if (a.kernelLog === false && a.level !== undefined) {
        ctx.error(
          [...path, "level"],
          "nft_log_level_without_kernel_log",
          "level is the syslog level of the kernel-log copy; it cannot be set with kernelLog: false",
        );
        return [];
      }
      const prefix = a.prefix ? ` prefix ${logPrefix(a.prefix)}` : "";
      const nflog = `log${prefix} group ${a.group ?? LOG_DEFAULT_GROUP}`;
      if (!a.kernelLog && a.level === undefined) return [[nflog]];
      // Two log statements in one rule: the kernel-log copy, then the event for the agent.
      return [[`log${prefix} level ${a.level ?? "warn"} ${nflog}`]];
    }
    case "logmark": {
      // NFLOG has no level: a level adds a kernel-log copy at that syslog level first (as
      // LOG's level does); the NFLOG event still carries mark and ct mark to the agent.
      const prefix = a.prefix ? ` prefix ${logPrefix(a.prefix)}` : "";
      const nflog = `log${prefix} group ${a.group ?? LOG_DEFAULT_GROUP}`;
      if (a.level === undefined) return [[nflog]];
      const level = LOGMARK_LEVELS[a.level];
      if (!level) {
        ctx.error(
          [...path, "level"],
          "nft_logmark_level",
          "LOGMARK level 8 is not a kernel log level (printk has 0-7; nft's level 8 is audit, a different log): use 0-7",
        );
        return [];
      }
      return [[`log${prefix} level ${level} ${nflog}`]];
    }
    case "dhcpmac":
      return [dhcpmacStatements(a.setMac, env.udp === true)];
    case "counter":
      if (!ctx.policy.counters[a.name]) {
        ctx.error([...path, "name"], "nft_unknown_counter", `counter "${a.name}" is not declared under counters`);
        return [];
      }
      return [[`counter name "${a.name}"`]];
    case "mark": {
      // MARK --set-mark value/mask: clear the mask bits, then or in the value.
      if (a.xor === undefined)
        return [
          [
            a.mask === undefined
              ? `meta mark set ${hex(a.value)}`
              : `meta mark set meta mark & ${hex(~a.mask >>> 0)} | ${hex(a.value & a.mask)}`,
          ],
        ];
      // Then flip: (mark & ~mask) ^ (value ^ xor), the value's bits being inside the mask.
      const keep = a.mask === undefined ? 0 : ~a.mask >>> 0;
      const x = ((a.mask === undefined ? a.value : a.value & a.mask) ^ a.xor) >>> 0;
      if (keep === 0) return [[`meta mark set ${hex(x)}`]];
      if (keep === 0xffffffff) return [[`meta mark set meta mark ^ ${hex(x)}`]];
      return [[`meta mark set meta mark & ${hex(keep)} ^ ${hex(x)}`]];
    }
    case "connmark":
      if (a.op !== "set" && a.destMask !== undefined) return connmarkMerge(a.op, a.mask ?? 0xffffffff, a.destMask);
      if (a.op === "save") return [[`ct mark set meta mark${a.mask === undefined ? "" : ` & ${hex(a.mask)}`}`]];
      if (a.op === "restore") return [[`meta mark set ct mark${a.mask === undefined ? "" : ` & ${hex(a.mask)}`}`]];
      if (a.value === undefined) {
        ctx.error([...path, "value"], "nft_connmark_value", "connmark set needs a value");
        return [];
      }
      return [
        [
          a.mask === undefined
            ? `ct mark set ${hex(a.value)}`
            : `ct mark set ct mark & ${hex(~a.mask >>> 0)} | ${hex(a.value & a.mask)}`,
        ],
      ];
    case "tos":
      return fam ? tosStatements(a, fam, ctx, path) : [];
    case "ttl":
      return fam ? ttlStatements(a, fam, ctx, path) : [];
    case "setUpdate":
      return fam ? [[`${a.op} @${a.set} { ${fam === "ipv4" ? "ip" : "ip6"} ${a.key} }`]] : [];
    case "queue": {
      const flags = [a.bypass && "bypass", a.fanout && "fanout"].filter(Boolean).join(",");
      return [[`queue num ${a.num}${a.to === undefined ? "" : `-${a.to}`}${flags ? ` ${flags}` : ""}`]];
    }
    case "tproxy":
      return fam ? tproxyRules(a, fam, env, ctx, path) : [];
    case "tcpmss":
      // Only SYNs carry the option; the rule's match selects them (validation asks for protocol tcp).
      return [[`tcp option maxseg size set ${a.mss === "pmtu" ? "rt mtu" : a.mss}`]];
    case "account":
      return accountRules(a.table, ctx, [...path, "table"]);
    case "ipmark":
      return fam ? ipmarkStatements(a, fam, ctx, path) : [];
    case "tee":
      ctx.error(
        path,
        "nft_unsupported",
        "TEE cannot be expressed in the nftables inet table with nft 1.0.6 (`dup to` is only accepted in ip/ip6 tables); the iptables target (TEE) supports it",
      );
      return [];
    default:
      ctx.error(path, "nft_unsupported", `action ${a.type} cannot be expressed in nftables`);
      return [];
  }
}
