// Kernel-side failures as typed values. `code` is stable (the API and agent switch on
// it); `message` is a sentence for an operator; `kernelMessage` is nft's own first
// error line, verbatim, because it is what nft's documentation and forums talk about.

export type NftErrorCode =
  /** The nft binary (or `ip` for a namespace) is not installed or not executable. */
  | "nft_not_found"
  /** nft ran longer than the timeout and was killed. */
  | "nft_timeout"
  /** nft refused the ruleset text (syntax or a kernel refusal); nothing was applied. */
  | "nft_rejected"
  /**
   * The kernel lacks a feature a rule uses (its module is not built: nft queue without
   * CONFIG_NFT_QUEUE); `feature` names it (nft/kernel-features.ts). Nothing was applied.
   */
  | "kernel_feature_missing"
  /** A set/map at its size limit refused elements (the kernel says "Too many open files"). */
  | "set_full"
  /** Not allowed to change the ruleset (needs root or CAP_NET_ADMIN). */
  | "permission_denied"
  /** The named network namespace does not exist. */
  | "netns_not_found"
  /** Invalid argument to a driver function (bad namespace name, table name...). */
  | "invalid_argument"
  /** The ruleset text touches a table whose name does not start with "palisade". */
  | "foreign_table"
  /** The ruleset text uses a command the driver never sends (flush ruleset, include...). */
  | "forbidden_command"
  /** A table, chain, set, counter or quota that was asked for does not exist. */
  | "not_found"
  /** nft's output did not have the shape the driver relies on. */
  | "unexpected_output"
  /** nft failed in a way none of the codes above describes. */
  | "nft_failed";

export interface NftErrorLocation {
  line: number;
  column: number;
  /** The line of input nft pointed at, when it echoed it. */
  text?: string;
}

export interface NftErrorDetails {
  kernelMessage?: string;
  exitCode?: number | null;
  stderr?: string;
  location?: NftErrorLocation;
  /** For set_full. */
  set?: string;
  size?: number;
  /** For foreign_table. */
  table?: string;
  /** For kernel_feature_missing: the driver's probe name (e.g. "queue"). */
  feature?: string;
  cause?: unknown;
}

export class NftError extends Error {
  override readonly name = "NftError";
  readonly kernelMessage?: string;
  readonly exitCode?: number | null;
  readonly stderr?: string;
  readonly location?: NftErrorLocation;
  readonly set?: string;
  readonly size?: number;
  readonly table?: string;
  readonly feature?: string;

  constructor(
    readonly code: NftErrorCode,
    message: string,
    details: NftErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.kernelMessage = details.kernelMessage;
    this.exitCode = details.exitCode;
    this.stderr = details.stderr;
    this.location = details.location;
    this.set = details.set;
    this.size = details.size;
    this.table = details.table;
    this.feature = details.feature;
  }

  /** A plain object for logs and the agent protocol. */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      kernelMessage: this.kernelMessage,
      location: this.location,
      set: this.set,
      size: this.size,
      table: this.table,
      feature: this.feature,
    };
  }
}

export function isNftError(e: unknown): e is NftError {
  return e instanceof NftError;
}
