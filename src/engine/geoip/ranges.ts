// Country ranges: parsing the operator's CSV (`start,end,country`, the layout xt_geoip's
// build script reads; IPv4 and IPv6 lines in one file), merging a country's ranges into
// disjoint intervals, and the difference of two interval lists. Pure.
//
// Intervals are kept as text `a-b` (or `a` for one address) in canonical form (RFC 5952
// for IPv6), sorted, disjoint and not adjacent: two lists of the same data are equal
// strings, so a delta is a set difference of strings and deletes exactly what the kernel holds.
import { isIPv4, isIPv6 } from "../net/ip-syntax.ts";
import { compressIpv6, ipv6ToBigInt, type Family } from "../net/address.ts";
import { COUNTRY_RE } from "./names.ts";

export interface GeoParseError {
  code:
    | "geoip_bad_line"
    | "geoip_bad_address"
    | "geoip_family_mismatch"
    | "geoip_reversed"
    | "geoip_bad_country"
    | "geoip_empty";
  /** 1-based line of the file. */
  line: number;
  message: string;
}

/** One country's intervals, per family. */
export interface CountryIntervals {
  ipv4: string[];
  ipv6: string[];
}

export interface GeoParsed {
  countries: Map<string, CountryIntervals>;
  /** Lines that held a range. */
  ranges: number;
}

export function addressToBigInt(a: string, family: Family): bigint {
  if (family === "ipv4") {
    const p = a.split(".");
    return ((BigInt(+p[0]!) * 256n + BigInt(+p[1]!)) * 256n + BigInt(+p[2]!)) * 256n + BigInt(+p[3]!);
  }
  return ipv6ToBigInt(a);
}

export function bigIntToAddress(n: bigint, family: Family): string {
  if (family === "ipv4") return `${(n >> 24n) & 255n}.${(n >> 16n) & 255n}.${(n >> 8n) & 255n}.${n & 255n}`;
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  return compressIpv6(groups);
}

function familyOf(a: string): Family | undefined {
  return isIPv4(a) ? "ipv4" : isIPv6(a) && !a.includes("%") ? "ipv6" : undefined;
}

const unquote = (s: string) =>
  s
    .trim()
    .replace(/^"(.*)"$/, "$1")
    .trim();

interface Raw {
  start: bigint;
  end: bigint;
  country: string;
  line: number;
}

export function intervalText(start: bigint, end: bigint, family: Family): string {
  const a = bigIntToAddress(start, family);
  return start === end ? a : `${a}-${bigIntToAddress(end, family)}`;
}

/** Sorted, merged (overlapping and adjacent joined) intervals of one country and family. */
function mergeSorted(rs: Raw[], family: Family): string[] {
  const out: string[] = [];
  let cur: [bigint, bigint] | undefined;
  for (const r of rs) {
    if (cur && r.start <= cur[1] + 1n) {
      if (r.end > cur[1]) cur[1] = r.end;
      continue;
    }
    if (cur) out.push(intervalText(cur[0], cur[1], family));
    cur = [r.start, r.end];
  }
  if (cur) out.push(intervalText(cur[0], cur[1], family));
  return out;
}

/**
 * Disjoint pieces, sorted by start: where ranges of two countries overlap, the later line's
 * country gets the shared addresses (painted in file order). The npm package lists a
 * geofeed's more specific entry after the whois block around it (2.58.197.15 BE after
 * 2.58.196.0-2.58.197.255 DE) and a few crossing blocks in start order; xt_geoip's build
 * script would put such an address in both countries. A sweep over the ranges sorted by
 * start with a max-heap of the open ones by line: O(n log n).
 */
function laterLineWins(rs: Raw[]): Raw[] {
  rs.sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : x.line - y.line));
  const heap: Raw[] = [];
  const push = (r: Raw) => {
    heap.push(r);
    for (let k = heap.length - 1; k > 0; ) {
      const up = (k - 1) >> 1;
      if (heap[up]!.line >= heap[k]!.line) break;
      [heap[up], heap[k]] = [heap[k]!, heap[up]!];
      k = up;
    }
  };
  const pop = () => {
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    for (let k = 0; ; ) {
      const l = 2 * k + 1;
      const r = l + 1;
      let m = k;
      if (l < heap.length && heap[l]!.line > heap[m]!.line) m = l;
      if (r < heap.length && heap[r]!.line > heap[m]!.line) m = r;
      if (m === k) break;
      [heap[m], heap[k]] = [heap[k]!, heap[m]!];
      k = m;
    }
  };
  const out: Raw[] = [];
  let i = 0;
  let p = 0n;
  while (i < rs.length || heap.length) {
    while (heap.length && heap[0]!.end < p) pop();
    if (!heap.length) {
      if (i >= rs.length) break;
      p = rs[i]!.start;
    }
    while (i < rs.length && rs[i]!.start <= p) push(rs[i++]!);
    while (heap.length && heap[0]!.end < p) pop();
    const w = heap[0]!;
    const next = i < rs.length ? rs[i]!.start : undefined;
    const segEnd = next !== undefined && next - 1n < w.end ? next - 1n : w.end;
    const prev = out[out.length - 1];
    // Consecutive pieces of one country join here already (most of a file).
    if (prev && prev.country === w.country && prev.end + 1n === p) prev.end = segEnd;
    else out.push({ start: p, end: segEnd, country: w.country, line: w.line });
    p = segEnd + 1n;
  }
  return out;
}

