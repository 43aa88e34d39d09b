// Reading the kernel back with `nft -j`: the ruleset, one table, sets with their
// per-element counters, named counters and quotas, ct helper names. JSON is parsed with zod into
// plain typed values; element keys are rendered back into nft's text syntax
// ("10.0.0.0/8", "1.2.3.4 . 80") so they compare equal to what the compiler wrote.
//
// Numbers: nft prints 64-bit counters; JSON.parse is exact up to 2^53 bytes (8 PiB),
// far beyond what a counter reaches between two telemetry reads.

import type { z } from "zod";
import { family as checkFamily, identifier, isPalisadeTable } from "../nft/names.ts";
import type { Family } from "../nft/names.ts";
import { NftError } from "./errors.ts";
import { nftablesEntries, type EntryPiece } from "./json-chunks.ts";
import { runNft, type DriverOptions } from "./nft.ts";
import { JChain, JCounter, JCtHelper, JMetainfo, JQuota, JRule, JSet, JTable, type JValue } from "./schemas.ts";

export interface TableState {
  family: Family;
  name: string;
  comment?: string;
}

export interface ChainState {
  family: Family;
  table: string;
  name: string;
  handle?: number;
  type?: string;
  hook?: string;
  priority?: number;
  policy?: string;
  comment?: string;
}

export interface RuleState {
  family: Family;
  table: string;
  chain: string;
  handle?: number;
  comment?: string;
  /** nft's JSON expressions, unparsed. */
  expr: unknown[];
}

export interface SetElementState {
  /** nft text syntax: "1.2.3.4", "10.0.0.0/8", "1.1.1.1-1.1.1.9", "1.2.3.4 . 80". */
  key: string;
  /** Maps: "drop", "jump chain", "0x10"... (numbers as decimal). */
  value?: string;
  /** Present when the set has per-element counters. */
  packets?: number;
  bytes?: number;
  /** Seconds. */
  timeout?: number;
  expires?: number;
  comment?: string;
}

export interface SetState {
  kind: "set" | "map";
  family: Family;
  table: string;
  name: string;
  type: string[];
  map?: string;
  flags: string[];
  size?: number;
  timeout?: number;
  /** The set counts per element (`counter` in its definition). */
  counter: boolean;
  comment?: string;
  elements: SetElementState[];
}

export interface CounterState {
  family: Family;
  table: string;
  name: string;
  packets: number;
  bytes: number;
  comment?: string;
}

export interface QuotaState {
  family: Family;
  table: string;
  name: string;
  /** "over" (nft `inv`): matches once the budget is spent; "until": while it remains. */
  mode: "over" | "until";
  /** The budget, bytes. */
  bytes: number;
  /** Bytes consumed, as the kernel reports it: capped at `bytes` (measured on 6.18). */
  used: number;
  comment?: string;
}

/** A conntrack helper object (`ct helper NAME { type "ftp" protocol tcp ; ... }`): no values, names only matter. */
export interface CtHelperState {
  family: Family;
  table: string;
  name: string;
  /** The kernel's helper name ("ftp"), when nft printed it. */
  type?: string;
  /** "tcp", or its number ("6") where the host has no /etc/protocols. */
  protocol?: string;
  /** The layer 3 it serves ("inet", "ip", "ip6"); nft's default is the table's family. */
  l3proto?: string;
}

// nft prints a ct helper's protocol as a number where /etc/protocols is missing (netbase is
// only recommended); a helper's protocol is tcp or udp.
const HELPER_PROTOCOL_NAMES: Record<string, string> = { "6": "tcp", "17": "udp" };

/** A ct helper's protocol by name, however nft printed it ("6" -> "tcp"). */
export const helperProtocolName = (protocol: string): string => HELPER_PROTOCOL_NAMES[protocol] ?? protocol;

export interface RulesetState {
  nftVersion?: string;
  tables: TableState[];
  chains: ChainState[];
  rules: RuleState[];
  sets: SetState[];
  counters: CounterState[];
  quotas: QuotaState[];
  ctHelpers: CtHelperState[];
  /** Read with a `keep` filter (parseRuleset): the rules of the other tables, skipped unparsed. */
  otherRules?: number;
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new NftError(
      "unexpected_output",
      `nft -j printed a ${what} Palisade cannot read: ${r.error.issues[0]?.message ?? "invalid"}`,
      { cause: r.error },
    );
  }
  return r.data;
}

