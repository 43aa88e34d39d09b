// An in-memory Driver for unit tests of the agent's decisions (which plan, when to carry,
// when to roll back): no root, no nft. It reads the statement form the compiler, the
// agent's planner and carryReplace emit (`add|create|delete|destroy|flush|insert` of
// tables, chains, sets/maps, counters, quotas, ct helpers, rules, elements) and keeps what the
// kernel would keep, as measured on 6.18 / nft 1.0.6: a transaction is all or nothing;
// re-adding a counter keeps its value, re-adding a quota updates its limit and keeps
// `used`; a base chain's hook, type or priority cannot change in place, nor a set's type;
// a full set refuses elements (set_full); deleting what does not exist fails, and so does
// deleting a counter, quota, set or ct helper a rule still uses, or a rule that names a ct
// helper the table does not have.
// test/kernel/driver-contract.test.ts runs the same operations against this and against
// nftDriver in a namespace and compares what they read back. Not imitated: what rule
// bodies mean (stored as text, never evaluated), packets (tests call count()/hit()),
// the listing form of `nft list table` (snapshot() writes statement form).

import {
  assertPalisadeOnly,
  NftError,
  restoreText,
  type Driver,
  type RulesetState,
  type SetElementState,
  type SetState,
  type Snapshot,
  type TableState,
  type KernelObjects,
  type ReadOptions,
} from "../../src/engine/driver/index.ts";
import type { Family } from "../../src/engine/nft/index.ts";
import { appendState, emptyState } from "../../src/agent/kernel/read.ts";
import { parseStatements, type Statement } from "../../src/agent/kernel/statements.ts";

interface FChain {
  name: string;
  type?: string;
  hook?: string;
  priority?: number;
  policy?: string;
  rules: { text: string; comment?: string }[];
}
/** A set as the kernel reports it (SetState), its table implied, its elements by key. */
type FSet = Omit<SetState, "family" | "table" | "elements"> & { elements: Map<string, SetElementState> };
interface FTable {
  family: Family;
  name: string;
  chains: Map<string, FChain>;
  sets: Map<string, FSet>;
  counters: Map<string, { packets: number; bytes: number; comment?: string }>;
  quotas: Map<string, { mode: "until" | "over"; bytes: number; used: number; comment?: string }>;
  ctHelpers: Map<string, { type: string; protocol: string }>;
}

const PRIORITIES: Record<string, number> = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
  out: 100,
};
const UNITS: Record<string, number> = { bytes: 1, kbytes: 1024, mbytes: 1024 ** 2, gbytes: 1024 ** 3 };

function refused(what: string): NftError {
  return new NftError("nft_rejected", `nft refused the ruleset: ${what}`, { kernelMessage: what });
}

function seconds(w: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(w);
  if (!m) throw refused(`bad time ${w}`);
  const n = Number(m[1]);
  return m[2] === "m"
    ? n * 60
    : m[2] === "h"
      ? n * 3600
      : m[2] === "d"
        ? n * 86400
        : m[2] === "ms"
          ? Math.ceil(n / 1000)
          : n;
}

/** Words inside the statement's first `{ ... }` block, split at `;`/newlines at depth 1. */
function blockClauses(st: Statement): { words: string[]; inner: Statement["tokens"] }[] {
  const open = st.tokens.findIndex((t) => t.kind === "lbrace");
  if (open < 0) return [];
  const out: { words: string[]; inner: Statement["tokens"] }[] = [];
  let cur: Statement["tokens"] = [];
  let depth = 0;
  for (let i = open + 1; i < st.tokens.length; i++) {
    const t = st.tokens[i]!;
    if (t.kind === "lbrace") depth++;
    if (t.kind === "rbrace" && depth-- === 0) break;
    if (depth === 0 && (t.kind === "semicolon" || t.kind === "newline")) {
      if (cur.length) out.push({ words: cur.map((x) => x.text), inner: cur });
      cur = [];
      continue;
    }
    cur.push(t);
  }
  if (cur.length) out.push({ words: cur.map((x) => x.text), inner: cur });
  return out;
}

const unquote = (s: string) => (s.startsWith('"') ? s.slice(1, -1) : s);

