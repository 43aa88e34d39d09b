// Exact fleet-wide top-N without aggregating every address of the range.
//
// The range's plan (plan.ts) splits into sorted lists and an edge:
// - each hour, day or month bucket the plan reads from a rollup is a list: that bucket's
//   addresses in the fleet table (accounting_fleet_<level>, summed over hosts), read in
//   descending order of one counter column through its (table, bucket, column) index;
// - a minute segment (up to an hour at each end of the range) is bounded by the list of
//   the hour that contains it: counters only grow, and that hour's fleet row is rolled up
//   in the same transaction as its minutes, so an address's traffic in those minutes is
//   at most its traffic in the hour. This spares aggregating ~an hour of minute rows;
// - the raw segments (sub-minute edges and the minutes not rolled up yet) are the edge,
//   aggregated per address and sorted by the metric.
// A round reads the first K entries of every list and of the edge. Every address seen
// is a candidate. An address never seen has, in every list, at most that list's K-th
// value (or nothing, when the list had fewer than K entries), so its total is at most
// T = the sum of those K-th values. A candidate's total is at least the sum of what it
// was seen with in the lists that are its traffic (not the hour bounding a minute
// segment: that is only a bound) and at most that plus, per list it was not seen in, the
// list's K-th value (its bound, as for an unseen address). Candidates whose upper bound
// is below the N-th largest lower bound cannot be in the top N (N candidates are surely
// above them) and are dropped; only the others' exact totals over the whole range are
// summed by address (primary-key lookups). Summing every candidate's total was most of
// the time (bench/README.md: ~1,000 candidates, a few dozen kept). If the N-th exact
// total is above T, no unseen address can reach the top N: the answer is exact.
// Otherwise K grows and the round repeats; past a bound, the full GROUP BY answers.
// With "both" directions, src and dst are separate lists (src + dst of an unseen address
// is at most the src K-th value plus the dst K-th value).
// This is Fagin's threshold algorithm with batched sorted access; it is fast when a few
// addresses carry most of the traffic (the usual case), and exact in every case.
// A round is one SQL statement (roundSql): lists, edge, bounds, pruning and the kept
// candidates' totals, so it reads one snapshot without a transaction and the thousands of
// list entries never leave the server (bench/README.md: that was most of a round's time
// under load). The same round as separate statements with the bounds computed here
// (`steps: true`) is the previous release's path, kept as the bench's baseline.
import type { Prisma } from "../db/client.ts";
import { floorAt, nextAt, type BucketLevel, type Segment } from "./plan.ts";
import { Params } from "./sql-params.ts";

export type TopBy = "bytes" | "packets";
export type Direction = "src" | "dst" | "both";

type ListLevel = Exclude<BucketLevel, "minute">;
export const FLEET: Record<ListLevel, string> = {
  hour: "accounting_fleet_hour",
  day: "accounting_fleet_day",
  month: "accounting_fleet_month",
};

/** How the answer was found (tests and the bench check the fast path really ran). */
export interface TopStats {
  rounds: number;
  k: number;
  lists: number;
  candidates: number;
  /** Candidates whose exact totals were summed (the others were bounded out). */
  summed: number;
  /** True when the sorted lists could not prove the answer and the full GROUP BY ran. */
  fallback: boolean;
}

export interface TopOptions {
  /** First K (entries read per list); grows 4x per round. */
  k?: number;
  /** Largest K * (lists + 1) tried before the full GROUP BY answers. */
  maxEntries?: number;
  /** False sums every candidate, as before the bounds (the bench's baseline). */
  prune?: boolean;
  /** True runs each round as separate statements in a transaction (the previous release; the bench's baseline). */
  steps?: boolean;
}

