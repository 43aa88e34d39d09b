// `-m recent` and per-source meters (hashlimit, `recent --hitcount`) as dynamic sets.
//
// recent list NAME -> sets recent_NAME_v4 / recent_NAME_v6 whose timeout is the
// list's `seconds` (an element expires when the address has not been seen for that
// long, which is what `--rcheck/--update --seconds N` asks). nftables keeps one timeout
// per set, so every rule using a list must agree on `seconds` (rules without it are fine).
//   set    -> update @s { ip saddr }            (add, or refresh the timeout)
//   rcheck -> ip saddr @s
//   update -> ip saddr @s update @s { ip saddr }
//   remove -> ip saddr @s delete @s { ip saddr }   (matches if it was listed)
//   hitcount H within S seconds -> a per-address meter: more than H-1 packets per S
//     seconds (token bucket, burst H-1), in its own set recent_NAME_hcH_Ss_v4.
import type { Path } from "../../diagnostics.ts";
import type { NamedSet } from "../../nft/index.ts";
import { parseRate, type Policy } from "../../policy/index.ts";
import type { MeterMatch, RecentMatch } from "./deps.ts";
import { FAMILY, TABLE, type Ctx, type Fam } from "./context.ts";

export const RECENT_SIZE = 65536;

const suffix = (fam: Fam) => (fam === "ipv4" ? "v4" : "v6");
const addrKey = (fam: Fam, side: "saddr" | "daddr") => `${fam === "ipv4" ? "ip" : "ip6"} ${side}`;
const addrType = (fam: Fam) => (fam === "ipv4" ? "ipv4_addr" : "ipv6_addr");

/** The timeout of every recent list, agreed across all rules that use it. */
export function planRecentTimeouts(policy: Policy, ctx: Ctx): Map<string, number | undefined> {
  const seen = new Map<string, { seconds?: number; path: Path }>();
  for (const [chainName, chain] of Object.entries(policy.chains)) {
    chain.rules.forEach((rule, i) => {
      const r = rule.match?.recent;
      if (!r) return;
      const path = ["chains", chainName, "rules", i, "match", "recent", "seconds"];
      // A hitcount rule lives in its own meter set; its seconds is the meter window.
      const seconds = r.hitcount !== undefined && r.hitcount > 1 ? undefined : r.seconds;
      const prev = seen.get(r.name);
      if (!prev || prev.seconds === undefined) {
        seen.set(r.name, { seconds: seconds ?? prev?.seconds, path });
      } else if (seconds !== undefined && seconds !== prev.seconds) {
        ctx.error(
          path,
          "nft_recent_seconds_conflict",
          `recent list "${r.name}" is checked with seconds ${prev.seconds} and ${seconds}: nftables keeps one timeout per set, so every rule of a list must use the same seconds (or none)`,
        );
      }
    });
  }
  return new Map([...seen].map(([k, v]) => [k, v.seconds]));
}

function rateText(count: number, windowSeconds: number): string {
  const units: [string, number][] = [["second", 1], ["minute", 60], ["hour", 3600], ["day", 86400]];
  for (const [unit, len] of units) {
    if ((count * len) % windowSeconds === 0) return `${(count * len) / windowSeconds}/${unit}`;
  }
  // Not a whole number per day: round up (at most one packet per day looser).
  return `${Math.ceil((count * 86400) / windowSeconds)}/day`;
}

export function recentParts(r: RecentMatch, fam: Fam, ctx: Ctx, path: Path, timeouts: Map<string, number | undefined>): string[] {
  const key = addrKey(fam, r.side === "destination" ? "daddr" : "saddr");
  if (r.hitcount !== undefined && r.hitcount > 1 && (r.mode === "update" || r.mode === "rcheck")) {
    const window = r.seconds ?? 1;
    const name = `recent_${r.name}_hc${r.hitcount}_${window}s_${suffix(fam)}`;
    ctx.declareSet(
      { kind: "set", family: FAMILY, table: TABLE, name, type: addrType(fam), flags: ["dynamic", "timeout"], timeout: window, size: RECENT_SIZE },
      `recent "${r.name}" hitcount ${r.hitcount}`,
      path,
    );
    const n = r.hitcount - 1;
    return [`update @${name} { ${key} limit rate over ${rateText(n, window)} burst ${n} packets }`];
  }
  if (r.hitcount !== undefined && r.hitcount > 1) {
    ctx.error([...path, "hitcount"], "nft_recent_hitcount_mode", `recent hitcount needs mode update or rcheck (it counts hits of a listed address)`);
    return [];
  }
  const timeout = timeouts.get(r.name);
  const name = `recent_${r.name}_${suffix(fam)}`;
  const set: NamedSet = { kind: "set", family: FAMILY, table: TABLE, name, type: addrType(fam), flags: timeout ? ["dynamic", "timeout"] : ["dynamic"], size: RECENT_SIZE };
  if (timeout) set.timeout = timeout;
  ctx.declareSet(set, `recent list "${r.name}"`, path);
  // Without a timeout nft refuses `update` (it refreshes a timeout); `add` is the same then.
  const refresh = timeout ? "update" : "add";
  switch (r.mode) {
    case "set":
      return [`${refresh} @${name} { ${key} }`];
    case "rcheck":
      return [`${key} @${name}`];
    case "update":
      return [`${key} @${name}`, `${refresh} @${name} { ${key} }`];
    case "remove":
      return [`${key} @${name}`, `delete @${name} { ${key} }`];
  }
}

export function meterParts(m: MeterMatch, fam: Fam, ctx: Ctx, path: Path): string[] {
  const name = `meter_${m.name}_${suffix(fam)}`;
  ctx.declareSet(
    { kind: "set", family: FAMILY, table: TABLE, name, type: addrType(fam), flags: ["dynamic", "timeout"], timeout: m.timeoutSeconds, size: m.size },
    `meter "${m.name}"`,
    path,
  );
  const { count, per } = parseRate(m.rate);
  const burst = m.burst !== undefined ? ` burst ${m.burst} packets` : "";
  return [`update @${name} { ${addrKey(fam, m.key)} limit rate ${m.over ? "over " : ""}${count}/${per}${burst} }`];
}
