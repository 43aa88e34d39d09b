// Country data for the geoip match in PostgreSQL (docs/geoip.md). The server owns it: a load
// replaces the whole data set in one transaction (a refused file writes nothing), and each
// country whose merged intervals changed gets a new revision and a change row holding the
// element deltas. An agent says which revision of each country it holds; it gets nothing
// (current), the folded deltas since its revision, or the whole country.
import { geoip } from "../../engine/index.ts";
import { recordAudit, type Actor } from "../audit.ts";
import type { Db, Prisma } from "../db/client.ts";
import { hasFeature, hostsLacking } from "../host-selection.ts";
import { countriesInUse, refuseEmptying } from "./in-use.ts";

/** The agent feature that says it fills country sets (older agents have no geoip sets to fill). */
export const GEOIP_CAPABILITY = "geoip";
export const hasGeoipCapability = (caps: unknown) => hasFeature(caps, GEOIP_CAPABILITY);
export const hostsWithoutGeoip = (db: Pick<Db, "host">, hostIds: string[]) =>
  hostsLacking(db, hostIds, GEOIP_CAPABILITY);

/**
 * Serialises every change of the country data with the deployments that depend on it: a
 * load takes it for its transaction, and so does a deployment's insert when its versions
 * test countries, so a load cannot empty a country between a deploy's check and its commit.
 */
export async function lockGeoData(tx: Prisma.TransactionClient): Promise<void> {
  await tx.$queryRaw`SELECT pg_advisory_xact_lock(hashtext('geoip'))::text`;
}

/** A tested country whose set would be empty in some family it is tested in. */
export interface MissingCountryData {
  country: string;
  /** The tested families without ranges. */
  families: geoip.GeoFamily[];
  /** No ranges in either family. */
  none: boolean;
}

/**
 * The countries of `tested` (country -> families a version tests it in) whose set is empty
 * in one of those families. A country with IPv4 ranges only is missing for a version whose
 * rule tests it in IPv6 too: that set would be empty, so a negated test there matches every
 * IPv6 address.
 */
export async function countriesWithoutData(
  db: Pick<Prisma.TransactionClient, "$queryRaw">,
  tested: ReadonlyMap<string, readonly geoip.GeoFamily[]>,
): Promise<MissingCountryData[]> {
  if (tested.size === 0) return [];
  const rows = await db.$queryRaw<{ country: string; ipv4: boolean; ipv6: boolean }[]>`
    SELECT country, ipv4 <> '' AS ipv4, ipv6 <> '' AS ipv6
      FROM geoip_countries WHERE country = ANY(${[...tested.keys()]}::text[])`;
  const held = new Map(rows.map((r) => [r.country, r]));
  const out: MissingCountryData[] = [];
  for (const [country, fams] of tested) {
    const r = held.get(country);
    const families = fams.filter((f) => !r?.[f]);
    if (families.length) out.push({ country, families, none: !r?.ipv4 && !r?.ipv6 });
  }
  return out;
}

const lines = (t: string) => (t === "" ? [] : t.split("\n"));
const text = (l: readonly string[]) => l.join("\n");

export interface GeoLoadResult {
  revision: number;
  ranges: number;
  countries: number;
  intervals: number;
  /** Countries whose intervals changed (new, changed or gone). */
  changed: string[];
  /**
   * Countries a version in use tests that this load left with no ranges ("CN"), or with none
   * in a family a version tests them in ("DE/ipv6"); only with allowEmpty.
   */
  emptiedInUse: string[];
}

export interface GeoLoadOptions {
  /** Store even when a country a deployed or deploying version tests would have no ranges. */
  allowEmpty?: boolean;
  /** The request part the refusal's details point at (/csv or /package). */
  path?: string;
}

export interface CountryCounts {
  country: string;
  ipv4: number;
  ipv6: number;
  revision: number;
}

export interface GeoDatasetView {
  revision: number;
  source: string;
  ranges: number;
  countries: number;
  loadedBy: string;
  loadedAt: Date | null;
}

/**
 * Store a parsed data set: every country in it, and countries it no longer has emptied
 * (their sets then hold nothing, so no rule matches a stale range). One transaction under an
 * advisory lock, so two loads are serialised and each change row's base is the row before.
 * A load that leaves a country a version in use tests with no ranges is refused before
 * anything is written, unless `allowEmpty` (in-use.ts).
 */
