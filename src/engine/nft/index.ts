// The nft transaction model: build a Transaction of typed operations, serialize it.
export * from "./transaction.ts";
export { serialize, serializeOperation, type SerializeOptions } from "./serialize.ts";
export {
  replaceTables,
  replaceChain,
  replaceElements,
  defineTable,
  elementsOf,
  type TableDefinition,
  type ReplaceOptions,
} from "./replace.ts";
export {
  comment,
  logPrefix,
  ifname,
  ifnameProblem,
  quoteText,
  sanitizeText,
  textProblems,
  uint,
  seconds,
  COMMENT_MAX_BYTES,
  LOG_PREFIX_MAX_BYTES,
  IFNAME_MAX_BYTES,
  type TextKind,
} from "./quote.ts";
export {
  identifier,
  isIdentifier,
  isNftKeyword,
  palisadeTable,
  isPalisadeTable,
  family,
  FAMILIES,
  PALISADE_TABLE_PREFIX,
  IDENTIFIER_RE,
} from "./names.ts";
export { elementKeyProblem, elementValueProblem } from "./element.ts";
export { lex, singleStatementProblem, type Token, type TokenKind } from "./lex.ts";
export { nflogGroups } from "./log-groups.ts";
export { NftModelError, type NftModelErrorCode } from "./errors.ts";
export { carryState, carryReplace, type CarriedState } from "./carry.ts";
