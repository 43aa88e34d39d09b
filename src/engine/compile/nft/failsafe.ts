// The failsafe in nftables (what it matches: ../failsafe.ts). In nftables an `accept` only
// ends the base chain it is in; the next base chain on the same hook still runs and may
// drop. So the failsafe is not a chain of its own at an early priority: it is the FIRST
// rules of every base chain on a hook the agent's traffic crosses.
import type { Policy } from "../../policy/index.ts";
import { failsafeMatch, type FailsafeContext } from "../failsafe.ts";
import { valueOrSet } from "./sets.ts";

export { FAILSAFE_COMMENT } from "../failsafe.ts";

/** Rule bodies to put first in a base chain on `hook` (none on forward, or when disabled). */
export function failsafeRules(
  policy: Policy,
  hook: string | undefined,
  table: string,
  fs: FailsafeContext | undefined,
): string[] {
  const m = failsafeMatch(policy, hook, table, fs);
  if (!m) return [];
  const tail = [
    `tcp ${m.inbound ? "sport" : "dport"} ${valueOrSet(m.ports.map(String))}`,
    ...(m.replyOnly ? ["ct state established,related"] : []),
    "accept",
  ].join(" ");
  if (!m.addresses) return [tail];
  const dir = m.inbound ? "saddr" : "daddr";
  const out: string[] = [];
  if (m.addresses.ipv4.length) out.push(`ip ${dir} ${valueOrSet(m.addresses.ipv4)} ${tail}`);
  if (m.addresses.ipv6.length) out.push(`ip6 ${dir} ${valueOrSet(m.addresses.ipv6)} ${tail}`);
  return out;
}
