// Anti-spoofing on the external interface (seed: iptables hardening tricks, "Address spoofing").
import type { Protections, Rule } from "../policy/index.ts";
import { comment, type PresetOutput } from "./types.ts";

/** Sources that never arrive legitimately from the Internet: RFC 1918, loopback, link-local, multicast, reserved, "this network". */
export const BOGON_SOURCES = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "224.0.0.0/4",
  "240.0.0.0/4",
  "0.0.0.0/8",
];

export function antiSpoofing(p: NonNullable<Protections["antiSpoofing"]>): PresetOutput {
  const iif = p.interface;
  const rules: Rule[] = [
    {
      comment: comment("antiSpoofing", `drop private, loopback, link-local, multicast and reserved sources on ${iif}`),
      match: { iif, saddr: BOGON_SOURCES },
      action: "drop",
    },
  ];
  if (p.dropBroadcastDestinations) {
    // IPv4 only: IPv6 neighbour discovery needs multicast destinations.
    rules.push({
      comment: comment("antiSpoofing", `drop IPv4 broadcast and multicast destinations on ${iif}`),
      match: { family: "ipv4", iif, daddrType: ["broadcast", "multicast"] },
      action: "drop",
    });
  }
  if (p.reversePath) {
    rules.push({
      comment: comment("antiSpoofing", `reverse-path check: drop sources not routed back via ${iif}`),
      match: { iif, rpfilter: "fail" },
      action: "drop",
    });
  }
  return { rules: { prerouting: rules } };
}
