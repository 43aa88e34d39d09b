// The npm package @ip-location-db/geo-whois-asn-country as a data source: two CSVs
// (`start,end,country`, IPv4 and IPv6) in the layout the operator's file has too. It is not
// a dependency of Palisade (about 48 MB unpacked, refreshed daily, and its data is CC BY 4.0
// by the NRO, which asks for attribution, although package.json says CC0): the operator
// installs it beside the server (`npm install --no-save @ip-location-db/geo-whois-asn-country`,
// no install scripts, nothing fetched at run time) or points PALISADE_GEOIP_PACKAGE_DIR at an
// unpacked copy. See docs/geoip.md.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { installRoot } from "../../runtime/install-root.ts";
import { ApiError } from "../errors.ts";

export const GEOIP_PACKAGE = "@ip-location-db/geo-whois-asn-country";
const FILES = ["geo-whois-asn-country-ipv4.csv", "geo-whois-asn-country-ipv6.csv"];

function packageDir(): string | undefined {
  const env = process.env.PALISADE_GEOIP_PACKAGE_DIR;
  if (env) return existsSync(join(env, FILES[0]!)) ? env : undefined;
  for (const from of [join(process.cwd(), "package.json"), join(installRoot(import.meta.url), "package.json")]) {
    try {
      return dirname(createRequire(from).resolve(`${GEOIP_PACKAGE}/package.json`));
    } catch {
      // not installed there
    }
  }
  return undefined;
}

/** Both CSVs as one text, and the package version for the record. */
export async function readPackageData(): Promise<{ csv: string; source: string }> {
  const dir = packageDir();
  if (!dir)
    throw new ApiError(
      409,
      "geoip_package_missing",
      `the country data package is not installed beside the server: run 'npm install --no-save ${GEOIP_PACKAGE}' in its directory (or set PALISADE_GEOIP_PACKAGE_DIR), or load a CSV with 'palisade geoip update --file FILE'`,
    );
  const parts = await Promise.all(FILES.map((f) => readFile(join(dir, f), "utf8")));
  let version = "";
  try {
    version = (JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { version?: string }).version ?? "";
  } catch {
    // an unpacked copy without package.json
  }
  return { csv: parts.join("\n"), source: `${GEOIP_PACKAGE}${version ? `@${version}` : ""}` };
}