/** Elements of `{ a counter packets 1 bytes 2, b timeout 60s, k : v }` (tokens inside the braces). */
function parseElements(tokens: Statement["tokens"], isMap: boolean): SetElementState[] {
  const out: SetElementState[] = [];
  let cur: string[] = [];
  const end = () => {
    if (!cur.length) return;
    const stop = cur.findIndex(
      (w) => w === "counter" || w === "timeout" || w === "expires" || w === "comment" || w === ":",
    );
    const keyWords = stop < 0 ? cur : cur.slice(0, stop);
    const e: SetElementState = { key: keyWords.join(" ") };
    for (let i = keyWords.length; i < cur.length; i++) {
      const w = cur[i]!;
      if (w === ":" && isMap) e.value = cur.slice(i + 1).join(" ");
      if (w === ":") break;
      if (w === "packets") e.packets = Number(cur[++i]);
      else if (w === "bytes") e.bytes = Number(cur[++i]);
      else if (w === "counter") (e.packets ??= 0), (e.bytes ??= 0);
      else if (w === "timeout") e.timeout = seconds(cur[++i]!);
      else if (w === "expires") e.expires = seconds(cur[++i]!);
      else if (w === "comment") e.comment = unquote(cur[++i]!);
    }
    out.push(e);
    cur = [];
  };
  for (const t of tokens) {
    if (t.kind === "comma") end();
    else if (t.kind !== "newline") cur.push(t.text);
  }
  end();
  return out;
}

/** Tokens between the `{ }` of the first block at or after index `from`. */
function braceTokens(tokens: Statement["tokens"], from: number): Statement["tokens"] {
  const open = tokens.findIndex((t, i) => i >= from && t.kind === "lbrace");
  if (open < 0) return [];
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    if (tokens[i]!.kind === "lbrace") depth++;
    if (tokens[i]!.kind === "rbrace" && --depth === 0) return tokens.slice(open + 1, i);
  }
  throw refused("unbalanced braces");
}

function cloneTable(t: FTable): FTable {
  return {
    ...t,
    chains: new Map([...t.chains].map(([k, c]) => [k, { ...c, rules: [...c.rules] }])),
    sets: new Map(
      [...t.sets].map(([k, s]) => [
        k,
        { ...s, flags: [...s.flags], elements: new Map([...s.elements].map(([ek, e]) => [ek, { ...e }])) },
      ]),
    ),
    counters: new Map([...t.counters].map(([k, c]) => [k, { ...c }])),
    quotas: new Map([...t.quotas].map(([k, q]) => [k, { ...q }])),
    ctHelpers: new Map([...t.ctHelpers].map(([k, h]) => [k, { ...h }])),
  };
}

/**
 * `ct helper NAME { type "ftp" protocol tcp ; l3proto inet ; }` declarations in `tokens`
 * (a table block's, or an `add ct helper F T NAME { ... }` statement's from its NAME).
 */
function ctHelperDecls(tokens: Statement["tokens"]): { name: string; type: string; protocol: string }[] {
  const out: { name: string; type: string; protocol: string }[] = [];
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i]!.text !== "ct" || tokens[i + 1]?.text !== "helper" || tokens[i + 3]?.kind !== "lbrace") continue;
    const body = braceTokens(tokens, i + 3).map((t) => t.text);
    const type = body[body.indexOf("type") + 1];
    const protocol = body[body.indexOf("protocol") + 1];
    if (!body.includes("type") || !type || !protocol) throw refused(`ct helper ${tokens[i + 2]!.text} needs a type`);
    out.push({ name: tokens[i + 2]!.text, type: unquote(type), protocol });
  }
  return out;
}

export class FakeDriver implements Driver {
  private tables = new Map<string, FTable>();
  /** Every text apply() committed, in order (tests look at what the agent sent). */
  readonly applied: string[] = [];

  // ---------------------------------------------------------------- test helpers: traffic

  /** Packets through a named counter (and a named quota of the same rule, when given). */
  count(family: Family, table: string, counter: string, packets: number, bytes: number): void {
    const c = this.table(this.tables, family, table).counters.get(counter);
    if (!c) throw new Error(`fake: no counter ${counter}`);
    c.packets += packets;
    c.bytes += bytes;
  }

  /** Bytes through a named quota. */
  spend(family: Family, table: string, quota: string, bytes: number): void {
    const q = this.table(this.tables, family, table).quotas.get(quota);
    if (!q) throw new Error(`fake: no quota ${quota}`);
    q.used += bytes;
  }

