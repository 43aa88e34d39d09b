// Structured diff of two JSON documents: a list of changes addressed by JSON pointer.
// Arrays are aligned by longest common subsequence so inserting one rule at the top
// reads as one "add", not as every later rule "changed".
import { isDeepStrictEqual } from "node:util";

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

/** Index pairs (i in a, j in b) of a longest common subsequence of equal elements. */
function lcsPairs(a: unknown[], b: unknown[]): [number, number][] {
  if (a.length * b.length > LCS_MAX_CELLS) {
    return a.flatMap((x, i) => (i < b.length && isDeepStrictEqual(x, b[i]) ? [[i, i] as [number, number]] : []));
  }
  const n = a.length;
  const m = b.length;
  const len = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      len[i]![j] = isDeepStrictEqual(a[i], b[j]) ? len[i + 1]![j + 1]! + 1 : Math.max(len[i + 1]![j]!, len[i]![j + 1]!);
    }
  }
  const pairs: [number, number][] = [];
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (isDeepStrictEqual(a[i], b[j])) pairs.push([i++, j++]);
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