/**
 * A rule entry JRule accepts, checked without zod: a listing holds one per rule (10k rules:
 * zod's parse was ~40-60 ms of a cold read, bench/agent-apply.ts's drift baseline). Anything
 * else (undefined) goes through JRule, which accepts or refuses it with its message.
 */
function plainRule(v: unknown): JRule | undefined {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return undefined;
  const r = v as Record<string, unknown>;
  return typeof r.family === "string" &&
    typeof r.table === "string" &&
    typeof r.chain === "string" &&
    Array.isArray(r.expr) &&
    // z.number() refuses ±Infinity (JSON.parse gives it for 1e400) and NaN, nothing else.
    (r.handle === undefined || Number.isFinite(r.handle)) &&
    (r.comment === undefined || typeof r.comment === "string")
    ? (r as JRule)
    : undefined;
}

/** Render a JSON element value in nft's own text syntax. */
export function valueText(v: JValue | unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  if (Array.isArray(v)) return v.map(valueText).join(" . ");
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if ("prefix" in o) {
      const p = o.prefix as { addr: unknown; len: unknown };
      return `${valueText(p.addr)}/${String(p.len)}`;
    }
    if ("range" in o && Array.isArray(o.range)) return `${valueText(o.range[0])}-${valueText(o.range[1])}`;
    if ("concat" in o && Array.isArray(o.concat)) return o.concat.map(valueText).join(" . ");
    for (const verdict of ["accept", "drop", "continue", "return"]) if (verdict in o) return verdict;
    for (const jump of ["jump", "goto"]) {
      if (jump in o) return `${jump} ${String((o[jump] as { target?: unknown })?.target)}`;
    }
    if ("elem" in o) return valueText((o.elem as { val: unknown }).val);
  }
  return JSON.stringify(v);
}

const badElement = (why: string) =>
  new NftError("unexpected_output", `nft -j printed a set element Palisade cannot read: ${why}`);
const isNum = (v: unknown): v is number => typeof v === "number";

/**
 * One element, checked by hand rather than with zod (schemas.ts's JElemDetail is the
 * shape): a schema parse copies every object, and a 65k-element set is 200k objects.
 */
function elementOf(raw: unknown, isMap: boolean): SetElementState {
  let keyPart: unknown = raw;
  let value: string | undefined;
  if (isMap && Array.isArray(raw) && raw.length === 2) {
    keyPart = raw[0];
    value = valueText(raw[1]);
  }
  let out: SetElementState;
  if (keyPart && typeof keyPart === "object" && !Array.isArray(keyPart) && "elem" in keyPart) {
    const d = (keyPart as { elem: unknown }).elem as Record<string, unknown> | null;
    if (d === null || typeof d !== "object" || !("val" in d)) throw badElement("an elem without val");
    const key = valueText(d.val);
    const c = d.counter as { packets?: unknown; bytes?: unknown } | undefined;
    if (c !== undefined) {
      if (c === null || typeof c !== "object" || !isNum(c.packets) || !isNum(c.bytes))
        throw badElement(`counter of ${key} is not {packets, bytes}`);
      // All fields in one literal: no out-of-object property store per element (65k of them).
      out = { key, packets: c.packets, bytes: c.bytes };
    } else out = { key };
    for (const f of ["timeout", "expires"] as const) {
      if (d[f] === undefined) continue;
      if (!isNum(d[f])) throw badElement(`${f} of ${out.key} is not a number`);
      out[f] = d[f];
    }
    if (d.comment !== undefined) {
      if (typeof d.comment !== "string") throw badElement(`comment of ${out.key} is not a string`);
      out.comment = d.comment;
    }
  } else {
    out = value === undefined ? { key: valueText(keyPart) } : { key: valueText(keyPart), value };
    return out;
  }
  if (value !== undefined) out.value = value;
  return out;
}