  /** An address seen by a dynamic set with counters (`add @set { ip saddr counter }`). */
  hit(family: Family, table: string, set: string, key: string, packets: number, bytes: number): void {
    const s = this.table(this.tables, family, table).sets.get(set);
    if (!s) throw new Error(`fake: no set ${set}`);
    const e = s.elements.get(key) ?? { key, packets: 0, bytes: 0 };
    e.packets = (e.packets ?? 0) + packets;
    e.bytes = (e.bytes ?? 0) + bytes;
    s.elements.set(key, e);
  }

  // ---------------------------------------------------------------- Driver

  async check(text: string): Promise<void> {
    this.run(text);
  }

  async apply(text: string): Promise<void> {
    this.tables = this.run(text);
    this.applied.push(text);
  }

  async snapshot(): Promise<Snapshot> {
    const tables = await this.listTables();
    // The object names, as nftDriver's snapshot lists them for the incremental plan.
    const objects: KernelObjects = { tables, chains: [], sets: [], counters: [], quotas: [], ctHelpers: [] };
    for (const t of tables) {
      const st = await this.readTable(t.family, t.name);
      objects.chains.push(...st.chains.map((c) => ({ family: c.family, table: c.table, name: c.name })));
      objects.sets.push(...st.sets.map((x) => ({ family: x.family, table: x.table, name: x.name, kind: x.kind })));
      objects.counters.push(...st.counters.map((c) => ({ family: c.family, table: c.table, name: c.name })));
      objects.quotas.push(...st.quotas.map((q) => ({ family: q.family, table: q.table, name: q.name })));
      objects.ctHelpers.push(...st.ctHelpers.map((h) => ({ family: h.family, table: h.table, name: h.name })));
    }
    return {
      tables,
      text: tables.map((t) => this.textOf(this.tables.get(`${t.family} ${t.name}`)!)).join(""),
      takenAt: new Date().toISOString(),
      objects,
    };
  }

  async restore(snap: Snapshot): Promise<void> {
    if (snap.text.length > 0 && snap.tables.length === 0)
      throw new NftError("invalid_argument", "snapshot has text but lists no tables");
    await this.apply(restoreText(snap, await this.listTables()));
  }

  async listTables(): Promise<TableState[]> {
    return [...this.tables.values()]
      .map((t) => ({ family: t.family, name: t.name }))
      .sort((a, b) => (a.family + a.name < b.family + b.name ? -1 : 1));
  }

  /** ReadOptions change nothing here: rule bodies are not read back (expr is []). */
  async readWithoutElements(_read: ReadOptions = {}): Promise<RulesetState> {
    const st = emptyState();
    for (const t of await this.listTables()) {
      const one = this.tableState(t.family, t.name);
      appendState(st, { ...one, sets: one.sets.map((x) => ({ ...x, elements: [] })) });
    }
    return st;
  }

  async readTable(family: Family, table: string, _read: ReadOptions = {}): Promise<RulesetState> {
    return this.tableState(family, table);
  }

  private tableState(family: Family, table: string): RulesetState {
    const t = this.existing(family, table);
    const st: RulesetState = {
      tables: [{ family, name: table }],
      chains: [],
      rules: [],
      sets: [],
      counters: [],
      quotas: [],
      ctHelpers: [],
    };
    for (const c of t.chains.values()) {
      st.chains.push({
        family,
        table,
        name: c.name,
        ...(c.type ? { type: c.type, hook: c.hook, priority: c.priority, policy: c.policy } : {}),
      });
      for (const r of c.rules)
        st.rules.push({
          family,
          table,
          chain: c.name,
          expr: [],
          ...(r.comment !== undefined ? { comment: r.comment } : {}),
        });
    }
    for (const s of t.sets.values()) st.sets.push(this.setState(family, table, s));
    for (const [name, c] of t.counters)
      st.counters.push({
        family,
        table,
        name,
        packets: c.packets,
        bytes: c.bytes,
        ...(c.comment ? { comment: c.comment } : {}),
      });
    for (const [name, q] of t.quotas)
      st.quotas.push({
        family,
        table,
        name,
        mode: q.mode,
        bytes: q.bytes,
        used: Math.min(q.used, q.bytes),
        ...(q.comment ? { comment: q.comment } : {}),
      });
    for (const [name, h] of t.ctHelpers) st.ctHelpers.push({ family, table, name, ...h });
    return st;
  }

