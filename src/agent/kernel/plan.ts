// Turning desired ruleset text into the transaction the agent sends.
//
// Incremental (the default): a Palisade table that already exists is NOT deleted. The
// transaction flushes its chains (`flush table` empties rules only), deletes the chains,
// sets, counters, quotas and ct helpers the new text no longer declares, and the ct helpers
// whose type, protocol or l3proto it declares otherwise (e.g. changed by hand: `add ct helper` keeps
// an existing one as it is, so the text's add puts them back new; `delete` + `add` in one
// transaction is accepted, measured on 6.18 / nft 1.0.6), empties static sets (their
// elements are rewritten), and then runs the desired text minus its `delete
// table`. The deletes come after the flush: the kernel refuses to delete a named object a
// rule still uses (`delete ct helper` before `flush table` in one transaction: Device or
// resource busy; after it: accepted, measured on 6.18 / nft 1.0.6), and the new rules that
// follow use only objects the text declares.
// Re-adding an existing counter, quota or set is a no-op in the kernel (measured on
// 6.18 / nft 1.0.6: `add counter` keeps the value, `add quota` updates the limit and
// keeps `used`, dynamic set elements stay), so accounting, quota and counter state is
// never reset, and no packet is lost between a read and the commit, because nothing is
// read. Anonymous rule counters restart (the rules are new); telemetry reads only
// named objects. Everything is still one atomic transaction.
//
// Carry (fallback, when the kernel refuses the incremental form, e.g. a set changed
// its type or a base chain its hook) is not planned here: it is the engine's
// nft.carryReplace() on the compiled tables (src/engine/nft/carry.ts), see apply.ts.

import type { KernelObjects, TableDefinition } from "../../engine/index.ts";
import { declaredObjects, helperShape, parseStatements, tableKey, type TableObjects } from "./statements.ts";

export type PlanMode = "incremental" | "carry";

/** What the compiled tables declare, as declaredObjects() reads it from text. */
export function declaredByTables(tables: TableDefinition[]): Map<string, TableObjects> {
  const out = new Map<string, TableObjects>();
  for (const d of tables) {
    const t: TableObjects = {
      family: d.table.family,
      table: d.table.name,
      objects: new Set(),
      dynamic: new Set(),
      helpers: new Map(),
    };
    for (const c of d.chains) t.objects.add(`chain ${c.name}`);
    for (const c of d.counters ?? []) t.objects.add(`counter ${c.name}`);
    for (const q of d.quotas ?? []) t.objects.add(`quota ${q.name}`);
    for (const h of d.table.ctHelpers ?? []) {
      t.objects.add(`ct helper ${h.name}`);
      // serialize.ts writes `l3proto inet` for every helper.
      t.helpers.set(h.name, helperShape(h.type, h.protocol, "inet"));
    }
    for (const s of d.sets ?? []) {
      t.objects.add(`${s.kind} ${s.name}`);
      if (s.flags?.includes("dynamic") || s.flags?.includes("timeout") || s.timeout !== undefined)
        t.dynamic.add(`${s.kind} ${s.name}`);
    }
    out.set(tableKey(d.table.family, d.table.name), t);
  }
  return out;
}

/**
 * True when the kernel's helper runs another type, protocol or l3proto than the text declares. `add ct
 * helper` keeps an existing helper of that name as it is, so the plan deletes it and the text
 * adds it again. Only when both sides are known: the JSON read, the listing and the known
 * state all give them, and a helper that is not known to differ is left alone.
 */
function helperChanged(h: KernelObjects["ctHelpers"][number], want: TableObjects): boolean {
  const desired = want.helpers.get(h.name);
  if (desired === undefined || h.type === undefined || h.protocol === undefined) return false;
  return desired !== helperShape(h.type, h.protocol, h.l3proto ?? h.family);
}

/**
 * A `delete|destroy|flush table F T` line, matched with the newline before it (the text gets
 * one in front): lines are split at "\n" only, as split("\n") did (the `m` flag's ^ and $
 * also match at \r and U+2028, which a quoted comment may hold), and a regex that starts with
 * a literal is searched natively, without trying every position.
 */
const TABLE_VERB_LINE = /\n(?:delete|destroy|flush) table (\S+) (\S+)(?=\n|$)/g;

/**
 * The incremental transaction. With `tables` (the compiled model of `desiredText`, which
 * serialize() wrote one statement per line) the text is not lexed: the objects come from
 * the model and only whole `delete|destroy|flush table F T` lines are dropped; a 10k-rule
 * text is planned in a few milliseconds instead of ~170 ms of lexing.
 */
export function incrementalPlan(desiredText: string, kernel: KernelObjects, tables?: TableDefinition[]): string {
  const stmts = tables ? undefined : parseStatements(desiredText);
  const desired = tables ? declaredByTables(tables) : declaredObjects(stmts!);
  const existing = new Set(kernel.tables.map((t) => tableKey(t.family, t.name)));
  const lines: string[] = [];
  for (const t of kernel.tables) {
    const k = tableKey(t.family, t.name);
    const want = desired.get(k);
    if (!want) {
      lines.push(`delete table ${k}`);
      continue;
    }
    lines.push(`flush table ${k}`);
    for (const c of kernel.chains) {
      if (tableKey(c.family, c.table) === k && !want.objects.has(`chain ${c.name}`))
        lines.push(`delete chain ${k} ${c.name}`);
    }
    for (const s of kernel.sets) {
      if (tableKey(s.family, s.table) !== k) continue;
      if (!want.objects.has(`${s.kind} ${s.name}`)) lines.push(`delete ${s.kind} ${k} ${s.name}`);
      // Static sets are rewritten from the text; sets the kernel fills (dynamic/timeout) keep their elements.
      else if (!want.dynamic.has(`${s.kind} ${s.name}`)) lines.push(`flush ${s.kind} ${k} ${s.name}`);
    }
    for (const c of kernel.counters) {
      if (tableKey(c.family, c.table) === k && !want.objects.has(`counter ${c.name}`))
        lines.push(`delete counter ${k} ${c.name}`);
    }
    for (const q of kernel.quotas) {
      if (tableKey(q.family, q.table) === k && !want.objects.has(`quota ${q.name}`))
        lines.push(`delete quota ${k} ${q.name}`);
    }
    for (const h of kernel.ctHelpers) {
      if (tableKey(h.family, h.table) === k && (!want.objects.has(`ct helper ${h.name}`) || helperChanged(h, want)))
        lines.push(`delete ct helper ${k} ${h.name}`);
    }
  }
  // Only the delete/flush of a table that exists and stays goes; everything else (adds,
  // rules, elements, and the add + delete of a table the text drops) runs.
  const kept = (k: string) => existing.has(k) && desired.has(k);
  if (!stmts) {
    // One native search for the table verbs instead of splitting 10k lines (and no
    // `/\n*$/`, which V8 tries at every position of the text: ~10 ms for 10k rules).
    const body = `\n${desiredText}`.replace(TABLE_VERB_LINE, (l, f: string, t: string) =>
      kept(tableKey(f, t)) ? "" : l,
    );
    let end = body.length;
    while (end > 1 && body.charCodeAt(end - 1) === 10) end--;
    return lines.map((l) => l + "\n").join("") + body.slice(1, end) + "\n";
  }
  for (const s of stmts) {
    const k = tableKey(s.family, s.table);
    if (s.object === "table" && (s.verb === "delete" || s.verb === "destroy" || s.verb === "flush") && kept(k))
      continue;
    lines.push(s.text);
  }
  return lines.join("\n") + "\n";
}
