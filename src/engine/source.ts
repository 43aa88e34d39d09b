// Policy source text (YAML or JSON, from the API or the CLI) -> a plain value, or
// Diagnostics with line/column. Hostile input is refused here, before the schema sees it:
// oversized documents, YAML alias bombs, duplicate keys (a silent "last one wins" would
// hide half of a rule), and absurd nesting.
import { isAlias, isMap, isNode, isPair, isSeq, LineCounter, parseDocument, type Document, type Node } from "yaml";
import { error, type Diagnostic } from "./diagnostics.ts";

/** Large enough for a 1M-address blocklist written as JSON, small enough to refuse abuse. */
export const MAX_SOURCE_BYTES = 64 * 1024 * 1024;
/** A policy document is at most ~10 levels deep; anything far deeper is an attack or a mistake. */
export const MAX_SOURCE_DEPTH = 64;
/** Aliases are handy for reusing a port list; a few dozen are plenty, bombs need thousands. */
const MAX_ALIAS_COUNT = 50;
/**
 * How many nodes (keys, values, list items) aliases may add to a YAML document when
 * expanded: 50 uses of a 4096-port list fit; one anchor of 200k ports used 48 times
 * (9.6M nodes from a 1 MB body) does not. Checked on the parsed tree, before anything is
 * materialised or validated, because the cost of everything after grows with the expanded size.
 */
export const MAX_YAML_ALIAS_EXPANSION = 250_000;

export type SourceFormat = "json" | "yaml";
export type ParsedSource = { ok: true; value: unknown } | { ok: false; errors: Diagnostic[] };

export function parsePolicySource(text: string, format: SourceFormat): ParsedSource {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_SOURCE_BYTES) {
    return fail("source_too_large", `the document is ${bytes} bytes; the limit is ${MAX_SOURCE_BYTES} bytes`);
  }
  const parsed = format === "json" ? parseJson(text) : parseYaml(text);
  if (!parsed.ok) return parsed;
  if (depthExceeds(parsed.value, MAX_SOURCE_DEPTH)) {
    return fail("source_too_deep", `the document is nested more than ${MAX_SOURCE_DEPTH} levels deep`);
  }
  return parsed;
}

function fail(code: string, message: string): ParsedSource {
  return { ok: false, errors: [error([], code, message)] };
}

function parseYaml(text: string): ParsedSource {
  const lineCounter = new LineCounter();
  // uniqueKeys: duplicate keys are an error; version 1.2 core schema: no YAML 1.1 surprises
  // (`no` stays a string, no `<<` merge keys).
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, version: "1.2", prettyErrors: false });
  if (doc.errors.length > 0) {
    const errors = doc.errors.slice(0, 20).map((e) => {
      const pos = lineCounter.linePos(e.pos[0]);
      const code = e.code === "DUPLICATE_KEY" ? "duplicate_key" : "syntax_error";
      return error([], code, `line ${pos.line}, column ${pos.col}: ${firstLine(e.message)}`);
    });
    return { ok: false, errors };
  }
  const size = measureYaml(doc);
  if ("error" in size) return fail(size.error.code, size.error.message);
  if (size.expanded - size.written > MAX_YAML_ALIAS_EXPANSION) {
    return fail(
      "alias_expansion_too_large",
      `YAML aliases expand the document from ${size.written} to ${size.expanded} nodes; aliases may add at most ${MAX_YAML_ALIAS_EXPANSION} nodes`,
    );
  }
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (e) {
    // yaml throws a ReferenceError when aliases expand past maxAliasCount.
    const msg = e instanceof Error ? e.message : String(e);
    return fail("alias_limit", `YAML aliases expand too much (limit ${MAX_ALIAS_COUNT}): ${firstLine(msg)}`);
  }
}

type YamlSize = { written: number; expanded: number } | { error: { code: string; message: string } };

/**
 * Counts the nodes of a parsed YAML document as written (an alias is one node) and as
 * expanded (an alias counts as its anchor's whole subtree), in one pass over the tree
 * with each anchor's size memoised, so a bomb costs no more to measure than to read.
 * Also refuses nesting deeper than MAX_SOURCE_DEPTH (counted through aliases), which
 * bounds the recursion here, and aliases inside their own anchor (a cycle).
 */