  async readSet(
    family: Family,
    table: string,
    name: string,
    kind: "set" | "map" = "set",
    _read: ReadOptions = {},
  ): Promise<SetState> {
    const s = this.existing(family, table).sets.get(name);
    if (!s || s.kind !== kind)
      throw new NftError("not_found", `not found: nft list ${kind} ${family} ${table} ${name}`);
    return this.setState(family, table, s);
  }

  async readCounters(family: Family, table: string): Promise<RulesetState["counters"]> {
    return (await this.readTable(family, table)).counters;
  }

  async readQuotas(family: Family, table: string): Promise<RulesetState["quotas"]> {
    return (await this.readTable(family, table)).quotas;
  }

  async resetCounter(family: Family, table: string, name: string): Promise<RulesetState["counters"][number]> {
    const c = this.existing(family, table).counters.get(name);
    if (!c) throw new NftError("not_found", `not found: nft reset counter ${family} ${table} ${name}`);
    const before = { family, table, name, packets: c.packets, bytes: c.bytes };
    c.packets = 0;
    c.bytes = 0;
    return before;
  }

  async resetQuota(family: Family, table: string, name: string): Promise<RulesetState["quotas"][number]> {
    const q = this.existing(family, table).quotas.get(name);
    if (!q) throw new NftError("not_found", `not found: nft reset quota ${family} ${table} ${name}`);
    const before = { family, table, name, mode: q.mode, bytes: q.bytes, used: Math.min(q.used, q.bytes) };
    q.used = 0;
    return before;
  }

  // ---------------------------------------------------------------- the interpreter

  private existing(family: Family, table: string): FTable {
    const t = this.tables.get(`${family} ${table}`);
    if (!t) throw new NftError("not_found", `not found: nft list table ${family} ${table}`);
    return t;
  }

  private table(tables: Map<string, FTable>, family: string, name: string): FTable {
    const t = tables.get(`${family} ${name}`);
    if (!t) throw refused(`No such file or directory: table ${family} ${name}`);
    return t;
  }

  private setState(family: Family, table: string, s: FSet): SetState {
    return {
      kind: s.kind,
      family,
      table,
      name: s.name,
      type: [...s.type],
      // nft 1.0.6's JSON does not report the dynamic flag.
      flags: s.flags.filter((f) => f !== "dynamic"),
      counter: s.counter,
      elements: [...s.elements.values()].map((e) => ({
        ...e,
        ...(e.timeout !== undefined ? { expires: e.expires ?? e.timeout } : {}),
      })),
      ...(s.map ? { map: s.map } : {}),
      ...(s.size !== undefined ? { size: s.size } : {}),
      ...(s.timeout !== undefined ? { timeout: s.timeout } : {}),
      ...(s.comment !== undefined ? { comment: s.comment } : {}),
    };
  }

  /** The tables after `text`, on a copy: the caller commits it or drops it (atomic). */
  private run(text: string): Map<string, FTable> {
    assertPalisadeOnly(text);
    const tables = new Map([...this.tables].map(([k, t]) => [k, cloneTable(t)]));
    for (const st of parseStatements(text)) this.exec(tables, st);
    return tables;
  }

