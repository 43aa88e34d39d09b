// geoip.json in the agent's state dir: the country data the agent holds (per country, the
// revision and its intervals per family), so that after a reboot with the API unreachable
// the restored policy's country sets are filled again (docs/geoip.md). Written whole and
// atomically (atomic.ts) after every change; read once at start.
//
// The intervals go into nft text as they are, so the file is checked element by element and
// taken whole or not at all: a bad country, revision or interval anywhere, or a family whose
// intervals are not sorted and disjoint, refuses the file.
import { isIPv4, isIPv6 } from "node:net";
import { z } from "zod";
import { geoip } from "../engine/index.ts";

export const GEOIP_STATE_FILE = "geoip.json";
const FORMAT = 1;

/** One interval as the API sends it: `a` or `a-b`, a <= b, addresses of the family. */
function intervalOk(text: string, family: "ipv4" | "ipv6"): boolean {
  const parts = text.split("-");
  if (parts.length > 2) return false;
  const ok = family === "ipv4" ? isIPv4 : (a: string) => isIPv6(a) && !a.includes("%");
  if (!parts.every(ok)) return false;
  return parts.length === 1 || geoip.addressToBigInt(parts[0]!, family) <= geoip.addressToBigInt(parts[1]!, family);
}

/**
 * A family's intervals: each valid, and sorted and disjoint as the API sends them. The whole
 * set is refilled in one nft transaction, so one overlapping interval would make the refill
 * of every country fail, and since the file's revisions match the API's, the API would send
 * nothing to put it right.
 */
const Intervals = (family: "ipv4" | "ipv6") =>
  z.array(z.string()).superRefine((l, ctx) => {
    const bad = l.findIndex((t) => !intervalOk(t, family));
    if (bad >= 0) {
      ctx.addIssue({ code: "custom", path: [bad], message: `not an ${family} interval: ${l[bad]}` });
      return;
    }
    let lastEnd = -1n;
    for (const [i, t] of l.entries()) {
      const [a, b = a] = t.split("-") as [string, string?];
      const start = geoip.addressToBigInt(a, family);
      if (start <= lastEnd) {
        ctx.addIssue({
          code: "custom",
          path: [i],
          message: `${family} interval ${t} overlaps or comes before ${l[i - 1]} (intervals must be sorted and disjoint)`,
        });
        return;
      }
      lastEnd = geoip.addressToBigInt(b, family);
    }
  });

const GeoStateFile = z.strictObject({
  format: z.literal(FORMAT),
  countries: z.record(
    geoip.CountryCode,
    z.strictObject({
      revision: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
      ipv4: Intervals("ipv4"),
      ipv6: Intervals("ipv6"),
    }),
  ),
});

export interface HeldCountry {
  revision: number;
  ipv4: Iterable<string>;
  ipv6: Iterable<string>;
}

export type GeoState = Map<string, { revision: number; ipv4: string[]; ipv6: string[] }>;

/** The file's text, or the first thing wrong with it (nothing of a bad file is used). */
export function parseGeoState(text: string): { ok: true; value: GeoState } | { ok: false; error: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `not JSON (truncated?): ${(e as Error).message}` };
  }
  const r = GeoStateFile.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    return { ok: false, error: `${i.path.length ? `at /${i.path.join("/")}: ` : ""}${i.message}` };
  }
  return { ok: true, value: new Map(Object.entries(r.data.countries)) };
}

export function serializeGeoState(held: ReadonlyMap<string, HeldCountry>): string {
  const countries: Record<string, { revision: number; ipv4: string[]; ipv6: string[] }> = {};
  for (const [c, h] of [...held].sort(([a], [b]) => (a < b ? -1 : 1)))
    countries[c] = { revision: h.revision, ipv4: [...h.ipv4], ipv6: [...h.ipv6] };
  return JSON.stringify({ format: FORMAT, countries });
}
