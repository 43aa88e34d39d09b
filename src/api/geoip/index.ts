// Country data for the geoip match (docs/geoip.md): the store, and delivery to the agents.
export {
  GEOIP_CAPABILITY,
  geoDataset,
  geoipHosts,
  geoUpdatesFor,
  hasGeoipCapability,
  hostsWithoutGeoip,
  loadGeoData,
  type CountryCounts,
  type CountryUpdate,
  type GeoDatasetView,
  type GeoLoadResult,
} from "./store.ts";
export { publishGeoipChange } from "./deliver.ts";
export { readPackageData, GEOIP_PACKAGE } from "./package-source.ts";
