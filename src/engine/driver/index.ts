// The kernel driver: the only part of the engine that runs `nft`.
export { NftError, isNftError, type NftErrorCode, type NftErrorLocation } from "./errors.ts";
export {
  runNft,
  parseNftStderr,
  DEFAULT_TIMEOUT_MS,
  type DriverOptions,
  type RunOptions,
  type NftResult,
} from "./nft.ts";
export { tablesTouched, assertPalisadeOnly, type TouchedTable } from "./guard.ts";
export { OBJECT_KINDS, objectKind, kindWords, type ObjectKind } from "./object-kinds.ts";
export { check, apply, type ApplyOptions, type ApplyResult } from "./apply.ts";
export { snapshot, restore, restoreText, type Snapshot } from "./snapshot.ts";
export { palisadeListing, type KernelObjects, type Listing, type ObjectName } from "./listing.ts";
export { nftDriver, asDriver, type Driver } from "./driver.ts";
export {
  listRuleset,
  listTables,
  listPalisadeTables,
  readTable,
  readWithoutElements,
  readSet,
  listSetNames,
  readCounters,
  readCounter,
  readQuotas,
  readQuota,
  parseRuleset,
  valueText,
  helperProtocolName,
  type RulesetState,
  type TableState,
  type ChainState,
  type RuleState,
  type SetState,
  type SetElementState,
  type CounterState,
  type QuotaState,
  type CtHelperState,
  type ReadOptions,
} from "./read.ts";
export { resetCounters, resetQuotas, resetCounter, resetQuota } from "./reset.ts";
export {
  detectCapabilities,
  probe,
  probeText,
  nftVersion,
  PROBES,
  type Capabilities,
  type Feature,
} from "./capabilities.ts";
export { trace, CAP_MESSAGE as TRACE_CAP_MESSAGE, TRACE_TABLE, type TraceOptions, type TraceResult } from "./trace.ts";
