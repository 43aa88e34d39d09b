// All semantic checks on a schema-valid policy of sane size (limits.ts runs first), one
// concern per module. Mostly errors; a few modules add closely related warnings. Checks that
// hold for one target only (names nft cannot read, names.ts) run with the target (target.ts);
// the sets the agent fills (names.ts) are refused for every target.
import type { Diagnostic } from "../diagnostics.ts";
import type { Policy } from "../policy/index.ts";
import { safetyErrors } from "./safety.ts";
import { referenceErrors } from "./references.ts";
import { placementErrors } from "./placement.ts";
import { matchErrors } from "./matches.ts";
import { objectErrors } from "./objects.ts";
import { quotaGrowthProblems } from "./quota-growth.ts";
import { forwardingErrors } from "./forwarding.ts";
import { presetErrors } from "./presets.ts";
import { reservedSetErrors } from "./names.ts";

export function semanticErrors(policy: Policy): Diagnostic[] {
  return [
    ...safetyErrors(policy),
    ...referenceErrors(policy),
    ...placementErrors(policy),
    ...matchErrors(policy),
    ...objectErrors(policy),
    ...quotaGrowthProblems(policy),
    ...forwardingErrors(policy),
    ...presetErrors(policy),
    ...reservedSetErrors(policy),
  ];
}
