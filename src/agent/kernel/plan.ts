// Turning desired ruleset text into the transaction the agent sends.
//
// Incremental (the default): a Palisade table that already exists is NOT deleted. The
// transaction flushes its chains (`flush table` empties rules only), deletes the chains,
// sets, counters and quotas the new text no longer declares, empties static sets (their
// elements are rewritten), and then runs the desired text minus its `delete table`.
// Re-adding an existing counter, quota or set is a no-op in the kernel (measured on
// 6.18 / nft 1.0.6: `add counter` keeps the value, `add quota` updates the limit and
// keeps `used`, dynamic set elements stay), so accounting, quota and counter state is
// never reset, and no packet is lost between a read and the commit, because nothing is
// read. Anonymous rule counters restart (the rules are new); telemetry reads only
// named objects. Everything is still one atomic transaction.
//
// Carry (fallback, when the kernel refuses the incremental form, e.g. a set changed
// its type or a base chain its hook): the desired text as-is (tables deleted and
// recreated) with the values read just before written into the definitions:
// `counter N { packets P bytes B }`, `quota N { until L bytes used U bytes }`, and
// `add element ... { addr counter packets P bytes B }` for counted dynamic sets.
// Packets that pass between that read and the commit are lost; the log says so.

import type { RulesetState } from "../../engine/driver/index.ts";
import type { Token } from "../../engine/nft/index.ts";
import { declaredObjects, parseStatements, tableKey, type Statement } from "./statements.ts";

export type PlanMode = "incremental" | "carry";

export function incrementalPlan(desiredText: string, kernel: RulesetState): string {
  const stmts = parseStatements(desiredText);
  const desired = declaredObjects(stmts);
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
      if (tableKey(c.family, c.table) === k && !want.objects.has(`chain ${c.name}`)) lines.push(`delete chain ${k} ${c.name}`);
    }
    for (const s of kernel.sets) {
      if (tableKey(s.family, s.table) !== k) continue;
      if (!want.objects.has(`${s.kind} ${s.name}`)) lines.push(`delete ${s.kind} ${k} ${s.name}`);
      // Static sets are rewritten from the text; sets the kernel fills (dynamic/timeout) keep their elements.
      else if (!want.dynamic.has(`${s.kind} ${s.name}`)) lines.push(`flush ${s.kind} ${k} ${s.name}`);
    }
    for (const c of kernel.counters) {
      if (tableKey(c.family, c.table) === k && !want.objects.has(`counter ${c.name}`)) lines.push(`delete counter ${k} ${c.name}`);
    }
    for (const q of kernel.quotas) {
      if (tableKey(q.family, q.table) === k && !want.objects.has(`quota ${q.name}`)) lines.push(`delete quota ${k} ${q.name}`);
    }
  }
  for (const s of stmts) {
    const k = tableKey(s.family, s.table);
    // Only the table's own delete/flush go; everything else (adds, rules, elements) runs.
    if (s.object === "table" && (s.verb === "delete" || s.verb === "destroy" || s.verb === "flush") && existing.has(k)) continue;
    lines.push(s.text);
  }
  return lines.join("\n") + "\n";
}

/** Replace token range [from, to) of a statement's text with `insert`. */
interface Edit {
  from: number;
  to: number;
  insert: string;
}

function tokenOffsets(st: Statement): number[] {
  // Token positions relative to the statement's text, from their line/col.
  const first = st.tokens[0]!;
  const lines = st.text.split("\n");
  const lineStart: number[] = [];
  let acc = 0;
  for (const l of lines) {
    lineStart.push(acc);
    acc += l.length + 1;
  }
  return st.tokens.map((t) => lineStart[t.line - first.line]! + (t.line === first.line ? t.col - first.col : t.col - 1));
}

/** The `{ ... }` block right after token index i (inclusive indexes of both braces). */
function blockAfter(tokens: Token[], i: number): [number, number] | undefined {
  let j = i + 1;
  while (tokens[j]?.kind === "newline") j++;
  if (tokens[j]?.kind !== "lbrace") return undefined;
  let depth = 0;
  for (let k = j; k < tokens.length; k++) {
    if (tokens[k]!.kind === "lbrace") depth++;
    if (tokens[k]!.kind === "rbrace" && --depth === 0) return [j, k];
  }
  return undefined;
}