  private exec(tables: Map<string, FTable>, st: Statement): void {
    const key = `${st.family} ${st.table}`;
    const obj = st.object;
    if (st.tokens[0]?.text === "table") throw refused("the fake driver reads the statement form only");
    if (obj === "table") {
      if (st.verb === "add" || st.verb === "create") {
        if (tables.has(key) && st.verb === "create") throw refused(`File exists: table ${key}`);
        if (!tables.has(key))
          tables.set(key, {
            family: st.family as Family,
            name: st.table,
            chains: new Map(),
            sets: new Map(),
            counters: new Map(),
            quotas: new Map(),
            ctHelpers: new Map(),
          });
        // measured: re-adding an identical helper to an existing table succeeds
        const t = tables.get(key)!;
        for (const h of ctHelperDecls(braceTokens(st.tokens, 0)))
          if (!t.ctHelpers.has(h.name)) t.ctHelpers.set(h.name, { type: h.type, protocol: h.protocol });
      } else if (st.verb === "delete" || st.verb === "destroy") {
        if (!tables.delete(key) && st.verb === "delete") throw refused(`No such file or directory: table ${key}`);
      } else if (st.verb === "flush") {
        for (const c of this.table(tables, st.family, st.table).chains.values()) c.rules = [];
      } else throw refused(`${st.verb} table is not imitated`);
      return;
    }
    const t = this.table(tables, st.family, st.table);
    const name = st.name ?? "";
    if (obj === "chain") return this.chain(t, st, name);
    if (obj === "set" || obj === "map") return this.set(t, st, name, obj);
    if (
      (obj === "counter" || obj === "quota" || obj === "set" || obj === "map" || obj === "ct helper") &&
      (st.verb === "delete" || st.verb === "destroy") &&
      this.inUse(t, obj, name)
    ) {
      throw refused(`Device or resource busy: ${obj} ${name} is used by a rule`);
    }
    if (obj === "counter") {
      if (st.verb === "delete" || st.verb === "destroy") {
        if (!t.counters.delete(name) && st.verb === "delete")
          throw refused(`No such file or directory: counter ${name}`);
        return;
      }
      if (t.counters.has(name)) return; // measured: re-adding keeps the value
      const c = { packets: 0, bytes: 0 } as { packets: number; bytes: number; comment?: string };
      for (const { words } of blockClauses(st)) {
        for (let i = 0; i < words.length; i++) {
          if (words[i] === "packets") c.packets = Number(words[++i]);
          else if (words[i] === "bytes") c.bytes = Number(words[++i]);
          else if (words[i] === "comment") c.comment = unquote(words[++i]!);
        }
      }
      t.counters.set(name, c);
      return;
    }
    if (obj === "quota") {
      if (st.verb === "delete" || st.verb === "destroy") {
        if (!t.quotas.delete(name) && st.verb === "delete") throw refused(`No such file or directory: quota ${name}`);
        return;
      }
      const q = { mode: "until" as "until" | "over", bytes: 0, used: 0, comment: undefined as string | undefined };
      for (const { words } of blockClauses(st)) {
        for (let i = 0; i < words.length; i++) {
          const w = words[i]!;
          if (w === "over" || w === "until") q.mode = w;
          else if (w === "used") q.used = Number(words[++i]) * (UNITS[words[++i]!] ?? 1);
          else if (w === "comment") q.comment = unquote(words[++i]!);
          else if (/^\d+$/.test(w) && UNITS[words[i + 1] ?? ""] !== undefined)
            q.bytes = Number(w) * UNITS[words[++i]!]!;
        }
      }
      const had = t.quotas.get(name);
      // measured: re-adding a quota updates its limit and keeps what was used
      t.quotas.set(
        name,
        had
          ? { ...had, bytes: q.bytes, mode: q.mode }
          : { mode: q.mode, bytes: q.bytes, used: q.used, ...(q.comment ? { comment: q.comment } : {}) },
      );
      return;
    }
    if (obj === "ct helper") {
      if (st.verb === "delete" || st.verb === "destroy") {
        if (!t.ctHelpers.delete(name) && st.verb === "delete")
          throw refused(`No such file or directory: ct helper ${name}`);
        return;
      }
      // `add ct helper F T NAME { ... }`: read as the block form's `ct helper NAME { ... }`.
      for (const h of ctHelperDecls([st.tokens[1]!, st.tokens[2]!, ...st.tokens.slice(5)]))
        if (!t.ctHelpers.has(h.name)) t.ctHelpers.set(h.name, { type: h.type, protocol: h.protocol });
      return;
    }
    if (obj === "rule") {
      const chain = t.chains.get(st.tokens[4]?.text ?? "");
      if (!chain) throw refused(`No such file or directory: chain ${st.tokens[4]?.text}`);
      if (st.verb !== "add" && st.verb !== "insert") throw refused(`${st.verb} rule is not imitated`);
      const body = st.tokens.slice(5);
      body.forEach((tk, i) => {
        const target = tk.text === "jump" || tk.text === "goto" ? body[i + 1]?.text : undefined;
        if (target !== undefined && !t.chains.has(target)) throw refused(`No such file or directory: chain ${target}`);
        if (tk.text === "ct" && body[i + 1]?.text === "helper" && body[i + 2]?.text === "set") {
          const h = unquote(body[i + 3]?.text ?? "");
          if (!t.ctHelpers.has(h)) throw refused(`No such file or directory: ct helper ${h}`);
        }
      });
      const last = body.length - 2;
      const comment =
        last >= 0 && body[last]!.text === "comment" && body[last + 1]!.kind === "string"
          ? unquote(body[last + 1]!.text)
          : undefined;
      const text = /^\S+\s+rule\s+\S+\s+\S+\s+\S+\s+([\s\S]*)$/.exec(st.text)?.[1] ?? "";
      const rule = { text, ...(comment !== undefined ? { comment } : {}) };
      if (st.verb === "insert") chain.rules.unshift(rule);
      else chain.rules.push(rule);
      return;
    }
    if (obj === "element") {
      const setName = st.tokens[4]?.text ?? "";
      const s = t.sets.get(setName);
      if (!s) throw refused(`No such file or directory: set ${setName}`);
      const els = parseElements(braceTokens(st.tokens, 5), s.kind === "map");
      if (st.verb === "delete" || st.verb === "destroy") {
        for (const e of els)
          if (!s.elements.delete(e.key) && st.verb === "delete")
            throw refused(`No such file or directory: element ${e.key}`);
        return;
      }
      this.addElements(s, els);
      return;
    }
    throw refused(`${st.verb} ${obj} is not imitated`);
  }

