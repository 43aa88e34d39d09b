// `-m geoip [!] --src-cc|--dst-cc CC[,CC...]` -> a lookup in per-country interval sets
// (engine/geoip): `ip saddr @geo_v4_CC` for IPv4, `ip6 saddr @geo_v6_CC` for IPv6, the rule
// compiled once per family. The sets are declared empty; the agent fills them with the
// ranges the API sends (docs/geoip.md). A list of countries is an OR: one nft rule per
// country. The country data gives an address to one country only (engine/geoip: where two
// countries' ranges overlap, the later line wins), so a packet
// matches at most one of those rules, and the rule may carry any action (a log or a mark
// runs once, as with xt_geoip). Negated, the list is an AND of `!=` lookups in one rule.
// With both --src-cc and --dst-cc (two geoip matches in one iptables rule), both must hold.
import type { Path } from "../../diagnostics.ts";
import { GEO_SET_FLAGS, geoSetName, geoSetType } from "../../geoip/names.ts";
import type { Match } from "../../policy/index.ts";
import { FAMILY, FAMS, TABLE, type Ctx, type Fam } from "./context.ts";

type Geo = NonNullable<NonNullable<Match["xt"]>["geoip"]>;

export function geoipParts(g: Geo, fam: Fam, ctx: Ctx, path: Path): { parts: string[]; alternatives: string[][] } {
  const parts: string[] = [];
  const alternatives: string[][] = [];
  const expr = fam === "ipv4" ? "ip" : "ip6";
  for (const [key, side] of [
    ["source", "saddr"],
    ["destination", "daddr"],
  ] as const) {
    const list = g[key];
    if (!list) continue;
    const countries = [...new Set(list)];
    for (const cc of countries)
      for (const f of FAMS)
        ctx.declareSet(
          {
            kind: "set",
            family: FAMILY,
            table: TABLE,
            name: geoSetName(f, cc),
            type: geoSetType(f),
            flags: [...GEO_SET_FLAGS],
          },
          `geoip country ${cc}`,
          [...path, key],
        );
    const refs = countries.map((cc) => `${expr} ${side} ${g.invert ? "!= " : ""}@${geoSetName(fam, cc)}`);
    if (g.invert || refs.length === 1) parts.push(...refs);
    else alternatives.push(refs);
  }
  return { parts, alternatives };
}
