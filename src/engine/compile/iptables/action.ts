// Policy actions -> iptables targets (`-j ...`, `-g ...`), in the syntax of iptables(8)
// and, for ACCOUNT, LOGMARK, IPMARK, RAWSNAT/RAWDNAT, TARPIT, DELUDE, CHAOS, STEAL, SYSRQ and
// DHCPMAC, of the xtables-addons manual. The table constraints the kernel enforces are
// checked here too, so a wrong table is an error with a path, not a failed restore.
import type { Path } from "../../diagnostics.ts";
import { parsePrefix } from "../../net/address.ts";
import { LOG_LEVELS, type ActionObject, type Policy } from "../../policy/index.ts";
import { canonicalAddress, cidr, familyOf, hostPort } from "./address.ts";
import type { Fam, Table } from "./context.ts";
import type { RuleEnv } from "./context.ts";
import { chainName, counterTag, ipsetName } from "./names.ts";
import { SLOT, piece, type Piece } from "./pieces.ts";
import { quoteText } from "./quote.ts";

const hex = (n: number) => `0x${n.toString(16)}`;

const REJECT6: Record<string, string> = {
  "icmp-port-unreachable": "icmp6-port-unreachable",
  "icmp-host-unreachable": "icmp6-addr-unreachable",
  "icmp-net-unreachable": "icmp6-no-route",
  "icmp-proto-unreachable": "icmp6-port-unreachable",
  "icmp-net-prohibited": "icmp6-adm-prohibited",
  "icmp-host-prohibited": "icmp6-adm-prohibited",
  "icmp-admin-prohibited": "icmp6-adm-prohibited",
  "tcp-reset": "tcp-reset",
};

/** Tables a target may live in (kernel-enforced); absent = any table. */
const TABLES_OF: Partial<Record<ActionObject["type"], readonly Table[]>> = {
  notrack: ["raw"],
  ctHelper: ["raw"],
  masquerade: ["nat"],
  snat: ["nat"],
  dnat: ["nat"],
  redirect: ["nat"],
  netmap: ["nat"],
  checksumFill: ["mangle"],
  ipmark: ["mangle"],
  dhcpmac: ["mangle"],
  tee: ["mangle"],
  ttl: ["mangle"],
  tproxy: ["mangle"],
  rawsnat: ["raw", "rawpost"],
  rawdnat: ["raw", "rawpost"],
};

/** Targets whose kernel module insists on one protocol. */
const PROTO_OF: Partial<Record<ActionObject["type"], string>> = {
  tarpit: "tcp",
  delude: "tcp",
  chaos: "tcp",
  sysrq: "udp",
};

/** The family an action pins a rule to (its address), if any. */
export function actionFamily(a: ActionObject, sets: Policy["sets"] = {}): Fam | undefined {
  switch (a.type) {
    case "setUpdate": {
      // An ipset has one family; ip6tables refuses a rule that adds to an inet set.
      const t = sets[a.set]?.type;
      return t === "ipv6_addr" ? "ipv6" : t === "ipv4_addr" ? "ipv4" : undefined;
    }
    case "account":
      return "ipv4";
    case "tee":
      return familyOf(a.gateway);
    case "tproxy":
      return a.address ? familyOf(a.address) : undefined;
    case "snat":
    case "dnat":
      return a.to.address ? familyOf(a.to.address) : undefined;
    case "netmap":
    case "rawsnat":
    case "rawdnat":
      return familyOf(a.to);
    case "dhcpmac":
      return "ipv4";
    default:
      return undefined;
  }
}

export interface ActionEnv extends RuleEnv {
  /** The rule's positive transport protocol (explicit or implied), if any. */
  proto?: string;
  /** JSON path of the action. */
  actionPath: Path;
}

