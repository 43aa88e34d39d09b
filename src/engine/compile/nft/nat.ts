// NAT actions: masquerade, snat, dnat, redirect, netmap, and the stateless RAWSNAT/RAWDNAT.
import type { Path } from "../../diagnostics.ts";
import { hasHostBits, ipv4Network, parsePrefix, type Prefix } from "../../net/address.ts";
import type { ActionObject } from "../../policy/index.ts";
import type { Ctx, Fam } from "./context.ts";

export interface NatEnv {
  /** The policy chain's table (filter, nat, mangle, raw, rawpost). */
  table: string;
  hook?: string;
  /** A transport protocol is matched already (nft needs one before a port mapping). */
  l4: boolean;
}

const famWord = (f: Fam) => (f === "ipv4" ? "ip" : "ip6");

/** Port mappings need a transport protocol; add one when the match has none. */
function l4Guard(env: NatEnv): string[] {
  return env.l4 ? [] : ["meta l4proto { tcp, udp }"];
}

function hostPort(address: string, port: number | string | undefined, fam: Fam): string {
  const a = fam === "ipv6" && port !== undefined ? `[${address}]` : address;
  return port === undefined ? a : `${a}:${port}`;
}

/** The family a NAT action pins a rule to (its address), if any. */
export function natFamily(a: ActionObject): Fam | undefined {
  switch (a.type) {
    case "snat":
    case "dnat":
      return a.to.address ? parsePrefix(a.to.address)?.family : undefined;
    case "netmap":
    case "rawsnat":
    case "rawdnat":
      return parsePrefix(a.to)?.family;
    default:
      return undefined;
  }
}

function hostMask(p: Prefix): string {
  if (p.family === "ipv4") {
    const m = p.length === 0 ? 0xffffffff : (0xffffffff >>> p.length) >>> 0;
    return [m >>> 24, (m >>> 16) & 255, (m >>> 8) & 255, m & 255].join(".");
  }
  const groups: string[] = [];
  for (let g = 0; g < 8; g++) {
    let v = 0;
    for (let b = 0; b < 16; b++) if (g * 16 + b >= p.length) v |= 1 << (15 - b);
    groups.push(v.toString(16));
  }
  return groups.join(":");
}

/** Statements for a NAT action in family `fam`, or undefined when it is not a NAT action. */
export function natStatements(
  a: ActionObject,
  fam: Fam | undefined,
  env: NatEnv,
  ctx: Ctx,
  path: Path,
): string[] | undefined {
  const needNat = (what: string) => {
    if (env.table !== "nat")
      ctx.error(path, "nft_nat_table", `${what} needs a chain of table nat (this chain is table ${env.table})`);
  };
  switch (a.type) {
    case "masquerade":
      needNat("masquerade");
      return a.port === undefined ? ["masquerade"] : [...l4Guard(env), `masquerade to :${a.port}`];
    case "redirect":
      needNat("redirect");
      return a.port === undefined ? ["redirect"] : [...l4Guard(env), `redirect to :${a.port}`];
    case "snat":
    case "dnat": {
      needNat(a.type);
      if (!a.to.address || !fam) {
        ctx.error(
          [...path, "to", "address"],
          "nft_nat_address",
          `${a.type} in nftables' inet table needs an address (port-only ${a.type} cannot choose a family; use redirect for local ports)`,
        );
        return [];
      }
      const guard = a.to.port === undefined ? [] : l4Guard(env);
      if (a.to.addressLast !== undefined) {
        // nft 1.0.6 (measured): ip to A-B:P, ip6 to [A]-[B]:P, ip6 to A-B without a port.
        const range =
          fam === "ipv6" && a.to.port !== undefined
            ? `[${a.to.address}]-[${a.to.addressLast}]:${a.to.port}`
            : `${a.to.address}-${a.to.addressLast}${a.to.port === undefined ? "" : `:${a.to.port}`}`;
        return [...guard, `${a.type} ${famWord(fam)} to ${range}`];
      }
      return [...guard, `${a.type} ${famWord(fam)} to ${hostPort(a.to.address, a.to.port, fam)}`];
    }
    case "netmap": {
      needNat("netmap");
      const p = parsePrefix(a.to);
      if (!p || !fam) return [];
      const inbound = env.hook === "prerouting" || env.hook === "output";
      const outbound = env.hook === "postrouting" || env.hook === "input";
      if (!inbound && !outbound) {
        ctx.error(
          path,
          "nft_netmap_hook",
          "netmap needs a base chain on prerouting/output (destination) or postrouting/input (source)",
        );
        return [];
      }
      if (hasHostBits(p)) {
        ctx.error(
          [...path, "to"],
          "nft_prefix_host_bits",
          `netmap prefix ${a.to} has host bits set; write the network address`,
        );
        return [];
      }
      return [`${inbound ? "dnat" : "snat"} ${famWord(fam)} prefix to ${p.address}/${p.length}`];
    }
    case "rawsnat":
    case "rawdnat": {
      if (env.table !== "raw" && env.table !== "rawpost") {
        ctx.error(
          path,
          "nft_rawnat_table",
          `${a.type.toUpperCase()} works outside connection tracking, so only in chains of table raw or rawpost`,
        );
        return [];
      }
      const p = parsePrefix(a.to);
      if (!p || !fam) return [];
      const field = `${famWord(fam)} ${a.type === "rawsnat" ? "saddr" : "daddr"}`;
      const max = fam === "ipv4" ? 32 : 128;
      const network = p.family === "ipv4" ? ipv4Network(p) : p.address;
      if (p.family === "ipv6" && hasHostBits(p)) {
        ctx.error([...path, "to"], "nft_prefix_host_bits", `${a.to} has host bits set; write the network address`);
        return [];
      }
      // Stateless: rewrite the network bits, keep the host bits. nft fixes the L3/L4
      // checksums. In raw prerouting/output the packet is also kept out of conntrack,
      // which would otherwise track the pre-rewrite addresses.
      const value = p.length === max ? network : `${field} & ${hostMask(p)} | ${network}`;
      const stmts = [`${field} set ${value}`];
      if (env.table === "raw") stmts.push("notrack");
      return stmts;
    }
    default:
      return undefined;
  }
}
