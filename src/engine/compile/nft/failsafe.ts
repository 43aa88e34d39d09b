// Failsafe (Calico's failsafe ports): the agent's own connection to the API stays open
// whatever the policy says. In nftables an `accept` only ends the base chain it is in;
// the next base chain on the same hook still runs and may drop. So the failsafe is
// not a chain of its own at an early priority: it is the FIRST rules of every base
// chain on a hook the agent's traffic crosses (prerouting, input, output,
// postrouting), nat chains included (so no DNAT can divert it either).
import { isIPv4 } from "node:net";
import type { Policy } from "../../policy/index.ts";
import type { FailsafeContext } from "./context.ts";
import { valueOrSet } from "./sets.ts";

export const FAILSAFE_COMMENT = "palisade failsafe: keep the agent's API connection open";

const INBOUND = new Set(["prerouting", "input"]);
const OUTBOUND = new Set(["output", "postrouting"]);

/**
 * Inbound, the agent only ever receives replies on a connection it opened, so where
 * conntrack has run (filter, mangle) the failsafe demands `ct state established,related`:
 * otherwise any packet with source port 50051 would walk past the whole policy. Raw
 * chains run before conntrack and nat chains never see replies, so there the port (and
 * the API address when the agent knows it) is all there is to match.
 */
const CONNTRACKED_TABLES = new Set(["filter", "mangle"]);

/** Rule bodies to put first in a base chain on `hook` (none on forward, or when disabled). */
export function failsafeRules(
  policy: Policy,
  hook: string | undefined,
  table: string,
  fs: FailsafeContext | undefined,
): string[] {
  if (!policy.failsafe.enabled || !hook) return [];
  const inbound = INBOUND.has(hook);
  if (!inbound && !OUTBOUND.has(hook)) return [];
  const ports = fs?.apiPort !== undefined ? [fs.apiPort] : [...new Set(policy.failsafe.ports)].sort((a, b) => a - b);
  const parts: string[] = [];
  if (fs?.apiAddress)
    parts.push(`${isIPv4(fs.apiAddress) ? "ip" : "ip6"} ${inbound ? "saddr" : "daddr"} ${fs.apiAddress}`);
  parts.push(`tcp ${inbound ? "sport" : "dport"} ${valueOrSet(ports.map(String))}`);
  if (inbound && CONNTRACKED_TABLES.has(table)) parts.push("ct state { established, related }");
  return [`${parts.join(" ")} accept`];
}