function carryEdit(kind: "counter" | "quota", tokens: Token[], offs: number[], nameIdx: number, stmtLen: number, values: { packets?: number; bytes?: number; used?: number }): Edit {
  const blk = blockAfter(tokens, nameIdx);
  const afterName = offs[nameIdx]! + tokens[nameIdx]!.text.length;
  if (kind === "counter") {
    const v = `packets ${values.packets ?? 0} bytes ${values.bytes ?? 0}`;
    if (!blk) return { from: afterName, to: afterName, insert: ` { ${v} }` };
    // Drop any packets/bytes the text already has, then put ours first in the block.
    const inner = tokens.slice(blk[0] + 1, blk[1]);
    const kept: string[] = [];
    for (let i = 0; i < inner.length; i++) {
      const t = inner[i]!;
      if (t.kind === "word" && (t.text === "packets" || t.text === "bytes")) {
        i++;
        continue;
      }
      if (t.kind !== "newline" && t.kind !== "semicolon") kept.push(t.text);
    }
    return { from: offs[blk[0]]!, to: offs[blk[1]]! + 1, insert: `{ ${[v, ...kept].join(" ")} }` };
  }
  if (!blk) return { from: stmtLen, to: stmtLen, insert: "" };
  // quota: `[until|over] L bytes [used U bytes] [comment "..."]`
  const inner = tokens.slice(blk[0] + 1, blk[1]);
  const out: string[] = [];
  let limitDone = false;
  for (let i = 0; i < inner.length; i++) {
    const t = inner[i]!;
    if (t.kind === "word" && t.text === "used") {
      i += 2; // used N bytes
      continue;
    }
    if (t.kind === "newline" || t.kind === "semicolon") continue;
    out.push(t.text);
    if (!limitDone && t.kind === "word" && /^[kmg]?bytes$/.test(t.text)) {
      out.push(`used ${values.used ?? 0} bytes`);
      limitDone = true;
    }
  }
  return { from: offs[blk[0]]!, to: offs[blk[1]]! + 1, insert: `{ ${out.join(" ")} }` };
}

function applyEdits(text: string, edits: Edit[]): string {
  let out = text;
  for (const e of [...edits].sort((a, b) => b.from - a.from)) out = out.slice(0, e.from) + e.insert + out.slice(e.to);
  return out;
}

export function carryPlan(desiredText: string, kernel: RulesetState): string {
  const stmts = parseStatements(desiredText);
  const counters = new Map(kernel.counters.map((c) => [`${tableKey(c.family, c.table)} ${c.name}`, c]));
  const quotas = new Map(kernel.quotas.map((q) => [`${tableKey(q.family, q.table)} ${q.name}`, q]));
  const desired = declaredObjects(stmts);
  const parts: string[] = [];
  for (const s of stmts) {
    const offs = tokenOffsets(s);
    const edits: Edit[] = [];
    const k = tableKey(s.family, s.table);
    if ((s.verb === "add" || s.verb === "create") && (s.object === "counter" || s.object === "quota") && s.name !== undefined) {
      const nameIdx = s.tokens.findIndex((t, i) => i > 2 && t.text === s.name);
      const c = s.object === "counter" ? counters.get(`${k} ${s.name}`) : undefined;
      const q = s.object === "quota" ? quotas.get(`${k} ${s.name}`) : undefined;
      if (c) edits.push(carryEdit("counter", s.tokens, offs, nameIdx, s.text.length, c));
      if (q) edits.push(carryEdit("quota", s.tokens, offs, nameIdx, s.text.length, q));
    } else if (s.object === "table" && s.verb === "add") {
      // Block form: `counter N { ... }` / `quota N { ... }` at depth 1.
      let depth = 0;
      for (let j = 0; j < s.tokens.length; j++) {
        const t = s.tokens[j]!;
        if (t.kind === "lbrace") depth++;
        else if (t.kind === "rbrace") depth--;
        else if (depth === 1 && (t.text === "counter" || t.text === "quota") && s.tokens[j + 1]?.kind === "word") {
          const name = s.tokens[j + 1]!.text;
          const c = t.text === "counter" ? counters.get(`${k} ${name}`) : undefined;
          const q = t.text === "quota" ? quotas.get(`${k} ${name}`) : undefined;
          if (c) edits.push(carryEdit("counter", s.tokens, offs, j + 1, s.text.length, c));
          if (q) edits.push(carryEdit("quota", s.tokens, offs, j + 1, s.text.length, q));
        }
      }
    }
    parts.push(applyEdits(s.text, edits));
  }
  // Per-address counters of counted dynamic sets that the new text still declares.
  for (const set of kernel.sets) {
    const k = tableKey(set.family, set.table);
    if (!set.counter || set.kind !== "set") continue;
    if (!desired.get(k)?.dynamic.has(`set ${set.name}`)) continue;
    const els = set.elements.filter((e) => e.packets !== undefined);
    for (let i = 0; i < els.length; i += 500) {
      const chunk = els.slice(i, i + 500).map((e) => `${e.key} counter packets ${e.packets ?? 0} bytes ${e.bytes ?? 0}`);
      parts.push(`add element ${k} ${set.name} { ${chunk.join(", ")} }`);
    }
  }
  return parts.join("\n") + "\n";
}
