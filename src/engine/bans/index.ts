// Fleet-wide bans: address parsing and the agent's ban table as nft text. Pure.
export {
  parseBanAddress,
  banCovers,
  bansOverlap,
  BAN_LIST_RE,
  BAN_LIST_RULE,
  type BanAddress,
  type BanAddressError,
} from "./address.ts";
export {
  banTableText,
  banTableDeleteText,
  banListCreateText,
  banDeltaText,
  banSetName,
  BANS_TABLE,
  BANS_CHAIN,
  BANS_PRIORITY,
  type BanElement,
  type BanFailsafe,
} from "./table.ts";