  /**
   * A rule names it: `counter name "x"`, `quota name "x"`, `ct helper set "x"`, `@x` (the
   * kernel refuses to delete it).
   */
  private inUse(t: FTable, obj: string, name: string): boolean {
    const quoted = obj === "counter" || obj === "quota" || obj === "ct helper";
    const ref = obj === "ct helper" ? `ct helper set "${name}"` : quoted ? `${obj} name "${name}"` : `@${name}`;
    for (const c of t.chains.values()) {
      for (const r of c.rules) {
        const at = r.text.indexOf(ref);
        if (at >= 0 && (quoted || !/[A-Za-z0-9_]/.test(r.text[at + ref.length] ?? ""))) return true;
      }
    }
    return false;
  }

  private addElements(s: FSet, els: SetElementState[]): void {
    for (const e of els) {
      if (s.elements.has(e.key)) continue;
      if (s.size !== undefined && s.elements.size >= s.size) {
        throw new NftError(
          "set_full",
          `set ${s.name} is full (size ${s.size}): the kernel refused more elements; raise the set's size or remove elements`,
          { set: s.name, size: s.size },
        );
      }
      const v: SetElementState = { key: e.key };
      if (s.counter) {
        v.packets = e.packets ?? 0;
        v.bytes = e.bytes ?? 0;
      }
      if (e.value !== undefined) v.value = e.value;
      const timeout = e.timeout ?? s.timeout;
      if (timeout !== undefined && s.flags.includes("timeout")) v.timeout = timeout;
      if (e.comment !== undefined) v.comment = e.comment;
      s.elements.set(e.key, v);
    }
  }

  private chain(t: FTable, st: Statement, name: string): void {
    if (st.verb === "delete" || st.verb === "destroy") {
      const c = t.chains.get(name);
      if (!c) {
        if (st.verb === "delete") throw refused(`No such file or directory: chain ${name}`);
        return;
      }
      if (c.rules.length) throw refused(`Device or resource busy: chain ${name} has rules`);
      t.chains.delete(name);
      return;
    }
    if (st.verb === "flush") {
      const c = t.chains.get(name);
      if (!c) throw refused(`No such file or directory: chain ${name}`);
      c.rules = [];
      return;
    }
    const want: FChain = { name, rules: [] };
    for (const { words } of blockClauses(st)) {
      for (let i = 0; i < words.length; i++) {
        const w = words[i]!;
        if (w === "type") want.type = words[++i];
        else if (w === "hook") want.hook = words[++i];
        else if (w === "policy") want.policy = words[++i];
        else if (w === "priority") {
          const base = words[++i]!;
          let p = PRIORITIES[base] ?? Number(base);
          if (words[i + 1] === "+" || words[i + 1] === "-") p += (words[++i] === "+" ? 1 : -1) * Number(words[++i]);
          want.priority = p;
        }
      }
    }
    if (want.hook && !want.policy) want.policy = "accept";
    const had = t.chains.get(name);
    if (!had) {
      if (st.verb === "create" || st.verb === "add") t.chains.set(name, want);
      return;
    }
    if (st.verb === "create") throw refused(`File exists: chain ${name}`);
    if (!want.hook) return;
    if (had.hook !== want.hook || had.type !== want.type || had.priority !== want.priority) {
      throw refused(`Device or resource busy: chain ${name} cannot change its hook, type or priority in place`);
    }
    had.policy = want.policy;
  }

