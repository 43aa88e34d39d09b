// Flood presets (seed: iptables hardening tricks): ICMP/smurf, RST flood, SYN flood.
// The seed accepts traffic within the rate; here the preset only drops the excess and lets
// the rest continue to the user's rules, so a preset never opens what the policy closes.
import type { Protections, Rule } from "../policy/index.ts";
import { comment, type PresetOutput } from "./types.ts";

export const SYN_FLOOD_METER = "protect_synflood";

export function icmpFlood(p: NonNullable<Protections["icmpFlood"]>): PresetOutput {
  const rules: Rule[] = [
    { comment: comment("icmpFlood", "drop ICMP address-mask and timestamp requests"), match: { protocol: "icmp", icmpType: ["address-mask-request", "timestamp-request"] }, action: "drop" },
    { comment: comment("icmpFlood", `drop ICMP above ${p.rate} (burst ${p.burst}); the rest continues`), match: { protocol: "icmp", limit: { rate: p.rate, burst: p.burst, over: true } }, action: "drop" },
  ];
  return { rules: { input: rules } };
}

export function rstFlood(p: NonNullable<Protections["rstFlood"]>): PresetOutput {
  return {
    rules: {
      input: [
        { comment: comment("rstFlood", `drop TCP RST above ${p.rate} (burst ${p.burst}); the rest continues`), match: { protocol: "tcp", tcpFlags: { mask: ["rst"], compare: ["rst"] }, limit: { rate: p.rate, burst: p.burst, over: true } }, action: "drop" },
      ],
    },
  };
}

export function synFlood(p: NonNullable<Protections["synFlood"]>): PresetOutput {
  const meter = { name: SYN_FLOOD_METER, key: "saddr" as const, rate: p.rate, ...(p.burst !== undefined ? { burst: p.burst } : {}), over: true, timeoutSeconds: 60, size: 65536 };
  return {
    rules: {
      input: [
        { comment: comment("synFlood", `per source: drop new TCP connections above ${p.rate}`), match: { protocol: "tcp", ctState: ["new"], tcpFlags: { mask: ["fin", "syn", "rst", "ack"], compare: ["syn"] }, meter }, action: "drop" },
      ],
    },
  };
}
