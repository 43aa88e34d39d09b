// Parsing `nft -j` output without building the whole tree at once. A 65k-element set is
// one JSON array of ~200k objects; JSON.parse of the document holds all of them (and the
// text) until the conversion to typed state is done. Here the document is cut at its
// top-level entries, and a set's `elem` array into batches of elements: each piece is
// parsed, converted by the caller, and dropped before the next one is parsed, so the
// process holds the text, the typed result and one batch of parsed JSON.
//
// The cutting is a scan of the text that knows JSON strings (a comment may hold `[`,
// `,` or `"elem"`); the pieces themselves are parsed by JSON.parse, so every syntax
// error is still JSON.parse's.

export interface EntryPiece {
  /** The entry with its `elem` array emptied (`"elem": []`), or the whole entry. */
  head: unknown;
  /** The elements of the entry's `elem` array, parsed `batch` at a time. */
  elements: Iterable<unknown[]>;
}

const QUOTE = 34;
const BACKSLASH = 92;
const LBRACE = 123;
const RBRACE = 125;
const LBRACKET = 91;
const RBRACKET = 93;
const COMMA = 44;
const COLON = 58;

/** Index just after the string that opens at `i` (text[i] === '"'). */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === BACKSLASH) j++;
    else if (c === QUOTE) return j + 1;
  }
  throw new SyntaxError("unterminated string in nft's JSON");
}

const isSpace = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;

/**
 * Top-level items of the JSON array whose `[` is at `open`: [start, end) of each.
 * Returns the items and the index of the closing `]`.
 */
function arrayItems(text: string, open: number): { items: [number, number][]; close: number } {
  const items: [number, number][] = [];
  let depth = 0;
  let start = -1;
  for (let i = open + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      if (start < 0) start = i;
      i = stringEnd(text, i) - 1;
      continue;
    }
    if (isSpace(c)) continue;
    if (depth === 0 && (c === COMMA || c === RBRACKET)) {
      if (start >= 0) items.push([start, i]);
      start = -1;
      if (c === RBRACKET) return { items, close: i };
      continue;
    }
    if (start < 0) start = i;
    if (c === LBRACE || c === LBRACKET) depth++;
    else if (c === RBRACE || c === RBRACKET) depth--;
  }
  throw new SyntaxError("unterminated array in nft's JSON");
}

/** The `[` of the array value of key `"elem"` directly inside the object at depth 2 of [from, to), or -1. */
function elemArray(text: string, from: number, to: number): number {
  let depth = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (depth === 2 && end - i === 6 && text.startsWith('"elem"', i)) {
        let j = end;
        while (j < to && isSpace(text.charCodeAt(j))) j++;
        if (text.charCodeAt(j) === COLON) {
          j++;
          while (j < to && isSpace(text.charCodeAt(j))) j++;
          if (text.charCodeAt(j) === LBRACKET) return j;
        }
      }
      i = end - 1;
    } else if (c === LBRACE || c === LBRACKET) depth++;
    else if (c === RBRACE || c === RBRACKET) depth--;
  }
  return -1;
}

function* batches(text: string, items: [number, number][], batch: number): Generator<unknown[]> {
  for (let i = 0; i < items.length; i += batch) {
    const last = Math.min(i + batch, items.length) - 1;
    yield JSON.parse(`[${text.slice(items[i]![0], items[last]![1])}]`) as unknown[];
  }
}

/** Entries smaller than this are parsed whole: cutting them saves nothing. */
const SMALL_ENTRY = 64 * 1024;

/**
 * The entries of `{"nftables": [...]}`, one at a time; large ones with their `elem`
 * array in batches. Throws SyntaxError when the text is not such a document.
 */
export function* nftablesEntries(text: string, batch = 256): Generator<EntryPiece> {
  const key = text.indexOf('"nftables"');
  if (key < 0) throw new SyntaxError('no "nftables" key in nft\'s JSON');
  let open = key + '"nftables"'.length;
  while (open < text.length && (isSpace(text.charCodeAt(open)) || text.charCodeAt(open) === COLON)) open++;
  if (text.charCodeAt(open) !== LBRACKET) throw new SyntaxError('"nftables" is not a list in nft\'s JSON');
  const { items } = arrayItems(text, open);
  for (const [from, to] of items) {
    const at = to - from > SMALL_ENTRY ? elemArray(text, from, to) : -1;
    if (at < 0) {
      yield { head: JSON.parse(text.slice(from, to)), elements: [] };
      continue;
    }
    const { items: els, close } = arrayItems(text, at);
    yield {
      head: JSON.parse(`${text.slice(from, at)}[]${text.slice(close + 1, to)}`),
      elements: batches(text, els, batch),
    };
  }
}
