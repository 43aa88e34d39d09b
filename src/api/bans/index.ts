// Fleet-wide bans (docs/bans.md): the store, the guard against banning the management
// path, and delivery to the agents over the per-host bus.
export {
  addBans,
  removeBans,
  listBans,
  bansForHost,
  sweepExpiredBans,
  hasBansCapability,
  hostsWithoutBans,
  BANS_CAPABILITY,
  checkAddresses,
  type BanRow,
  type HostBanChange,
  type BanSelector,
} from "./store.ts";
export { publishBanChanges } from "./deliver.ts";
export { apiAddresses } from "./guard.ts";