export async function loadGeoData(
  db: Db,
  actor: Actor,
  parsed: geoip.GeoParsed,
  source: string,
  opts: GeoLoadOptions = {},
): Promise<GeoLoadResult> {
  return db.$transaction(
    async (tx) => {
      await lockGeoData(tx);
      const old = new Map(
        (await tx.geoipCountry.findMany()).map((r) => [
          r.country,
          { ipv4: lines(r.ipv4), ipv6: lines(r.ipv6), revision: r.revision },
        ]),
      );
      const emptiedInUse = refuseEmptying(
        await countriesInUse(tx),
        parsed,
        new Map([...old].map(([c, o]) => [c, { ipv4: o.ipv4.length, ipv6: o.ipv6.length }])),
        opts.allowEmpty === true,
        opts.path ?? "/csv",
      );
      const meta = await tx.geoipDataset.findUnique({ where: { id: 1 } });
      const revision = (meta?.revision ?? 0n) + 1n;
      const changed: string[] = [];
      let intervals = 0;
      const all = new Set([...old.keys(), ...parsed.countries.keys()]);
      for (const cc of [...all].sort()) {
        const now = parsed.countries.get(cc) ?? { ipv4: [], ipv6: [] };
        intervals += now.ipv4.length + now.ipv6.length;
        const was = old.get(cc);
        const d4 = geoip.intervalDelta(was?.ipv4 ?? [], now.ipv4);
        const d6 = geoip.intervalDelta(was?.ipv6 ?? [], now.ipv6);
        if (!d4.add.length && !d4.del.length && !d6.add.length && !d6.del.length) continue;
        changed.push(cc);
        await tx.geoipChange.create({
          data: {
            country: cc,
            revision,
            fromRevision: was?.revision ?? 0n,
            ipv4Add: text(d4.add),
            ipv4Del: text(d4.del),
            ipv6Add: text(d6.add),
            ipv6Del: text(d6.del),
          },
        });
        const row = {
          ipv4: text(now.ipv4),
          ipv6: text(now.ipv6),
          intervals: now.ipv4.length + now.ipv6.length,
          revision,
          updatedAt: new Date(),
        };
        await tx.geoipCountry.upsert({ where: { country: cc }, create: { country: cc, ...row }, update: row });
      }
      const dataset = {
        revision,
        source,
        ranges: parsed.ranges,
        countries: parsed.countries.size,
        loadedBy: actor.name,
        loadedAt: new Date(),
      };
      await tx.geoipDataset.upsert({ where: { id: 1 }, create: { id: 1, ...dataset }, update: dataset });
      await recordAudit(tx, actor, "geoip.update", "geoip", {
        source,
        revision: Number(revision),
        ranges: parsed.ranges,
        countries: parsed.countries.size,
        changed,
        ...(emptiedInUse.length && { allowEmpty: true, emptiedInUse }),
      });
      return {
        revision: Number(revision),
        ranges: parsed.ranges,
        countries: parsed.countries.size,
        intervals,
        changed,
        emptiedInUse,
      };
    },
    { timeout: 120_000, maxWait: 30_000 },
  );
}

export async function geoDataset(db: Db): Promise<{ dataset: GeoDatasetView | null; countries: CountryCounts[] }> {
  const meta = await db.geoipDataset.findUnique({ where: { id: 1 } });
  const rows = await db.$queryRaw<{ country: string; ipv4: number; ipv6: number; revision: bigint }[]>`
    SELECT country, cardinality(string_to_array(NULLIF(ipv4, ''), E'\n'))::int AS ipv4,
           cardinality(string_to_array(NULLIF(ipv6, ''), E'\n'))::int AS ipv6, revision
      FROM geoip_countries ORDER BY country`;
  return {
    dataset: meta
      ? {
          revision: Number(meta.revision),
          source: meta.source,
          ranges: meta.ranges,
          countries: meta.countries,
          loadedBy: meta.loadedBy,
          loadedAt: meta.loadedAt,
        }
      : null,
    countries: rows.map((r) => ({
      country: r.country,
      ipv4: r.ipv4 ?? 0,
      ipv6: r.ipv6 ?? 0,
      revision: Number(r.revision),
    })),
  };
}

/** What one agent is sent for one country. */
export interface CountryUpdate {
  country: string;
  revision: number;
  full: boolean;
  ipv4Add: string[];
  ipv4Del: string[];
  ipv6Add: string[];
  ipv6Del: string[];
}

/**
 * For each country the agent holds at `revision` (0 = nothing): nothing when it is current,
 * the deltas since then folded into one when every change row is there, else the whole
 * country. A country with no data is sent empty (full) once, so its sets are flushed.
 */
export async function geoUpdatesFor(db: Db, held: { country: string; revision: number }[]): Promise<CountryUpdate[]> {
  const want = held.filter((h) => geoip.COUNTRY_RE.test(h.country));
  if (want.length === 0) return [];
  const rows = new Map(
    (await db.geoipCountry.findMany({ where: { country: { in: want.map((h) => h.country) } } })).map((r) => [
      r.country,
      r,
    ]),
  );
  const out: CountryUpdate[] = [];
  for (const h of want) {
    const row = rows.get(h.country);
    const cur = row ? Number(row.revision) : 0;
    if (h.revision === cur) continue;
    if (h.revision > 0 && h.revision < cur) {
      const changes = await db.geoipChange.findMany({
        where: { country: h.country, revision: { gt: BigInt(h.revision) } },
        orderBy: { revision: "asc" },
      });
      // A chain of changes from exactly the agent's revision: fold it.
      let base = BigInt(h.revision);
      let ok = changes.length > 0;
      for (const c of changes) {
        if (c.fromRevision !== base) ok = false;
        base = c.revision;
      }
      if (ok && Number(base) === cur) {
        let d4 = { add: [] as string[], del: [] as string[] };
        let d6 = { add: [] as string[], del: [] as string[] };
        for (const c of changes) {
          d4 = geoip.foldDelta(d4, { add: lines(c.ipv4Add), del: lines(c.ipv4Del) });
          d6 = geoip.foldDelta(d6, { add: lines(c.ipv6Add), del: lines(c.ipv6Del) });
        }
        out.push({
          country: h.country,
          revision: cur,
          full: false,
          ipv4Add: d4.add,
          ipv4Del: d4.del,
          ipv6Add: d6.add,
          ipv6Del: d6.del,
        });
        continue;
      }
    }
    out.push({
      country: h.country,
      revision: cur,
      full: true,
      ipv4Add: lines(row?.ipv4 ?? ""),
      ipv4Del: [],
      ipv6Add: lines(row?.ipv6 ?? ""),
      ipv6Del: [],
    });
  }
  return out;
}

/** Hosts to tell about a load: every host whose agent fills country sets. */
export async function geoipHosts(db: Db): Promise<string[]> {
  const hosts = await db.host.findMany({ select: { id: true, capabilities: true } });
  return hosts.filter((h) => hasGeoipCapability(h.capabilities)).map((h) => h.id);
}
