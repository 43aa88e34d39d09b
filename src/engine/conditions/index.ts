// Operator conditions (xt_condition) as nft sets the agent fills. Pure.
export {
  CONDITION_NAME_RE,
  CONDITION_NAME_RULE,
  CONDITION_ON_ELEMENTS,
  CONDITION_SET_PREFIX,
  CONDITION_SET_TYPE,
  ConditionName,
  conditionOfSet,
  conditionSetName,
  conditionSyncText,
} from "./names.ts";
