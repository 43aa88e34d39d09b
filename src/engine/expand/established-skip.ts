// In the forward slot, after the port-scan ban check (which must see every packet: a source
// banned after its connection started is cut off), an ESTABLISHED packet that no remaining
// forward rule can match returns at once. Only bogusPackets and portScanTrap put rules in
// forward, and for an ESTABLISHED packet:
//   - `ct state invalid` cannot match (conntrack gave it a state);
//   - SYN+FIN and SYN+RST cannot match: conntrack's TCP tracker files every packet with those
//     flag combinations as INVALID (tcp_error, "invalid tcp flag combination"), so a tracked
//     packet that has them is never ESTABLISHED;
//   - the port-scan probe rules match only TCP to the trap's ports.
// So returning a non-TCP ESTABLISHED packet, or a TCP one to another port, changes no verdict;
// it saves the rest of the chain for nearly every forwarded packet (bench/forwarding.ts).
import type { Protections, Rule } from "../policy/index.ts";
import { comment } from "./types.ts";

export function forwardEstablishedSkip(p: Protections): Rule[] {
  const bogus = p.bogusPackets?.enabled === true;
  const probes = p.portScanTrap?.forward === true ? p.portScanTrap.ports : undefined;
  if (!bogus && !probes) return [];
  const why = "an ESTABLISHED packet that no rule below can match skips them";
  if (!probes) return [{ comment: comment("protections", why), match: { ctState: ["established"] }, action: "return" }];
  return [
    {
      comment: comment("protections", `${why} (not TCP)`),
      match: { ctState: ["established"], protocol: { not: "tcp" } },
      action: "return",
    },
    {
      comment: comment("protections", `${why} (TCP not to ${probes.join(",")})`),
      match: { ctState: ["established"], protocol: "tcp", dport: { not: [...probes] } },
      action: "return",
    },
  ];
}
