// Structured diff of two JSON documents: a list of changes addressed by JSON pointer.
// Arrays are aligned by longest common subsequence so inserting one rule at the top
// reads as one "add", not as every later rule "changed". The cost is bounded: at most
// LCS_MAX_CELLS table cells per array, numbers compared in them; the API runs it off the
// event loop anyway (cpu-pool.ts).
import { isDeepStrictEqual } from "node:util";
import { canonicalJson } from "../engine/index.ts";

export type Change =
  | { op: "add"; path: string; to: unknown }
  | { op: "remove"; path: string; from: unknown }
  | { op: "change"; path: string; from: unknown; to: unknown };

const esc = (s: string | number) => String(s).replace(/~/g, "~0").replace(/\//g, "~1");
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Above this many cells the LCS table costs more than it helps; compare by index instead. */
const LCS_MAX_CELLS = 4_000_000;

export function diffJson(from: unknown, to: unknown, path = ""): Change[] {
  if (isDeepStrictEqual(from, to)) return [];
  if (isObject(from) && isObject(to)) {
    const out: Change[] = [];
    const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])].sort();
    for (const k of keys) {
      const p = `${path}/${esc(k)}`;
      if (!(k in to)) out.push({ op: "remove", path: p, from: from[k] });
      else if (!(k in from)) out.push({ op: "add", path: p, to: to[k] });
      else out.push(...diffJson(from[k], to[k], p));
    }
    return out;
  }
  if (Array.isArray(from) && Array.isArray(to)) return diffArrays(from, to, path);
  return [{ op: "change", path, from, to }];
}

/**
 * Index pairs (i in a, j in b) of a longest common subsequence of equal elements. Each
 * element is reduced once to a number (equal canonical JSON, equal number), so the table
 * compares numbers, not documents; the common prefix and suffix (most edits touch a few
 * rules) are matched without a table at all.
 */
function lcsPairs(a: unknown[], b: unknown[]): [number, number][] {
  const ids = new Map<string, number>();
  const idOf = (v: unknown) => {
    const key = canonicalJson(v);
    let id = ids.get(key);
    if (id === undefined) ids.set(key, (id = ids.size));
    return id;
  };
  const x = Int32Array.from(a, idOf);
  const y = Int32Array.from(b, idOf);
  let start = 0;
  while (start < x.length && start < y.length && x[start] === y[start]) start++;
  let endA = x.length;
  let endB = y.length;
  while (endA > start && endB > start && x[endA - 1] === y[endB - 1]) endA--, endB--;
  const pairs: [number, number][] = [];
  for (let i = 0; i < start; i++) pairs.push([i, i]);
  pairs.push(
    ...middlePairs(x.subarray(start, endA), y.subarray(start, endB)).map(
      ([i, j]) => [i + start, j + start] as [number, number],
    ),
  );
  for (let k = 0; k < x.length - endA; k++) pairs.push([endA + k, endB + k]);
  return pairs;
}

function middlePairs(x: Int32Array, y: Int32Array): [number, number][] {
  const n = x.length;
  const m = y.length;
  if (n * m > LCS_MAX_CELLS) {
    const out: [number, number][] = [];
    for (let i = 0; i < n && i < m; i++) if (x[i] === y[i]) out.push([i, i]);
    return out;
  }
  const len = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      len[i]![j] = x[i] === y[j] ? len[i + 1]![j + 1]! + 1 : Math.max(len[i + 1]![j]!, len[i]![j + 1]!);
    }
  }
  const pairs: [number, number][] = [];
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (x[i] === y[j]) pairs.push([i++, j++]);
    else if (len[i + 1]![j]! >= len[i]![j + 1]!) i++;
    else j++;
  }
  return pairs;
}

/**
 * Between two matched anchors, elements removed and added at the same offset are diffed
 * field by field (an edited rule); the rest are whole removals or additions. Paths of
 * removals name the index in `from`, paths of additions and changes the index in `to`.
 */
function diffArrays(a: unknown[], b: unknown[], path: string): Change[] {
  const out: Change[] = [];
  let i = 0;
  let j = 0;
  for (const [ai, bj] of [...lcsPairs(a, b), [a.length, b.length] as [number, number]]) {
    while (i < ai && j < bj) out.push(...diffJson(a[i++], b[j], `${path}/${j++}`));
    while (i < ai) out.push({ op: "remove", path: `${path}/${i}`, from: a[i++] });
    while (j < bj) out.push({ op: "add", path: `${path}/${j}`, to: b[j++] });
    i = ai + 1;
    j = bj + 1;
  }
  return out;
}
