// Flood presets (seed: iptables hardening tricks): ICMP/smurf, RST flood, SYN flood.
// The seed accepts traffic within the rate; here the preset only drops the excess and lets
// the rest continue to the user's rules, so a preset never opens what the policy closes.
import { parseRate, type Match, type Protections, type Rule } from "../policy/index.ts";
import { NFT_MAX_HITCOUNT } from "../compile/hitcount.ts";
import { comment, type PresetOutput } from "./types.ts";

/** The SYN-flood preset's recent list, counter, or (with burst) meter. */
export const SYN_FLOOD_METER = "protect_synflood";

export function icmpFlood(p: NonNullable<Protections["icmpFlood"]>): PresetOutput {
  const rules: Rule[] = [
    {
      comment: comment("icmpFlood", "drop ICMP address-mask and timestamp requests"),
      match: { protocol: "icmp", icmpType: ["address-mask-request", "timestamp-request"] },
      action: "drop",
    },
    {
      comment: comment("icmpFlood", `drop ICMP above ${p.rate} (burst ${p.burst}); the rest continues`),
      match: { protocol: "icmp", limit: { rate: p.rate, burst: p.burst, over: true } },
      action: "drop",
    },
  ];
  return { rules: { input: rules } };
}

export function rstFlood(p: NonNullable<Protections["rstFlood"]>): PresetOutput {
  return {
    rules: {
      input: [
        {
          comment: comment("rstFlood", `drop TCP RST above ${p.rate} (burst ${p.burst}); the rest continues`),
          match: {
            protocol: "tcp",
            tcpFlags: { mask: ["rst"], compare: ["rst"] },
            limit: { rate: p.rate, burst: p.burst, over: true },
          },
          action: "drop",
        },
      ],
    },
  };
}

const UNIT_SECONDS = { second: 1, minute: 60, hour: 3600, day: 86400 } as const;

/**
 * The most new connections per window the exact (hit-counting) SYN-flood preset allows. The
 * preset counts every new connection of every source, so it keeps the smaller bound the
 * construction had (127 + 1 slots); a larger rate takes a burst (token bucket). Hit counts in
 * rules go up to NFT_MAX_HITCOUNT.
 */
export const SYN_FLOOD_MAX_EXACT = Math.min(127, NFT_MAX_HITCOUNT - 1);

/**
 * Without `burst`: exactly the seed's `recent --set` + `recent --update --seconds S --hitcount N+1`
 * (rate N per unit of S seconds): no window of S seconds lets more than N new connections of
 * one source through, and a source that keeps flooding stays dropped. With `burst`: a
 * per-source token bucket (meter), which lets the burst and the refill through.
 */
export function synFlood(p: NonNullable<Protections["synFlood"]>): PresetOutput {
  const syn: Match = {
    protocol: "tcp",
    ctState: ["new"],
    tcpFlags: { mask: ["fin", "syn", "rst", "ack"], compare: ["syn"] },
  };
  if (p.burst !== undefined) {
    const meter = {
      name: SYN_FLOOD_METER,
      key: "saddr" as const,
      rate: p.rate,
      burst: p.burst,
      over: true,
      timeoutSeconds: 60,
      size: 65536,
    };
    return {
      rules: {
        input: [
          {
            comment: comment(
              "synFlood",
              `per source: drop new TCP connections above ${p.rate} (token bucket, burst ${p.burst})`,
            ),
            match: { ...syn, meter },
            action: "drop",
          },
        ],
      },
    };
  }
  const { count, per } = parseRate(p.rate);
  const seconds = UNIT_SECONDS[per];
  return {
    rules: {
      input: [
        {
          comment: comment("synFlood", "record each new TCP connection of a source"),
          match: { ...syn, recent: { name: SYN_FLOOD_METER, mode: "set", side: "source" } },
          action: { type: "counter", name: SYN_FLOOD_METER },
        },
        {
          comment: comment("synFlood", `per source: drop new TCP connections beyond ${count} per ${per}`),
          match: {
            ...syn,
            recent: { name: SYN_FLOOD_METER, mode: "update", seconds, hitcount: count + 1, side: "source" },
          },
          action: "drop",
        },
      ],
    },
    counters: { [SYN_FLOOD_METER]: { comment: "new TCP connections seen by the synFlood preset" } },
  };
}