export interface TopSql {
  /** Exact totals over the whole range of the addresses in $candidates (a text[] param). */
  exact: (candidates: string[]) => Promise<{ address: string; v: string }[]>;
  /** Edge rows: address and metric summed over the raw segments, top `k` (null when there is no edge). */
  edge: ((k: number) => Promise<{ address: string; v: string }[]>) | null;
  /** Full GROUP BY over the range (the fallback), top `limit` addresses. */
  full: () => Promise<{ address: string; v: string }[]>;
  /**
   * The same statements as SQL text for one round in one statement, parameters added to
   * `p`: the edge's top `k` (a placeholder) rows (address text, v), and the exact totals
   * (address text, v, the caller's other columns; top `limit` by v, then address) of the addresses in the
   * inet[] SQL expression `only`.
   */
  text: {
    edge: ((p: Params, k: string) => string) | null;
    exact: (p: Params, only: string) => string;
  };
  /** Runs one statement (without a transaction: one statement reads one snapshot). */
  run: (sql: string, params: unknown[]) => Promise<Record<string, unknown>[]>;
}

/**
 * The list buckets of a plan: every hour/day/month bucket it reads from a rollup, and the
 * hours containing its minute segments (once each: minutes of one hour are disjoint parts
 * of it, so together they are bounded by it once).
 */
export function listBuckets(segments: Segment[]): { level: ListLevel; bucket: Date; boundOnly: boolean }[] {
  const out = new Map<string, { level: ListLevel; bucket: Date; boundOnly: boolean }>();
  for (const s of segments) {
    if (s.level === "raw") continue;
    const level = s.level === "minute" ? "hour" : s.level;
    // An hour holding minute segments bounds them; its values are not traffic of the range.
    for (let t = floorAt(s.from.getTime(), level); t < s.to.getTime(); t = nextAt(t, level))
      out.set(`${level}|${t}`, { level, bucket: new Date(t), boundOnly: s.level === "minute" });
  }
  return [...out.values()];
}

/** Reads the first k entries of every list, in one statement. */
async function readLists(
  tx: Prisma.TransactionClient,
  table: string,
  unattributed: string,
  lists: { level: ListLevel; bucket: Date; boundOnly: boolean }[],
  cols: string[],
  k: number,
) {
  const params: unknown[] = [table, unattributed, k];
  const parts: string[] = [];
  for (const level of ["hour", "day", "month"] as const) {
    const buckets = lists.filter((l) => l.level === level).map((l) => l.bucket);
    if (buckets.length === 0) continue;
    params.push(buckets);
    const bp = `$${params.length}`;
    for (const c of cols) {
      parts.push(
        `SELECT '${level}' AS lvl, '${c}' AS col, l.b AS b, x.address::text AS address, x.v::text AS v
         FROM unnest(${bp}::timestamptz[]) AS l(b) CROSS JOIN LATERAL (
           SELECT address, ${c} AS v FROM ${FLEET[level]}
           WHERE table_name = $1 AND bucket = l.b AND address <> $2::inet ORDER BY ${c} DESC LIMIT $3) x`,
      );
    }
  }
  if (parts.length === 0) return [];
  return tx.$queryRawUnsafe<{ lvl: string; col: string; b: Date; address: string; v: string }[]>(
    parts.join("\nUNION ALL\n"),
    ...params,
  );
}

/**
 * One round as one statement (see the header; the same arithmetic as fleetTopSteps).
 * Its rows are the kept candidates' exact totals, by v then address (one row with a null
 * address when none was kept), each carrying the round's T (`bound`), how many lists were
 * full (`nfull`: none means every list was read to its end), and the stats' counts.
 */
