// Failsafe (Calico's failsafe ports), as in the nftables compiler: the first rules of
// every Palisade entry chain on a hook the agent's API connection crosses (prerouting,
// input, output, postrouting; nat included, so no DNAT can divert it) accept that
// connection, whatever the policy's own chains say.
import type { Policy } from "../../policy/index.ts";
import { canonicalAddress, familyOf } from "./address.ts";
import type { Fam, FailsafeContext } from "./context.ts";

export const FAILSAFE_COMMENT = "palisade failsafe: keep the agent's API connection open";
const INBOUND = new Set(["prerouting", "input"]);
const OUTBOUND = new Set(["output", "postrouting"]);

/** Tables whose chains run after conntrack: there, inbound failsafe traffic must be a reply (see the nft compiler). */
const CONNTRACKED_TABLES = new Set(["filter", "mangle"]);

/** Rule bodies to put first in the entry chain of `hook` in `table`. */
export function failsafeRules(
  policy: Policy,
  hook: string,
  table: string,
  fam: Fam,
  fs: FailsafeContext | undefined,
): string[] {
  if (!policy.failsafe.enabled) return [];
  const inbound = INBOUND.has(hook);
  if (!inbound && !OUTBOUND.has(hook)) return [];
  if (fs?.apiAddress && familyOf(fs.apiAddress) !== fam) return [];
  const ports = fs?.apiPort !== undefined ? [fs.apiPort] : [...new Set(policy.failsafe.ports)].sort((a, b) => a - b);
  const dir = inbound ? "sport" : "dport";
  const portMatch = ports.length === 1 ? `-m tcp --${dir} ${ports[0]}` : `-m multiport --${dir}s ${ports.join(",")}`;
  const addr = fs?.apiAddress
    ? `${inbound ? "-s" : "-d"} ${canonicalAddress(fs.apiAddress)}/${fam === "ipv4" ? 32 : 128} `
    : "";
  const state = inbound && CONNTRACKED_TABLES.has(table) ? "-m conntrack --ctstate RELATED,ESTABLISHED " : "";
  return [`${addr}-p tcp ${portMatch} ${state}-m comment --comment "${FAILSAFE_COMMENT}" -j ACCEPT`];
}