function measureYaml(doc: Document): YamlSize {
  // An alias refers to the last node with its anchor before it, in document order.
  const anchors = new Map<string, Node>();
  const sizes = new Map<Node, { size: number; height: number }>();
  let written = 0;
  class Refused extends Error {
    constructor(readonly code: string) {
      super(code);
    }
  }
  const visit = (node: Node, depth: number): { size: number; height: number } => {
    written += 1;
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (!target) return { size: 1, height: 1 }; // the parser already reported it
      const known = sizes.get(target);
      if (!known) throw new Refused("alias_cycle");
      if (known.height > 0 && depth + known.height - 1 > MAX_SOURCE_DEPTH) throw new Refused("source_too_deep");
      return known;
    }
    if (node.anchor) anchors.set(node.anchor, node);
    // height: levels of collections from this node down (a scalar has 0).
    let size = 1;
    let height = 0;
    if (isMap(node) || isSeq(node)) {
      if (depth > MAX_SOURCE_DEPTH) throw new Refused("source_too_deep");
      height = 1;
      for (const item of node.items) {
        for (const child of isPair(item) ? [item.key, item.value] : [item]) {
          if (!isNode(child)) continue;
          const r = visit(child, depth + 1);
          size += r.size;
          height = Math.max(height, r.height + 1);
        }
      }
    }
    const result = { size, height };
    sizes.set(node, result);
    return result;
  };
  try {
    const expanded = isNode(doc.contents) ? visit(doc.contents, 1).size : 0;
    return { written, expanded };
  } catch (e) {
    if (!(e instanceof Refused)) throw e;
    if (e.code === "alias_cycle")
      return { error: { code: "alias_cycle", message: "a YAML alias refers to a node that contains it" } };
    return {
      error: { code: "source_too_deep", message: `the document is nested more than ${MAX_SOURCE_DEPTH} levels deep` },
    };
  }
}

function parseJson(text: string): ParsedSource {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const m = /position (\d+)/.exec(msg);
    // V8 names a position, except at the end of the text.
    const where = lineCol(text, m ? Number(m[1]) : text.length);
    return fail("syntax_error", `line ${where.line}, column ${where.col}: ${firstLine(msg)}`);
  }
  const dup = findDuplicateJsonKey(text);
  if (dup) {
    const { line, col } = lineCol(text, dup.offset);
    return fail("duplicate_key", `line ${line}, column ${col}: duplicate key ${JSON.stringify(dup.key)} in one object`);
  }
  return { ok: true, value };
}

/**
 * JSON.parse keeps the last of duplicate keys silently. This scanner runs only on text
 * JSON.parse accepted, so it can be simple: track string tokens and object nesting.
 */
function findDuplicateJsonKey(text: string): { key: string; offset: number } | null {
  const stack: Array<Set<string> | null> = []; // null = array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = JSON.parse(text.slice(start, i + 1)) as string;
        if (top.has(key)) return { key, offset: start };
        top.add(key);
        expectKey = false;
      }
    } else if (c === "{") {
      stack.push(new Set());
      expectKey = true;
    } else if (c === "[") {
      stack.push(null);
    } else if (c === "}" || c === "]") {
      stack.pop();
    } else if (c === ",") {
      expectKey = stack[stack.length - 1] != null;
    }
  }
  return null;
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let last = -1;
  for (let i = 0; i < offset && i < text.length; i++) if (text[i] === "\n") (line += 1), (last = i);
  return { line, col: offset - last };
}

function firstLine(s: string): string {
  return s.split("\n")[0]!.trim();
}

/** Iterative, so a hostile document cannot overflow the stack while being measured. */
function depthExceeds(root: unknown, max: number): boolean {
  const work: Array<[unknown, number]> = [[root, 1]];
  while (work.length > 0) {
    const [v, d] = work.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (d > max) return true;
    for (const child of Object.values(v)) work.push([child, d + 1]);
  }
  return false;
}