export function roundSql(a: {
  table: string;
  unattributed: string;
  lists: { level: ListLevel; bucket: Date; boundOnly: boolean }[];
  cols: string[];
  k: number;
  limit: number;
  prune: boolean;
  sql: TopSql["text"];
}): { sql: string; params: unknown[] } {
  const p = new Params();
  const table = p.add(a.table);
  const un = p.add(a.unattributed);
  const k = p.add(a.k);
  const parts: string[] = [];
  for (const level of ["hour", "day", "month"] as const) {
    const ls = a.lists.filter((l) => l.level === level);
    if (ls.length === 0) continue;
    const b = p.add(ls.map((l) => l.bucket));
    // An hour that only bounds minute segments is not the range's traffic.
    const traffic = p.add(ls.map((l) => !l.boundOnly));
    for (const c of a.cols) {
      parts.push(
        `SELECT '${level}|${c}|' || l.i AS list, x.address::text AS address, x.v::numeric AS v, l.traffic
         FROM unnest(${b}::timestamptz[], ${traffic}::boolean[]) WITH ORDINALITY AS l(b, traffic, i) CROSS JOIN LATERAL (
           SELECT address, ${c} AS v FROM ${FLEET[level]}
           WHERE table_name = ${table} AND bucket = l.b AND address <> ${un}::inet ORDER BY ${c} DESC LIMIT ${k}) x`,
      );
    }
  }
  if (a.sql.edge) parts.push(`SELECT 'edge', ed.address, ed.v::numeric, true FROM (${a.sql.edge(p, k)}) ed`);
  if (parts.length === 0)
    parts.push(
      `SELECT NULL::text AS list, NULL::text AS address, NULL::numeric AS v, NULL::boolean AS traffic WHERE false`,
    );
  const limit = a.limit;
  const nth = p.add(limit - 1);
  const prune = p.add(a.prune);
  const exact = a.sql.exact(p, `(SELECT array_agg(address::inet) FROM keep)::inet[]`);
  const sql = `WITH e AS (${parts.join("\nUNION ALL\n")}),
kth AS (SELECT list, min(v) AS mn FROM e GROUP BY list HAVING count(*) >= ${k}),
t AS (SELECT coalesce(sum(mn), 0) AS bound, count(*) AS nfull FROM kth),
c AS (
  SELECT e.address, sum(CASE WHEN e.traffic THEN e.v ELSE 0 END) AS lo,
         (SELECT bound FROM t) + sum(e.v - coalesce(kth.mn, 0)) AS hi
  FROM e LEFT JOIN kth USING (list) GROUP BY e.address),
keep AS (
  SELECT address FROM c
  WHERE NOT ${prune}::boolean OR hi >= coalesce((SELECT lo FROM c ORDER BY lo DESC OFFSET ${nth}::int LIMIT 1), 0)),
x AS (${exact})
SELECT t.bound::text AS bound, t.nfull::int AS nfull, (SELECT count(*) FROM c)::int AS candidates,
       (SELECT count(*) FROM keep)::int AS summed, x.*
FROM t LEFT JOIN x ON true ORDER BY x.v::numeric DESC, x.address::inet`;
  return { sql, params: p.values };
}

/** What fleetTop and fleetTopSteps are asked. */
export interface TopArgs {
  table: string;
  unattributed: string;
  segments: Segment[];
  by: TopBy;
  direction: Direction;
  limit: number;
  sql: TopSql;
}

/** What both paths share: the lists and columns the rounds read, the stats, and each round's K. */
function roundPlan(args: TopArgs, o: TopOptions) {
  const { segments, by, direction, limit, sql } = args;
  const lists = listBuckets(segments);
  const cols = direction === "both" ? [`src_${by}`, `dst_${by}`] : [`${direction}_${by}`];
  const nLists = lists.length * cols.length + (sql.edge ? 1 : 0);
  const maxEntries = o.maxEntries ?? 200_000;
  const first = Math.max(o.k ?? 4 * limit, 1);
  const stats: TopStats = { rounds: 0, k: first, lists: nLists, candidates: 0, summed: 0, fallback: false };
  // Each round's K (4x the last), counted in stats, while the entries read stay in budget.
  function* rounds() {
    for (let k = first; k * Math.max(nLists, 1) <= maxEntries; k *= 4) {
      stats.rounds++;
      stats.k = k;
      yield k;
    }
  }
  return { lists, cols, stats, rounds: rounds() };
}

/**
 * Exact top `limit` addresses by the metric over the plan's range, fleet-wide: rounds of
 * one statement each (roundSql), K growing 4x until one proves its answer, then the full
 * GROUP BY. `sql` supplies what depends on the metric and the plan (queries.ts).
 */
