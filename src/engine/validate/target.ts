// Whether a target (nftables, iptables-restore) can express every feature a policy uses.
// The compilers own the feature table (compile/support.ts); this module adds the value
// limits that differ per target, and the names only nftables refuses (names.ts).
import { error, warning, type Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/index.ts";
import { checkTargetSupport, type TargetCapabilities } from "../compile/support.ts";
import { rulesOf } from "./model.ts";
import { nftNameErrors } from "./names.ts";

/** iptables LOG --log-prefix holds 29 characters (nft log prefix allows 127). */
export const IPTABLES_LOG_PREFIX_MAX = 29;

export function targetSupport(
  policy: Policy,
  target: "nftables" | "iptables",
  caps?: TargetCapabilities,
): Diagnostic[] {
  const out = checkTargetSupport(policy, target, caps);
  if (target === "nftables") {
    // Names nft cannot read, or that the nft render and the agent take for their own objects.
    out.push(...nftNameErrors(policy));
    for (const r of rulesOf(policy)) {
      if (r.match?.ipsec?.protocol === "esp") {
        out.push(
          warning(
            [...r.path, "match", "ipsec", "protocol"],
            "ipsec_protocol_not_tested",
            `nftables cannot test a security association's protocol: this rule matches any IPsec packet${r.match.ipsec.direction === "in" ? " that was decapsulated" : " whose route is encapsulated"}, also one that only used AH (with ESP, as almost every tunnel, the same packets); render with target iptables to test esp`,
          ),
        );
      }
    }
  }
  if (target === "iptables") {
    for (const r of rulesOf(policy)) {
      if (r.action.type === "log" && (r.action.prefix?.length ?? 0) > IPTABLES_LOG_PREFIX_MAX) {
        out.push(
          error(
            [...r.path, "action", "prefix"],
            "log_prefix_too_long",
            `iptables LOG prefixes hold at most ${IPTABLES_LOG_PREFIX_MAX} characters (this one has ${r.action.prefix!.length}); shorten it, or render for nftables (127)`,
          ),
        );
      }
    }
  }
  return out;
}