  private set(t: FTable, st: Statement, name: string, kind: "set" | "map"): void {
    if (st.verb === "delete" || st.verb === "destroy") {
      if (!t.sets.delete(name) && st.verb === "delete") throw refused(`No such file or directory: ${kind} ${name}`);
      return;
    }
    if (st.verb === "flush") {
      const s = t.sets.get(name);
      if (!s) throw refused(`No such file or directory: ${kind} ${name}`);
      s.elements.clear();
      return;
    }
    const want: FSet = { kind, name, type: [], flags: [], counter: false, elements: new Map() };
    let elements: SetElementState[] = [];
    for (const { words, inner } of blockClauses(st)) {
      if (words[0] === "elements") {
        elements = parseElements(braceTokens(inner, 0), kind === "map");
        continue;
      }
      for (let i = 0; i < words.length; i++) {
        const w = words[i]!;
        if (w === "type") {
          const parts = words
            .slice(i + 1)
            .join(" ")
            .split(" : ");
          want.type = parts[0]!.split(" . ");
          if (parts[1]) want.map = parts[1];
          break;
        } else if (w === "flags") want.flags = words[++i]!.split(",");
        else if (w === "size") want.size = Number(words[++i]);
        else if (w === "timeout") want.timeout = seconds(words[++i]!);
        else if (w === "counter") want.counter = true;
        else if (w === "comment") want.comment = unquote(words[++i]!);
      }
    }
    const had = t.sets.get(name);
    if (had) {
      if (st.verb === "create") throw refused(`File exists: ${kind} ${name}`);
      if (want.type.length && want.type.join(" . ") !== had.type.join(" . "))
        throw refused(`File exists: ${kind} ${name} has another type`);
      this.addElements(had, elements);
      return;
    }
    t.sets.set(name, want);
    this.addElements(want, elements);
  }

  /** Statement-form text that rebuilds a table, values included (what snapshot() returns). */
  private textOf(t: FTable): string {
    const k = `${t.family} ${t.name}`;
    const lines = [`add table ${k}`];
    for (const [n, h] of t.ctHelpers)
      lines.push(`add ct helper ${k} ${n} { type "${h.type}" protocol ${h.protocol} ; l3proto inet ; }`);
    for (const [n, c] of t.counters)
      lines.push(
        `add counter ${k} ${n} { packets ${c.packets} bytes ${c.bytes} ;${c.comment ? ` comment "${c.comment}" ;` : ""} }`,
      );
    for (const [n, q] of t.quotas)
      lines.push(
        `add quota ${k} ${n} { ${q.mode} ${q.bytes} bytes used ${q.used} bytes ;${q.comment ? ` comment "${q.comment}" ;` : ""} }`,
      );
    const chainLine = (c: FChain) =>
      c.hook
        ? `add chain ${k} ${c.name} { type ${c.type} hook ${c.hook} priority ${c.priority} ; policy ${c.policy} ; }`
        : `add chain ${k} ${c.name}`;
    for (const c of t.chains.values()) if (!c.hook) lines.push(chainLine(c));
    for (const s of t.sets.values()) {
      const decl = [`type ${s.type.join(" . ")}${s.map ? ` : ${s.map}` : ""} ;`];
      if (s.flags.length) decl.push(`flags ${s.flags.join(",")} ;`);
      if (s.size !== undefined) decl.push(`size ${s.size} ;`);
      if (s.timeout !== undefined) decl.push(`timeout ${s.timeout}s ;`);
      if (s.counter) decl.push("counter ;");
      if (s.comment !== undefined) decl.push(`comment "${s.comment}" ;`);
      lines.push(`add ${s.kind} ${k} ${s.name} { ${decl.join(" ")} }`);
      const els = [...s.elements.values()].map(
        (e) =>
          `${e.key}${e.value !== undefined ? ` : ${e.value}` : ""}${e.timeout !== undefined ? ` timeout ${e.timeout}s` : ""}${e.packets !== undefined ? ` counter packets ${e.packets} bytes ${e.bytes ?? 0}` : ""}${e.comment !== undefined ? ` comment "${e.comment}"` : ""}`,
      );
      if (els.length) lines.push(`add element ${k} ${s.name} { ${els.join(", ")} }`);
    }
    for (const c of t.chains.values()) if (c.hook) lines.push(chainLine(c));
    for (const c of t.chains.values()) for (const r of c.rules) lines.push(`add rule ${k} ${c.name} ${r.text}`);
    return lines.join("\n") + "\n";
  }
}
