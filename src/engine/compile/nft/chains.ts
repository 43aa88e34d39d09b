// Policy chains -> nft chains of the palisade table. iptables' tables become chain
// types and priorities on the same hook, so the kernel runs them in iptables' order:
//   raw      filter hook {prerouting,output}   priority raw     (-300)
//   mangle   filter hook *                     priority mangle  (-150); output: type route
//   nat      nat    hook prerouting            priority dstnat  (-100)
//            nat    hook output                priority -100    (iptables' NF_IP_PRI_NAT_DST)
//            nat    hook postrouting           priority srcnat  (100)
//            nat    hook input                 priority 100     (iptables' NF_IP_PRI_NAT_SRC)
//   filter   filter hook *                     priority filter  (0)
//   rawpost  filter hook postrouting           priority 300     (after srcnat, like xtables-addons' rawpost)
import type { Path } from "../../diagnostics.ts";
import type { Chain as NftChain, Hook, Priority } from "../../nft/index.ts";
import type { Chain } from "../../policy/index.ts";
import { FAMILY, TABLE, type Ctx } from "./context.ts";

export const RAWPOST_PRIORITY = 300;
/** The values of nft's dstnat/srcnat, for the hooks where nft does not accept the names. */
export const NAT_DST_PRIORITY = -100;
export const NAT_SRC_PRIORITY = 100;

export function chainPlacement(
  chain: Chain,
  ctx: Ctx,
  path: Path,
): { type: NftChain["type"]; priority: Priority } | undefined {
  const hook = chain.hook;
  if (!hook) return undefined;
  const bad = (allowed: string) => {
    ctx.error([...path, "hook"], "nft_chain_hook", `a chain of table ${chain.table} can hook ${allowed}, not ${hook}`);
    return undefined;
  };
  switch (chain.table) {
    case "filter":
      return { type: "filter", priority: "filter" };
    case "mangle":
      return { type: hook === "output" ? "route" : "filter", priority: "mangle" };
    case "raw":
      return hook === "prerouting" || hook === "output"
        ? { type: "filter", priority: "raw" }
        : bad("prerouting or output");
    case "rawpost":
      return hook === "postrouting" ? { type: "filter", priority: RAWPOST_PRIORITY } : bad("postrouting");
    case "security":
      // iptable_security's priority (NF_IP_PRI_SECURITY, 50): after filter, before the NAT of output.
      return hook === "input" || hook === "forward" || hook === "output"
        ? { type: "filter", priority: "security" }
        : bad("input, forward or output");
    case "nat":
      // nft 1.0.6 accepts the names dstnat/srcnat only on prerouting/postrouting
      // ("invalid priority expression value in this context" elsewhere): numbers there.
      if (hook === "prerouting") return { type: "nat", priority: "dstnat" };
      if (hook === "output") return { type: "nat", priority: NAT_DST_PRIORITY };
      if (hook === "postrouting") return { type: "nat", priority: "srcnat" };
      if (hook === "input") return { type: "nat", priority: NAT_SRC_PRIORITY };
      return bad("prerouting, input, output or postrouting");
  }
}

export function compileChain(name: string, chain: Chain, ctx: Ctx): NftChain {
  const path = ["chains", name];
  const out: NftChain = { kind: "chain", family: FAMILY, table: TABLE, name };
  const placement = chainPlacement(chain, ctx, path);
  if (placement && chain.hook) {
    out.type = placement.type;
    out.hook = chain.hook as Hook;
    out.priority = placement.priority;
    if (chain.policy) out.policy = chain.policy;
  } else if (chain.policy) {
    ctx.error([...path, "policy"], "nft_policy_needs_hook", "only base chains (with a hook) have a default policy");
  }
  if (chain.comment) out.comment = chain.comment;
  return out;
}
