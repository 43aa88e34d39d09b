// Which countries the fleet's rules test now: the ruleset versions applied on or desired for
// a host, and those an unfinished deployment is putting on its targets. A load that would
// leave one of them with no ranges empties its sets on those hosts (a geoip drop then
// matches nobody, a negated one everybody), so it is refused unless the operator says so
// (docs/geoip.md).
import { geoip, type Policy } from "../../engine/index.ts";
import type { Prisma } from "../db/client.ts";
import { ApiError } from "../errors.ts";

/** One ruleset version that tests a country, and the hosts it is on or going to. */
export interface CountryUser {
  ruleset: string;
  version: number;
  applied: string[];
  deploying: string[];
}

/** The versions in use that test one country: all of them, and those that test it per family. */
export interface CountryUse {
  all: CountryUser[];
  ipv4: CountryUser[];
  ipv6: CountryUser[];
}

/** Per country, the versions in use that test it (countries no such version tests are absent). */
export async function countriesInUse(tx: Prisma.TransactionClient): Promise<Map<string, CountryUse>> {
  const applied = new Map<string, Set<string>>();
  const deploying = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, versionId: string | null, host: string) => {
    if (!versionId) return;
    if (!m.has(versionId)) m.set(versionId, new Set());
    m.get(versionId)!.add(host);
  };
  const hosts = await tx.host.findMany({
    where: { OR: [{ appliedVersionId: { not: null } }, { desiredVersionId: { not: null } }] },
    select: { name: true, appliedVersionId: true, desiredVersionId: true },
  });
  for (const h of hosts) {
    add(applied, h.appliedVersionId, h.name);
    if (h.desiredVersionId !== h.appliedVersionId) add(deploying, h.desiredVersionId, h.name);
  }
  const targets = await tx.deploymentTarget.findMany({
    where: { status: { in: ["pending", "applying"] }, deployment: { status: { in: ["pending", "running"] } } },
    select: { versionId: true, host: { select: { name: true } } },
  });
  for (const t of targets) if (!applied.get(t.versionId)?.has(t.host.name)) add(deploying, t.versionId, t.host.name);
  const ids = [...new Set([...applied.keys(), ...deploying.keys()])];
  if (ids.length === 0) return new Map();
  const versions = await tx.rulesetVersion.findMany({
    where: { id: { in: ids } },
    select: { id: true, number: true, document: true, ruleset: { select: { name: true } } },
    orderBy: [{ ruleset: { name: "asc" } }, { number: "asc" }],
  });
  const out = new Map<string, CountryUse>();
  for (const v of versions) {
    const countries = geoip.policyCountryFamilies(v.document as unknown as Policy);
    if (countries.size === 0) continue;
    const user: CountryUser = {
      ruleset: v.ruleset.name,
      version: v.number,
      applied: [...(applied.get(v.id) ?? [])].sort(),
      deploying: [...(deploying.get(v.id) ?? [])].sort(),
    };
    for (const [c, fams] of countries) {
      if (!out.has(c)) out.set(c, { all: [], ipv4: [], ipv6: [] });
      const use = out.get(c)!;
      use.all.push(user);
      for (const f of fams) use[f].push(user);
    }
  }
  return out;
}

/** At most this many host names per version in a message; the rest are counted. */
const NAMES = 10;
const names = (l: string[]) =>
  l.length <= NAMES ? l.join(", ") : `${l.slice(0, NAMES).join(", ")} and ${l.length - NAMES} more`;

function usersText(users: CountryUser[]): string {
  return users
    .map((u) => {
      const where = [
        u.applied.length ? `applied on ${names(u.applied)}` : "",
        u.deploying.length ? `deploying to ${names(u.deploying)}` : "",
      ].filter(Boolean);
      return `${u.ruleset} v${u.version} (${where.join("; ")})`;
    })
    .join(", ");
}

const FAMILY_NAME = { ipv4: "IPv4", ipv6: "IPv6" } as const;

/** Ranges per family a country has before the load (absent: none). */
export type HeldCounts = ReadonlyMap<string, { ipv4: number; ipv6: number }>;

/**
 * Refuse (409 geoip_would_empty, one detail per country or family) a load after which a
 * country that a version in use tests has no ranges, or has none left in a family a version
 * tests it in (an IPv4-only file: a negated test's IPv6 set would be empty and match every
 * IPv6 address). `allowEmpty` lets it through and returns what was emptied ("CN" for a whole
 * country, "DE/ipv6" for a family).
 */
export function refuseEmptying(
  inUse: ReadonlyMap<string, CountryUse>,
  parsed: geoip.GeoParsed,
  before: HeldCounts,
  allowEmpty: boolean,
  path: string,
): string[] {
  const found: { key: string; label: string; message: string }[] = [];
  for (const c of [...inUse.keys()].sort()) {
    const use = inUse.get(c)!;
    const now = parsed.countries.get(c) ?? { ipv4: [], ipv6: [] };
    if (now.ipv4.length + now.ipv6.length === 0) {
      found.push({ key: c, label: c, message: `country ${c} would have no ranges; tested by ${usersText(use.all)}` });
      continue;
    }
    for (const f of ["ipv4", "ipv6"] as const) {
      if (use[f].length === 0 || now[f].length > 0 || (before.get(c)?.[f] ?? 0) === 0) continue;
      found.push({
        key: `${c}/${f}`,
        label: `${c} (${FAMILY_NAME[f]})`,
        message: `country ${c} would have no ${FAMILY_NAME[f]} ranges (it has ${before.get(c)![f]} now); tested in ${FAMILY_NAME[f]} by ${usersText(use[f])}`,
      });
    }
  }
  if (found.length === 0 || allowEmpty) return found.map((e) => e.key);
  throw new ApiError(
    409,
    "geoip_would_empty",
    `country data refused, nothing stored: it has no ranges for ${found.map((e) => e.label).join(", ")}, which deployed ruleset versions test. Their sets would be emptied on those hosts, so a rule on them would match nobody and a negated one everybody. Add the ranges, deploy versions that no longer test them, or load anyway with allowEmpty (palisade geoip update --allow-empty)`,
    found.map((e) => ({ path, code: "geoip_would_empty", message: e.message })),
  );
}
