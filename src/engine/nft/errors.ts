// Errors raised while building or rendering an nft transaction. They are programming
// errors of a compiler (a bad name, a string that cannot be quoted safely), never
// kernel errors: those are the driver's NftError.

export type NftModelErrorCode =
  | "invalid_identifier"
  | "invalid_family"
  | "invalid_string"
  | "string_too_long"
  | "invalid_ifname"
  | "invalid_element"
  | "invalid_rule"
  | "invalid_chain"
  | "invalid_set"
  | "invalid_number"
  | "foreign_table";

export class NftModelError extends Error {
  override readonly name = "NftModelError";
  constructor(
    readonly code: NftModelErrorCode,
    message: string,
  ) {
    super(message);
  }
}
