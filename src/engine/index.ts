// Public surface of the engine. Everything outside src/engine imports from here only.
// policy document -> validate/lint -> compile (nftables | iptables) -> driver (kernel)
export type { Diagnostic, Severity } from "./diagnostics.ts";
// Source parsing, validation and linting, checksums, JSON Schema (validate/, source.ts, checksum.ts, schema-export.ts).
export {
  parsePolicySource,
  MAX_SOURCE_BYTES,
  MAX_YAML_ALIAS_EXPANSION,
  type ParsedSource,
  type SourceFormat,
} from "./source.ts";
export { validatePolicy, type Target, type ValidateOptions, type ValidationResult } from "./validate/index.ts";
export { targetSupport } from "./validate/target.ts";
// Kernel features a version needs (nft queue), checked at deploy against what the host's agent reported.
export { kernelFeatureUses, type KernelFeatureUse } from "./validate/kernel-features.ts";
export { KERNEL_FEATURES, type KernelFeatureName } from "./nft/kernel-features.ts";
export { policyChecksum, canonicalJson } from "./checksum.ts";
export { policyJsonSchema } from "./schema-export.ts";
export type { Policy, PolicyInput } from "./policy/index.ts";
export { checkTargetSupport, requiredXtablesModules, type TargetCapabilities } from "./compile/support.ts";
export { xtRecentMaxHitcount } from "./compile/hitcount.ts";
export { parsePrefix, hasHostBits, compressIpv6 } from "./net/address.ts";
// Fleet-wide bans: addresses and the agent's ban table (bans/).
export * as bans from "./bans/index.ts";
// Operator conditions (xt_condition) as sets the agent fills (conditions/).
export * as conditions from "./conditions/index.ts";
// Country data for the geoip match as per-country sets the agent fills (geoip/).
export * as geoip from "./geoip/index.ts";
// The policy's dynamic sets (trap bans, SYN-flood, recent, meters): which, whose, and lifting an element.
export * as dynamicSets from "./dynamic/index.ts";
export { HostName, isHostId } from "./host-name.ts";
export {
  compileNft,
  renderNft,
  parseAccountingName,
  parseAggregateComment,
  growCounterName,
  packetBucketSet,
  packetSpentSet,
  parseGrowCounterName,
  type AccountingObject,
  type QuotaMode,
} from "./compile/nft/index.ts";
export { renderIptables } from "./compile/iptables/index.ts";
// Protection presets -> plain chains/rules (expand/).
export { expandPolicy, presetNames, spaList, spaLogPrefix } from "./expand/index.ts";
export { trapShareExemption, trapShareOf, type TrapShare } from "./expand/port-scan-trap.ts";
// nft transaction model (nft/) and the kernel driver (driver/), as namespaces to keep names apart:
// nft.Transaction, nft.serialize, nft.replaceTables; driver.apply, driver.check, driver.snapshot, driver.detectCapabilities.
export * as nft from "./nft/index.ts";
export * as driver from "./driver/index.ts";
export {
  NftError,
  isNftError,
  helperProtocolName,
  type NftErrorCode,
  type DriverOptions,
  type Capabilities,
} from "./driver/index.ts";
// The driver's and the transaction model's types the agent works with.
export type {
  Driver,
  Snapshot,
  KernelObjects,
  RulesetState,
  CounterState,
  TableState,
  SetState,
  ReadOptions,
} from "./driver/index.ts";
export type { TableDefinition } from "./nft/index.ts";
// Importers: iptables scripts, iptables-save and ipmasqadm -> policy + per-line report (import/).
export {
  importPolicy,
  importRecorded,
  familyFromFileName,
  formatImportReport,
  RecordedCommand,
  EXECUTE_HINT,
} from "./import/index.ts";
export type { ImportReportLine, ImportFormat, ImportResult } from "./import/index.ts";
// What-if traces: packet specs and trace parsing (trace/); the runner is driver.trace.
export {
  parsePacketSpec,
  PacketSpecError,
  parseTraceLine,
  summarizeTrace,
  type PacketSpec,
  type PacketTrace,
  type TraceStep,
  type TraceVerdict,
} from "./trace/index.ts";
