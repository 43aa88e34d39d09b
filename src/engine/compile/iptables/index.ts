// iptables-restore compiler, Palisade's second target (xtables-addons syntax where a
// feature needs it).
//
// Output, and how the agent applies it:
//   ipsets  `ipset restore -exist` input for the policy's named sets ("" when none): load first.
//   text    `iptables-restore --noflush` input (IPv4).
//   text6   `ip6tables-restore --noflush` input (IPv6).
// Both restore texts touch only chains named PALISADE-<BUILTIN> (entry chains, one jump each
// from the builtin chain) and PAL-<policy chain> (see layout.ts); builtin policies and
// foreign rules are never changed. Pass `installed` (parseInstalled(iptables-save)) so stale
// Palisade chains are deleted and jumps are not inserted twice.
// Names: policy chains PAL-<name> (<= 28 chars, hashed when longer), sets pal_<name>; recent
// lists, meters (hashlimit), quota2 counters and ACCOUNT tables keep the policy's name. A named
// counter is every rule tagged `-m comment --comment "palisade-counter:NAME"`: iptables has
// per-rule counters only, so the agent sums those rules' counters.
import { sortDiagnostics, type Diagnostic } from "../../diagnostics.ts";
import type { Policy } from "../../policy/index.ts";
import { checkTargetSupport } from "../support.ts";
import { IptCtx, type IptablesRenderContext } from "./context.ts";
import { expand } from "./expand.ts";
import { renderIpsets } from "./ipset.ts";
import { familyText } from "./layout.ts";

export type { IptablesRenderContext, InstalledState, FailsafeContext } from "./context.ts";
export { parseInstalled } from "./installed.ts";

export type IptablesRender =
  | { ok: true; text: string; text6: string; ipsets: string }
  | { ok: false; errors: Diagnostic[] };

export function renderIptables(policy: Policy, ctx: IptablesRenderContext = {}): IptablesRender {
  const { policy: expanded, errors: expandErrors } = expand(policy);
  const unsupported = checkTargetSupport(expanded, "iptables", ctx.capabilities);
  if (expandErrors.length > 0 || unsupported.length > 0)
    return { ok: false, errors: sortDiagnostics([...expandErrors, ...unsupported]) };
  const c = new IptCtx(expanded, ctx);
  const ipsets = renderIpsets(expanded, c);
  const text = familyText(expanded, "ipv4", c);
  const text6 = familyText(expanded, "ipv6", c);
  if (c.failed) return { ok: false, errors: sortDiagnostics(c.diagnostics) };
  return { ok: true, text, text6, ipsets };
}