/** Target pieces of an action; the counter action has no target (the rule's counters are the counter). */
export function actionPieces(a: ActionObject, env: ActionEnv): Piece[] {
  const { ctx, actionPath: path } = env;
  const t = (text: string) => [piece(SLOT.target, text)];
  const allowed = TABLES_OF[a.type];
  if (allowed && !allowed.includes(env.table)) {
    ctx.error(
      path,
      "iptables_wrong_table",
      `${a.type} is only valid in table ${allowed.join(" or ")} in iptables (this chain is table ${env.table})`,
    );
  }
  if ((a.type === "drop" || a.type === "reject") && env.table === "nat") {
    ctx.error(
      path,
      "iptables_wrong_table",
      "iptables refuses DROP and REJECT in the nat table (it sees only a connection's first packet); filter in table filter",
    );
  }
  const needProto = PROTO_OF[a.type];
  if (needProto && env.proto !== needProto) {
    ctx.error(
      path,
      "iptables_target_protocol",
      `${a.type.toUpperCase()} works on ${needProto.toUpperCase()} only: add protocol ${needProto} to the rule's match`,
    );
  }
  const portsNeedL4 = (port: unknown) => {
    if (
      port !== undefined &&
      env.proto !== "tcp" &&
      env.proto !== "udp" &&
      env.proto !== "sctp" &&
      env.proto !== "dccp"
    ) {
      ctx.error(
        path,
        "iptables_nat_ports_need_protocol",
        "iptables maps ports only for rules that match protocol tcp, udp, sctp or dccp",
      );
    }
  };
  switch (a.type) {
    case "accept":
      return t("-j ACCEPT");
    case "drop":
      return t("-j DROP");
    case "return":
      return t("-j RETURN");
    case "notrack":
      return t("-j CT --notrack");
    case "ctHelper":
      return t(`-j CT --helper ${a.helper}`);
    case "reject": {
      const w = a.with ?? "icmp-port-unreachable";
      if (w === "tcp-reset" && env.proto !== "tcp")
        ctx.error(path, "iptables_reject_tcp_reset", "reject with tcp-reset needs protocol tcp in the rule's match");
      return t(`-j REJECT --reject-with ${env.fam === "ipv6" ? REJECT6[w] : w}`);
    }
    case "jump":
    case "goto": {
      const target = ctx.policy.chains[a.chain];
      if (!target) ctx.error([...path, "chain"], "iptables_unknown_chain", `chain ${a.chain} does not exist`);
      else if (target.table !== env.table)
        ctx.error(
          [...path, "chain"],
          "iptables_jump_table",
          `chain ${a.chain} is in table ${target.table}; iptables can only ${a.type} within one table (${env.table})`,
        );
      else if (target.hook)
        ctx.error(
          [...path, "chain"],
          "iptables_jump_base_chain",
          `chain ${a.chain} is a base chain (hook ${target.hook}); ${a.type} to a user chain`,
        );
      return t(`${a.type === "jump" ? "-j" : "-g"} ${chainName(a.chain)}`);
    }
    case "log": {
      if (a.group !== undefined && (a.kernelLog || a.level !== undefined)) {
        ctx.error(
          path,
          "iptables_log_kernel_copy",
          "iptables renders one target per rule: -j NFLOG (group) or -j LOG (kernelLog/level), not both; write two rules",
        );
        return [];
      }
      if (a.group !== undefined) {
        const prefix = a.prefix !== undefined ? `--nflog-prefix ${quoteText(a.prefix, ctx, [...path, "prefix"])} ` : "";
        return t(`-j NFLOG ${prefix}--nflog-group ${a.group}`);
      }
      const parts = ["-j LOG"];
      if (a.prefix !== undefined) parts.push(`--log-prefix ${quoteText(a.prefix, ctx, [...path, "prefix"])}`);
      if (a.level !== undefined) parts.push(`--log-level ${LOG_LEVELS.indexOf(a.level)}`);
      return t(parts.join(" "));
    }
    case "counter":
      return [piece(SLOT.counterTag, `-m comment --comment ${quoteText(counterTag(a.name), ctx, [...path, "name"])}`)];
    case "mark":
      // The kernel's form: mark = (mark & ~mask) ^ value.
      return t(`-j MARK --set-xmark ${hex((a.value ^ (a.xor ?? 0)) >>> 0)}/${hex(a.mask ?? 0xffffffff)}`);
    case "connmark":
      if (a.op !== "set") {
        // save: --nfmask is the source's (packet mark) mask, --ctmask the destination's; restore: the reverse.
        const [src, dest] = [a.mask ?? 0xffffffff, a.destMask ?? 0xffffffff];
        const [nf, ct] = a.op === "save" ? [src, dest] : [dest, src];
        const masks =
          a.mask === undefined && a.destMask === undefined ? "" : ` --nfmask ${hex(nf)} --ctmask ${hex(ct)}`;
        return t(`-j CONNMARK --${a.op}-mark${masks}`);
      }
      if (a.value === undefined) ctx.error([...path, "value"], "iptables_connmark_value", "connmark set needs a value");
      return t(`-j CONNMARK --set-xmark ${hex((a.value ?? 0) & (a.mask ?? 0xffffffff))}/${hex(a.mask ?? 0xffffffff)}`);
    case "account": {
      const def = ctx.policy.accounting[a.table];
      if (!def) {
        ctx.error(
          [...path, "table"],
          "iptables_unknown_accounting",
          `accounting table ${a.table} is not declared under accounting`,
        );
        return [];
      }
      const p = parsePrefix(def.prefix);
      // The ACCOUNT target is IPv4-only and per address; the nftables backend does the rest.
      if (p?.family === "ipv6") {
        ctx.error(
          [...path, "table"],
          "iptables_account_ipv6",
          `accounting table ${a.table} accounts an IPv6 prefix: the ACCOUNT target is IPv4-only; use the nftables backend`,
        );
        return [];
      }
      if (def.aggregate !== undefined && def.aggregate !== 32) {
        ctx.error(
          [...path, "table"],
          "iptables_account_aggregate",
          `accounting table ${a.table} aggregates per /${def.aggregate}: the ACCOUNT target counts per address only; use the nftables backend`,
        );
        return [];
      }
      return t(`-j ACCOUNT --addr ${p ? cidr(p) : def.prefix} --tname ${a.table}`);
    }
    case "logmark": {
      if (a.group !== undefined) {
        // LOGMARK has no group; NFLOG hands mark and (with conntrack attributes) ctmark to the agent.
        const prefix = a.prefix !== undefined ? `--nflog-prefix ${quoteText(a.prefix, ctx, [...path, "prefix"])} ` : "";
        return t(`-j NFLOG ${prefix}--nflog-group ${a.group}`);
      }
      const parts = ["-j LOGMARK"];
      if (a.level !== undefined) parts.push(`--log-level ${a.level}`);
      if (a.prefix !== undefined) parts.push(`--log-prefix ${quoteText(a.prefix, ctx, [...path, "prefix"])}`);
      return t(parts.join(" "));
    }
    case "ipmark": {
      const parts = [`-j IPMARK --addr ${a.addr}`];
      if (a.shift !== undefined) parts.push(`--shift ${a.shift}`);
      if (a.andMask !== undefined) parts.push(`--and-mask ${hex(a.andMask)}`);
      if (a.orMask !== undefined) parts.push(`--or-mask ${hex(a.orMask)}`);
      return t(parts.join(" "));
    }
    case "tee":
      return t(`-j TEE --gateway ${canonicalAddress(a.gateway)}`);
    case "rawsnat":
    case "rawdnat": {
      const p = parsePrefix(a.to);
      const to = p ? cidr(p) : a.to;
      return t(a.type === "rawsnat" ? `-j RAWSNAT --to-source ${to}` : `-j RAWDNAT --to-destination ${to}`);
    }
    case "checksumFill":
      return t("-j CHECKSUM --checksum-fill");
    case "ttl": {
      // xt_HL: TTL is the IPv4 target, HL the IPv6 one; each refuses the other's options.
      const [target, p] = env.fam === "ipv6" ? ["HL", "--hl"] : ["TTL", "--ttl"];
      const [op, n] = a.set !== undefined ? ["set", a.set] : a.inc !== undefined ? ["inc", a.inc] : ["dec", a.dec];
      return t(`-j ${target} ${p}-${op} ${n}`);
    }
    case "tos":
      return t(
        `-j TOS --set-tos 0x${a.value.toString(16).padStart(2, "0")}/0x${(a.mask ?? 0xff).toString(16).padStart(2, "0")}`,
      );
    case "queue": {
      const parts = ["-j NFQUEUE", a.to === undefined ? `--queue-num ${a.num}` : `--queue-balance ${a.num}:${a.to}`];
      if (a.bypass) parts.push("--queue-bypass");
      if (a.fanout) parts.push("--queue-cpu-fanout");
      return t(parts.join(" "));
    }
    case "tproxy": {
      // xt_TPROXY: mark = (mark & ~mask) ^ value; --tproxy-mark V alone means mask 0xffffffff.
      const parts = ["-j TPROXY", `--on-port ${a.port}`];
      if (a.address !== undefined) parts.push(`--on-ip ${canonicalAddress(a.address)}`);
      if (a.mark !== undefined || a.mask !== undefined)
        parts.push(`--tproxy-mark ${hex((a.mark ?? 0) >>> 0)}/${hex(a.mask ?? 0xffffffff)}`);
      if (env.proto !== "tcp" && env.proto !== "udp")
        ctx.error(
          path,
          "iptables_target_protocol",
          "TPROXY works on TCP and UDP only: add protocol tcp or udp to the rule's match",
        );
      return t(parts.join(" "));
    }
    case "tcpmss":
      return t(a.mss === "pmtu" ? "-j TCPMSS --clamp-mss-to-pmtu" : `-j TCPMSS --set-mss ${a.mss}`);
    case "setUpdate":
      return t(
        `-j SET --${a.op === "add" ? "add" : "del"}-set ${ipsetName(a.set)} ${a.key === "saddr" ? "src" : "dst"}`,
      );
    case "tarpit":
      return t("-j TARPIT");
    case "delude":
      return t("-j DELUDE");
    case "chaos":
      return t(a.mode ? `-j CHAOS --${a.mode}` : "-j CHAOS");
    case "steal":
      return t("-j STEAL");
    case "sysrq":
      return t("-j SYSRQ");
    case "dhcpmac":
      return t(`-j DHCPMAC --set-mac ${a.setMac.toLowerCase()}`);
    case "echo":
    case "mirror":
      // Refused by checkTargetSupport before rendering starts; never rendered.
      ctx.error(path, "unsupported_on_target", `${a.type.toUpperCase()} is refused on every target`);
      return [];
    case "masquerade":
      portsNeedL4(a.port);
      return t(a.port === undefined ? "-j MASQUERADE" : `-j MASQUERADE --to-ports ${a.port}`);
    case "redirect":
      portsNeedL4(a.port);
      return t(a.port === undefined ? "-j REDIRECT" : `-j REDIRECT --to-ports ${a.port}`);
    case "snat":
    case "dnat": {
      portsNeedL4(a.to.port);
      if (!a.to.address) {
        ctx.error(
          [...path, "to", "address"],
          "iptables_nat_address",
          `${a.type} needs an address (use redirect for a local port)`,
        );
        return [];
      }
      const opt = a.type === "snat" ? "-j SNAT --to-source" : "-j DNAT --to-destination";
      if (a.to.addressLast !== undefined) {
        // iptables-save's forms (measured, 1.8.9): A-B[:P]; ip6tables [A-B]:P, A-B without a port.
        const range = `${canonicalAddress(a.to.address)}-${canonicalAddress(a.to.addressLast)}`;
        const v6 = familyOf(a.to.address) === "ipv6" && a.to.port !== undefined;
        return t(`${opt} ${v6 ? `[${range}]` : range}${a.to.port === undefined ? "" : `:${a.to.port}`}`);
      }
      return t(`${opt} ${hostPort(a.to.address, a.to.port)}`);
    }
    case "netmap": {
      const p = parsePrefix(a.to);
      return t(`-j NETMAP --to ${p ? cidr(p) : a.to}`);
    }
  }
}