function setOf(raw: unknown, kind: "set" | "map", more: Iterable<unknown[]> = []): SetState {
  // The elements are converted one by one below; the schema sees the rest only.
  const { elem, ...head } = (raw ?? {}) as { elem?: unknown };
  const s = parseWith(JSet, head, kind);
  if (elem !== undefined && !Array.isArray(elem))
    throw new NftError("unexpected_output", `nft -j printed ${kind} ${s.name} whose elem is not a list`);
  const isMap = kind === "map";
  const elements: SetElementState[] = [];
  for (const list of [elem ?? [], ...more]) {
    for (let i = 0; i < list.length; i++) {
      elements.push(elementOf(list[i], isMap));
      list[i] = undefined; // the parsed JSON of this element is garbage from here on
    }
  }
  const out: SetState = {
    kind,
    family: s.family as Family,
    table: s.table,
    name: s.name,
    type: Array.isArray(s.type) ? s.type : [s.type],
    flags: s.flags ?? [],
    counter: (s.stmt ?? []).some((x) => x !== null && typeof x === "object" && "counter" in x),
    elements,
  };
  if (s.map !== undefined) out.map = Array.isArray(s.map) ? s.map.join(" . ") : s.map;
  if (s.size !== undefined) out.size = s.size;
  if (s.timeout !== undefined) out.timeout = s.timeout;
  if (s.comment !== undefined) out.comment = s.comment;
  return out;
}

/**
 * Parse a whole `nft -j list ...` document into typed state. `keep`: the tables whose
 * entries are read; the others' are skipped unparsed.
 */
