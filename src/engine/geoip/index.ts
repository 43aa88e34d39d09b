// Country sets for the geoip match (xt_geoip on nftables). Pure.
export { COUNTRY_RE, CountryCode, GEO_SET_FLAGS, GEO_SET_PREFIX, geoOfSet, geoSetName, geoSetType } from "./names.ts";
export {
  addressToBigInt,
  bigIntToAddress,
  foldDelta,
  intervalDelta,
  intervalText,
  parseGeoCsv,
  type CountryIntervals,
  type GeoParseError,
  type GeoParsed,
} from "./ranges.ts";
export { geoSyncText, type GeoSetChange } from "./sync.ts";
export { mergeCountryFamilies, policyCountries, policyCountryFamilies, type GeoFamily } from "./policy.ts";
