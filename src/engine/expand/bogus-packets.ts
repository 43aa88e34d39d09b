// Bogus packets (seed: iptables hardening tricks): conntrack INVALID, SYN+FIN, SYN+RST.
import type { Protections, Rule } from "../policy/index.ts";
import { comment, type PresetOutput } from "./types.ts";

export function bogusPackets(p: NonNullable<Protections["bogusPackets"]>): PresetOutput {
  if (!p.enabled) return { rules: {} };
  const invalid: Rule = {
    comment: comment("bogusPackets", "drop packets conntrack finds INVALID"),
    match: { ctState: ["invalid"] },
    action: "drop",
  };
  const flags: Rule[] = [
    {
      comment: comment("bogusPackets", "drop TCP with SYN and FIN set"),
      match: { protocol: "tcp", tcpFlags: { mask: ["syn", "fin"], compare: ["syn", "fin"] } },
      action: "drop",
    },
    {
      comment: comment("bogusPackets", "drop TCP with SYN and RST set"),
      match: { protocol: "tcp", tcpFlags: { mask: ["syn", "rst"], compare: ["syn", "rst"] } },
      action: "drop",
    },
  ];
  return { rules: { input: [invalid, ...flags], forward: [invalid, ...flags], output: [invalid] } };
}
