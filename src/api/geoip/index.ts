// Country data for the geoip match (docs/geoip.md): the store, and delivery to the agents.
export {
  GEOIP_CAPABILITY,
  countriesWithoutData,
  geoDataset,
  geoipHosts,
  geoUpdatesFor,
  hasGeoipCapability,
  hostsWithoutGeoip,
  loadGeoData,
  lockGeoData,
  type CountryCounts,
  type MissingCountryData,
  type CountryUpdate,
  type GeoDatasetView,
  type GeoLoadResult,
} from "./store.ts";
export { publishGeoipChange } from "./deliver.ts";
export { readPackageData, GEOIP_PACKAGE } from "./package-source.ts";
