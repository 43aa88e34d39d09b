// Single-packet authorisation (pknock UDP mode) as plain rules plus the agent:
//   port         -> accepted for sources in the recent list spa_NAME (the agent fills it),
//                   new connections dropped for everyone else (established ones go on to
//                   the user's rules, so closing the port does not cut an open session);
//   knockPort    -> logged to NFLOG `logGroup` with the prefix spaLogPrefix(NAME), dropped.
// The kernel cannot compute an HMAC, so the agent reads the knock from NFLOG, verifies it
// (agent/spa.ts) and adds the source to the list with the list's timeout (openSeconds), or
// deletes it on a close knock. The list is an ordinary recent list: `rcheck` with
// `seconds` makes its set's timeout openSeconds, which is pknock's autoclose.
import type { Protections, Rule } from "../policy/index.ts";
import { comment, type PresetOutput } from "./types.ts";

type Spa = NonNullable<Protections["spaKnock"]>[number];

/** The recent list (kernel sets recent_<list>_v4/_v6) the agent adds verified sources to. */
export const spaList = (name: string) => `spa_${name}`;
/** The NFLOG prefix of a knock: the agent finds the rule's secrets by it. */
export const spaLogPrefix = (name: string) => `palisade-spa ${name}`;

export function spaKnock(k: Spa): PresetOutput {
  const c = (what: string) => comment(`spaKnock ${k.name}`, what);
  const rules: Rule[] = [
    {
      comment: c(`open ${k.protocol} ${k.port} to sources whose knock the agent verified`),
      match: {
        protocol: k.protocol,
        dport: k.port,
        recent: {
          name: spaList(k.name),
          mode: "rcheck",
          side: "source",
          ...(k.openSeconds > 0 ? { seconds: k.openSeconds } : {}),
        },
      },
      action: "accept",
    },
    {
      // New connections only: one opened while the source was listed goes on to the user's
      // rules (their established accept) after autoclose or a close knock, as with pknock.
      comment: c(`new ${k.protocol} ${k.port} connections stay closed for everyone else`),
      match: { protocol: k.protocol, dport: k.port, ctState: ["new"] },
      action: "drop",
    },
    {
      comment: c(`knock on udp ${k.knockPort}: to the agent, which checks its HMAC`),
      match: { protocol: "udp", dport: k.knockPort },
      action: { type: "log", prefix: spaLogPrefix(k.name), group: k.logGroup },
    },
    {
      comment: c("the knock itself goes no further"),
      match: { protocol: "udp", dport: k.knockPort },
      action: "drop",
    },
  ];
  return { rules: { input: rules } };
}
