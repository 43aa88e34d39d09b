// Failsafe (Calico's failsafe ports): the agent's own connection to the API stays open
// whatever the policy says. Both compilers put the same match first in every entry chain
// on a hook that connection crosses (prerouting, input, output, postrouting; nat included,
// so no DNAT can divert it); this module decides what that match is, each compiler only
// writes it in its own syntax.
import { parsePrefix } from "../net/address.ts";
import type { Policy } from "../policy/index.ts";

export const FAILSAFE_COMMENT = "palisade failsafe: keep the agent's API connection open";

export interface FailsafeContext {
  /**
   * Every address the API endpoint the agent talks to resolves to. Given, the rules match
   * these addresses and the port together, never the port alone (any sender can pick a
   * source port); given empty, there is no failsafe rule (the agent refuses to apply such a
   * render: src/agent/desired.ts). Absent (a render
   * for no particular agent: preview, iptables export), the policy's failsafe ports.
   */
  apiAddresses?: string[];
  apiPort?: number;
}

export interface FailsafeMatch {
  inbound: boolean;
  ports: number[];
  /** Addresses by family, sorted and unique; undefined = match the port(s) alone. */
  addresses?: { ipv4: string[]; ipv6: string[] };
  /**
   * Inbound, the agent only ever receives replies on a connection it opened, so where
   * conntrack has run (filter, mangle, security) the failsafe demands an established or related
   * connection. Raw chains run before conntrack and nat chains never see replies.
   */
  replyOnly: boolean;
}

const INBOUND = new Set(["prerouting", "input"]);
const OUTBOUND = new Set(["output", "postrouting"]);
const CONNTRACKED_TABLES = new Set(["filter", "mangle", "security"]);

/** What the failsafe of a base chain on `hook` in `table` matches; undefined = no failsafe there. */
export function failsafeMatch(
  policy: Policy,
  hook: string | undefined,
  table: string,
  fs: FailsafeContext | undefined,
): FailsafeMatch | undefined {
  if (!policy.failsafe.enabled || !hook) return undefined;
  const inbound = INBOUND.has(hook);
  if (!inbound && !OUTBOUND.has(hook)) return undefined;
  const ports = fs?.apiPort !== undefined ? [fs.apiPort] : [...new Set(policy.failsafe.ports)].sort((a, b) => a - b);
  const replyOnly = inbound && CONNTRACKED_TABLES.has(table);
  if (fs?.apiAddresses === undefined) return { inbound, ports, replyOnly };
  const byFamily = (f: "ipv4" | "ipv6") =>
    [...new Set(fs.apiAddresses!.filter((a) => parsePrefix(a)?.family === f))].sort();
  const addresses = { ipv4: byFamily("ipv4"), ipv6: byFamily("ipv6") };
  if (!addresses.ipv4.length && !addresses.ipv6.length) return undefined;
  return { inbound, ports, addresses, replyOnly };
}