/**
 * Parse the whole file or nothing: the first bad line is the error (with its number), so a
 * caller never stores half a file. Blank lines and `#` comments are skipped, fields may be
 * quoted (MaxMind's legacy CSV), a country code is taken in either case. An address ends up
 * in one country (the compiler relies on it to test a list of countries as one rule per
 * country): where two countries' ranges overlap, the later line wins (laterLineWins).
 * Ranges of one country may overlap or touch: they are merged.
 */
export function parseGeoCsv(text: string): { ok: true; value: GeoParsed } | { ok: false; error: GeoParseError } {
  const byFam: Record<Family, Raw[]> = { ipv4: [], ipv6: [] };
  let lineNo = 0;
  let ranges = 0;
  let pos = 0;
  while (pos <= text.length) {
    const nl = text.indexOf("\n", pos);
    const raw = text.slice(pos, nl === -1 ? text.length : nl);
    pos = nl === -1 ? text.length + 1 : nl + 1;
    lineNo++;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(",").map(unquote);
    const fail = (code: GeoParseError["code"], message: string) =>
      ({
        ok: false,
        error: { code, line: lineNo, message: `line ${lineNo}: ${message}: ${line.slice(0, 120)}` },
      }) as const;
    if (fields.length !== 3)
      return fail("geoip_bad_line", `expected 3 fields start,end,country, found ${fields.length}`);
    const [s, e, c] = fields as [string, string, string];
    const fs = familyOf(s);
    const fe = familyOf(e);
    if (!fs || !fe) {
      // A header line (`start,end,country` or similar) is allowed before the first range.
      if (ranges === 0 && /^[a-z_ ]+$/i.test(s)) continue;
      return fail("geoip_bad_address", `"${!fs ? s : e}" is not an IPv4 or IPv6 address`);
    }
    if (fs !== fe) return fail("geoip_family_mismatch", "start and end are of different families");
    const cc = c.toUpperCase();
    if (!COUNTRY_RE.test(cc)) return fail("geoip_bad_country", `"${c}" is not a two-letter country code`);
    const a = addressToBigInt(s, fs);
    const b = addressToBigInt(e, fs);
    if (a > b) return fail("geoip_reversed", "start is after end");
    byFam[fs].push({ start: a, end: b, country: cc, line: lineNo });
    ranges++;
  }
  if (ranges === 0)
    return { ok: false, error: { code: "geoip_empty", line: lineNo, message: "the file holds no range" } };
  const countries = new Map<string, CountryIntervals>();
  for (const fam of ["ipv4", "ipv6"] as const) {
    const per = new Map<string, Raw[]>();
    for (const r of laterLineWins(byFam[fam])) {
      let l = per.get(r.country);
      if (!l) per.set(r.country, (l = []));
      l.push(r);
    }
    for (const [cc, l] of per) {
      let ci = countries.get(cc);
      if (!ci) countries.set(cc, (ci = { ipv4: [], ipv6: [] }));
      ci[fam] = mergeSorted(l, fam);
    }
  }
  return { ok: true, value: { countries, ranges } };
}

/** Elements to delete and to add to turn `from` into `to` (both canonical lists). */
export function intervalDelta(from: readonly string[], to: readonly string[]): { add: string[]; del: string[] } {
  const a = new Set(from);
  const b = new Set(to);
  return { add: to.filter((x) => !a.has(x)), del: from.filter((x) => !b.has(x)) };
}

/**
 * Fold a later delta into an earlier one (both as add/del lists against a base): the result
 * turns the base into the state after both.
 */
export function foldDelta(first: { add: string[]; del: string[] }, next: { add: string[]; del: string[] }) {
  const add = new Set(first.add);
  const del = new Set(first.del);
  for (const d of next.del) if (!add.delete(d)) del.add(d);
  for (const x of next.add) if (!del.delete(x)) add.add(x);
  return { add: [...add], del: [...del] };
}
