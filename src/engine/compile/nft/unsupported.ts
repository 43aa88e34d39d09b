// Features nftables cannot express. The verdict and the message live in
// compile/support.ts (one source of truth for the validator and both compilers);
// compileNft reports them through checkTargetSupport, so here they are only skipped.
import { FEATURES } from "../support.ts";
import type { ActionObject } from "../../policy/index.ts";

export const NFT_TARGET = "nftables";

/** True when nftables cannot express this action (its error comes from checkTargetSupport). */
export function unsupportedAction(a: ActionObject): boolean {
  const entry = (FEATURES as Record<string, { nftables: { supported: boolean } }>)[`action.${a.type}`];
  return entry !== undefined && !entry.nftables.supported;
}
