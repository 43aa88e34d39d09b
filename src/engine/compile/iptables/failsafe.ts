// The failsafe in iptables (what it matches: ../failsafe.ts): the first rules of every
// Palisade entry chain on a hook the agent's API connection crosses accept that
// connection, whatever the policy's own chains say.
import type { Policy } from "../../policy/index.ts";
import { FAILSAFE_COMMENT, failsafeMatch, type FailsafeContext } from "../failsafe.ts";
import { canonicalAddress } from "./address.ts";
import type { Fam } from "./context.ts";

export { FAILSAFE_COMMENT } from "../failsafe.ts";

/** Rule bodies to put first in the entry chain of `hook` in `table`, for one family. */
export function failsafeRules(
  policy: Policy,
  hook: string,
  table: string,
  fam: Fam,
  fs: FailsafeContext | undefined,
): string[] {
  const m = failsafeMatch(policy, hook, table, fs);
  if (!m) return [];
  const dir = m.inbound ? "sport" : "dport";
  const portMatch =
    m.ports.length === 1 ? `-m tcp --${dir} ${m.ports[0]}` : `-m multiport --${dir}s ${m.ports.join(",")}`;
  let addr = "";
  if (m.addresses) {
    const own = m.addresses[fam];
    if (!own.length) return [];
    const bits = fam === "ipv4" ? 32 : 128;
    addr = `${m.inbound ? "-s" : "-d"} ${own.map((a) => `${canonicalAddress(a)}/${bits}`).join(",")} `;
  }
  const state = m.replyOnly ? "-m conntrack --ctstate RELATED,ESTABLISHED " : "";
  return [`${addr}-p tcp ${portMatch} ${state}-m comment --comment "${FAILSAFE_COMMENT}" -j ACCEPT`];
}
