// The kinds of named object a Palisade table declares, as nft writes them in statements
// (`add counter inet palisade x ...`), in table blocks and in its listing. One list, so the
// guard, the listing reader and the agent's statement reader agree on them. `ct helper` is
// written in two words: a reader that goes word by word must look at the next one too.

export const OBJECT_KINDS = ["chain", "set", "map", "counter", "quota", "flowtable", "ct helper"] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];

/** How many words nft writes `kind` in. */
export function kindWords(kind: ObjectKind): number {
  return kind.split(" ").length;
}

/** The kinds nft writes as one word: every kind but `ct helper`. */
export const ONE_WORD_KINDS: readonly ObjectKind[] = OBJECT_KINDS.filter((k) => kindWords(k) === 1);
const ONE_WORD: ReadonlySet<string> = new Set(ONE_WORD_KINDS);
const TWO_WORDS: ReadonlySet<string> = new Set(OBJECT_KINDS.filter((k) => kindWords(k) === 2));

/**
 * The kind that `word` names, or `word` and `next` together name (`ct` `helper`); undefined
 * when they name none.
 */
export function objectKind(word: string | undefined, next: string | undefined): ObjectKind | undefined {
  if (word === undefined) return undefined;
  if (ONE_WORD.has(word)) return word as ObjectKind;
  const two = `${word} ${next}`;
  return next !== undefined && TWO_WORDS.has(two) ? (two as ObjectKind) : undefined;
}
