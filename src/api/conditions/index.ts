// Operator conditions (docs/conditions.md): the store and delivery to the agents over the per-host bus.
export {
  setCondition,
  listConditions,
  conditionsForHost,
  hasConditionsCapability,
  hostsWithoutConditions,
  CONDITIONS_CAPABILITY,
  type ConditionRow,
  type ConditionSelector,
  type HostConditionChange,
} from "./store.ts";
export { publishConditionChanges } from "./deliver.ts";