export function parseRuleset(stdout: string, keep?: (family: string, table: string) => boolean): RulesetState {
  try {
    const entries = nftablesEntries(stdout);
    if (!keep) return stateOf(entries);
    const skipped = { rules: 0 };
    const st = stateOf(ofTables(entries, keep, skipped));
    st.otherRules = skipped.rules;
    return st;
  } catch (e) {
    if (e instanceof SyntaxError)
      throw new NftError("unexpected_output", `nft -j printed something that is not JSON: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * The entries of the tables `keep` accepts, the others dropped before they are parsed: a
 * foreign table may hold what Palisade's schemas do not read (it is never Palisade's to check).
 */
function* ofTables(
  entries: Iterable<EntryPiece>,
  keep: (family: string, table: string) => boolean,
  skipped: { rules: number },
) {
  for (const piece of entries) {
    const entry = piece.head;
    if (entry && typeof entry === "object" && !Array.isArray(entry) && !("metainfo" in entry)) {
      const inner = Object.values(entry)[0] as Record<string, unknown> | null | undefined;
      const table = inner && typeof inner === "object" ? ("table" in entry ? inner.name : inner.table) : undefined;
      // Only an entry that names another table is skipped; the rest is stateOf's to read or refuse.
      if (typeof inner?.family === "string" && typeof table === "string" && !keep(inner.family, table)) {
        if ("rule" in entry) skipped.rules++;
        continue;
      }
    }
    yield piece;
  }
}

/**
 * The typed state of a document, read entry by entry (json-chunks.ts): a large set's
 * elements are parsed a batch at a time and each batch is garbage once converted, so the
 * parsed JSON of the whole document is never held at once.
 */
function stateOf(entries: Iterable<EntryPiece>): RulesetState {
  const st: RulesetState = { tables: [], chains: [], rules: [], sets: [], counters: [], quotas: [], ctHelpers: [] };
  for (const piece of entries) {
    const entry = piece.head as Record<string, unknown>;
    if (entry === null || typeof entry !== "object" || Array.isArray(entry))
      throw new NftError(
        "unexpected_output",
        "nft -j printed a document Palisade cannot read: an entry is not an object",
      );
    if ("metainfo" in entry) st.nftVersion = parseWith(JMetainfo, entry.metainfo, "metainfo").version;
    else if ("table" in entry) {
      const t = parseWith(JTable, entry.table, "table");
      st.tables.push({
        family: t.family as Family,
        name: t.name,
        ...(t.comment !== undefined ? { comment: t.comment } : {}),
      });
    } else if ("chain" in entry) {
      const c = parseWith(JChain, entry.chain, "chain");
      st.chains.push({
        family: c.family as Family,
        table: c.table,
        name: c.name,
        ...(c.handle !== undefined ? { handle: c.handle } : {}),
        ...(c.type !== undefined ? { type: c.type } : {}),
        ...(c.hook !== undefined ? { hook: c.hook } : {}),
        ...(c.prio !== undefined ? { priority: c.prio } : {}),
        ...(c.policy !== undefined ? { policy: c.policy } : {}),
        ...(c.comment !== undefined ? { comment: c.comment } : {}),
      });
    } else if ("rule" in entry) {
      const r = plainRule(entry.rule) ?? parseWith(JRule, entry.rule, "rule");
      st.rules.push({
        family: r.family as Family,
        table: r.table,
        chain: r.chain,
        expr: r.expr,
        ...(r.handle !== undefined ? { handle: r.handle } : {}),
        ...(r.comment !== undefined ? { comment: r.comment } : {}),
      });
    } else if ("set" in entry) st.sets.push(setOf(entry.set, "set", piece.elements));
    else if ("map" in entry) st.sets.push(setOf(entry.map, "map", piece.elements));
    else if ("counter" in entry) st.counters.push(counterOf(entry.counter));
    else if ("quota" in entry) st.quotas.push(quotaOf(entry.quota));
    else if ("ct helper" in entry) {
      const h = parseWith(JCtHelper, entry["ct helper"], "ct helper");
      st.ctHelpers.push({
        family: h.family as Family,
        table: h.table,
        name: h.name,
        ...(h.type !== undefined ? { type: h.type } : {}),
        ...(h.protocol !== undefined ? { protocol: String(h.protocol) } : {}),
        ...(h.l3proto !== undefined ? { l3proto: String(h.l3proto) } : {}),
      });
    }
  }
  return st;
}

export function counterOf(raw: unknown): CounterState {
  const c = parseWith(JCounter, raw, "counter");
  return {
    family: c.family as Family,
    table: c.table,
    name: c.name,
    packets: c.packets,
    bytes: c.bytes,
    ...(c.comment !== undefined ? { comment: c.comment } : {}),
  };
}

export function quotaOf(raw: unknown): QuotaState {
  const q = parseWith(JQuota, raw, "quota");
  return {
    family: q.family as Family,
    table: q.table,
    name: q.name,
    mode: q.inv ? "over" : "until",
    bytes: q.bytes,
    used: q.used,
    ...(q.comment !== undefined ? { comment: q.comment } : {}),
  };
}

/** Validate names before they become nft arguments (a name like "-f" would be read as an option). */
export function objectArgs(fam: string, table: string, name?: string): string[] {
  const out = [checkFamily(fam), identifierArg(table, "table name")];
  if (name !== undefined) out.push(identifierArg(name, "object name"));
  return out;
}

function identifierArg(name: string, what: string): string {
  try {
    return identifier(name, what);
  } catch (e) {
    throw new NftError("invalid_argument", (e as Error).message, { cause: e });
  }
}

async function listJson(args: string[], opts: DriverOptions & ReadOptions): Promise<RulesetState> {
  return parseRuleset((await runNft(["-j", ...printFlags(opts), "list", ...args], opts)).stdout);
}

/** The whole ruleset (all tables, Palisade's and foreign), read-only. */
export function listRuleset(opts: DriverOptions = {}): Promise<RulesetState> {
  return listJson(["ruleset"], opts);
}

export async function listTables(opts: DriverOptions = {}): Promise<TableState[]> {
  return (await listJson(["tables"], opts)).tables;
}

/** Palisade's own tables (name starts with "palisade"), sorted for determinism. */
export async function listPalisadeTables(opts: DriverOptions = {}): Promise<TableState[]> {
  const all = await listTables(opts);
  return all.filter((t) => isPalisadeTable(t.name)).sort(byFamilyThenName);
}

/** Tables in the order every reader gives them: by family, then name. */
export const byFamilyThenName = (a: TableState, b: TableState) =>
  a.family + a.name < b.family + b.name ? -1 : a.family + a.name > b.family + b.name ? 1 : 0;

/** How a read asks nft to print (the drift detector's readings, src/agent/drift.ts). */
export interface ReadOptions {
  /** `nft -p`: protocols as numbers, whether or not the host has /etc/protocols. */
  numericProtocols?: boolean;
}

const printFlags = (o: ReadOptions) => (o.numericProtocols ? ["-p"] : []);

export function readTable(fam: Family, table: string, opts: DriverOptions & ReadOptions = {}): Promise<RulesetState> {
  return listJson(["table", ...objectArgs(fam, table)], opts);
}

/**
 * Palisade's tables with every set and map but none of their elements, in one `nft -j -t
 * list ruleset`: its cost does not grow with what the sets hold. nft 1.0.6 fetches every
 * element of the ruleset for `list tables` and `list counters` (65k elements: ~0.45 CPU-s
 * and 59 MB each), and of the table for `list table` even with -t; a terse `list ruleset`
 * is the one listing that skips the fetch. It prints every table's rules, so it costs what
 * the host's foreign rules cost to print too; their entries are skipped unparsed.
 */
export async function readWithoutElements(opts: DriverOptions & ReadOptions = {}): Promise<RulesetState> {
  const out = await runNft(["-j", "-t", ...printFlags(opts), "list", "ruleset"], opts);
  const st = parseRuleset(out.stdout, (_family, table) => isPalisadeTable(table));
  st.tables.sort(byFamilyThenName);
  return st;
}

/** The names of a family's sets, without their elements (`nft -t`: cheap whatever they hold). */
export async function listSetNames(fam: Family, opts: DriverOptions = {}): Promise<{ table: string; name: string }[]> {
  const st = parseRuleset((await runNft(["-j", "-t", "list", "sets", checkFamily(fam)], opts)).stdout);
  return st.sets.map((s) => ({ table: s.table, name: s.name }));
}

/** A named set (or map, with kind "map") with its elements and per-element counters. */
export async function readSet(
  fam: Family,
  table: string,
  name: string,
  opts: DriverOptions & ReadOptions & { kind?: "set" | "map" } = {},
): Promise<SetState> {
  const kind = opts.kind ?? "set";
  const st = await listJson([kind, ...objectArgs(fam, table, name)], opts);
  const s = st.sets.find((x) => x.name === name);
  if (!s) throw new NftError("unexpected_output", `nft -j list ${kind} printed no ${kind} ${name}`);
  return s;
}

/** The `size` of a set, or undefined when it has none (used to explain "set is full"). */
export async function readSetSize(
  fam: string,
  table: string,
  name: string,
  opts: DriverOptions = {},
): Promise<number | undefined> {
  const st = await listJson(["set", ...objectArgs(fam, table, name)], opts);
  return st.sets.find((x) => x.name === name)?.size;
}

export async function readCounters(fam: Family, table: string, opts: DriverOptions = {}): Promise<CounterState[]> {
  return (await listJson(["counters", "table", ...objectArgs(fam, table)], opts)).counters;
}

export async function readCounter(
  fam: Family,
  table: string,
  name: string,
  opts: DriverOptions = {},
): Promise<CounterState> {
  const c = (await listJson(["counter", ...objectArgs(fam, table, name)], opts)).counters.find((x) => x.name === name);
  if (!c) throw new NftError("not_found", `counter ${name} not found in table ${fam} ${table}`);
  return c;
}

export async function readQuotas(fam: Family, table: string, opts: DriverOptions = {}): Promise<QuotaState[]> {
  return (await listJson(["quotas", "table", ...objectArgs(fam, table)], opts)).quotas;
}

export async function readQuota(
  fam: Family,
  table: string,
  name: string,
  opts: DriverOptions = {},
): Promise<QuotaState> {
  const q = (await listJson(["quota", ...objectArgs(fam, table, name)], opts)).quotas.find((x) => x.name === name);
  if (!q) throw new NftError("not_found", `quota ${name} not found in table ${fam} ${table}`);
  return q;
}