export async function fleetTop(
  args: TopArgs,
  o: TopOptions = {},
): Promise<{ rows: { address: string; v: string }[]; stats: TopStats }> {
  const { table, unattributed, limit, sql } = args;
  const { lists, cols, stats, rounds } = roundPlan(args, o);
  for (const k of rounds) {
    const round = roundSql({ table, unattributed, lists, cols, k, limit, prune: o.prune !== false, sql: sql.text });
    const out = await sql.run(round.sql, round.params);
    const head = out[0] as { bound: string; nfull: number; candidates: number; summed: number };
    stats.candidates = head.candidates;
    stats.summed = head.summed;
    const rows = out.filter((r) => r.address !== null) as { address: string; v: string }[];
    // Exact when every list was read to its end (every address with traffic is a
    // candidate), or when the N-th candidate is strictly above what an unseen one can have.
    if (head.nfull === 0) return { rows, stats };
    if (rows.length >= limit && BigInt(rows[limit - 1]!.v) > BigInt(head.bound)) return { rows, stats };
  }
  stats.fallback = true;
  return { rows: await sql.full(), stats };
}

/**
 * The previous release's rounds: separate statements in one REPEATABLE READ transaction
 * (`tx`), the bounds computed here. Kept as the bench's baseline (`steps: true`).
 */
export async function fleetTopSteps(
  tx: Prisma.TransactionClient,
  args: TopArgs,
  o: TopOptions = {},
): Promise<{ rows: { address: string; v: string }[]; stats: TopStats }> {
  const { table, unattributed, limit, sql } = args;
  const { lists, cols, stats, rounds } = roundPlan(args, o);
  const boundOnly = new Set(lists.filter((l) => l.boundOnly).map((l) => `${l.level}|${l.bucket.getTime()}`));
  for (const k of rounds) {
    const listRows = await readLists(tx, table, unattributed, lists, cols, k);
    const edgeRows = sql.edge ? await sql.edge(k) : [];
    // Every entry read, by list ("edge" for the edge): address, value, whether it is traffic.
    const entries = listRows.map((r) => ({
      list: `${r.lvl}|${r.col}|${r.b.getTime()}`,
      address: r.address,
      v: BigInt(r.v),
      traffic: !boundOnly.has(`${r.lvl}|${r.b.getTime()}`),
    }));
    for (const r of edgeRows) entries.push({ list: "edge", address: r.address, v: BigInt(r.v), traffic: true });
    // Per list: entries read and the smallest value read (the K-th when it is full).
    const seen = new Map<string, { n: number; min: bigint }>();
    for (const e of entries) {
      const cur = seen.get(e.list);
      if (!cur) seen.set(e.list, { n: 1, min: e.v });
      else {
        cur.n++;
        if (e.v < cur.min) cur.min = e.v;
      }
    }
    // T: the K-th values of the full lists (a list read to its end bounds nothing).
    const kth = new Map<string, bigint>();
    for (const [list, { n, min }] of seen) if (n >= k) kth.set(list, min);
    const bound = [...kth.values()].reduce((a, b) => a + b, 0n);
    const exhausted = kth.size === 0;
    // Per candidate: lower bound, and upper bound = T - K-th values of the full lists it
    // was seen in + what it was seen with there (and in lists read to their end).
    const cand = new Map<string, { lo: bigint; hi: bigint }>();
    for (const e of entries) {
      const c = cand.get(e.address) ?? { lo: 0n, hi: bound };
      if (e.traffic) c.lo += e.v;
      c.hi += e.v - (kth.get(e.list) ?? 0n);
      cand.set(e.address, c);
    }
    stats.candidates = cand.size;
    if (cand.size === 0 && exhausted) return { rows: [], stats };
    const los = [...cand.values()].map((c) => c.lo).sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
    const nthLo = los.length >= limit ? los[limit - 1]! : 0n;
    const keep = [...cand].filter(([, c]) => o.prune === false || c.hi >= nthLo).map(([a]) => a);
    stats.summed = keep.length;
    const rows = keep.length > 0 ? await sql.exact(keep) : [];
    // Exact when every list was read to its end (every address with traffic is a
    // candidate), or when the N-th candidate is strictly above what an unseen one can have.
    if (exhausted) return { rows, stats };
    if (rows.length >= limit && BigInt(rows[limit - 1]!.v) > bound) return { rows, stats };
  }
  stats.fallback = true;
  return { rows: await sql.full(), stats };
}
