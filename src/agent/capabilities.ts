// What every Hello tells the API about this host: nft's version and probed features (once),
// and, fresh each time, what does not work (missing programs, log readers that failed).
import { driver as kernel, type DriverOptions } from "../engine/index.ts";
import type { Capabilities, Unavailable } from "../protocol/agent.ts";
import { packageVersion } from "../runtime/install-root.ts";

const AGENT_VERSION = packageVersion(import.meta.url);

export function hostCapabilities(driver: DriverOptions, unavailable: () => Unavailable[]): () => Promise<Capabilities> {
  let caps: Capabilities | undefined;
  return async () => {
    if (!caps) {
      const c = await kernel.detectCapabilities(driver);
      caps = {
        nftVersion: c.nftVersion ?? "",
        kernel: c.kernelRelease,
        ipv6: c.ipv6,
        // `bans`: this agent applies ban updates (the API sends none to an agent without it).
        features: [
          ...Object.entries(c.features)
            .filter(([, ok]) => ok)
            .map(([f]) => f),
          "bans",
          // `conditions`: this agent fills the policy's condition sets (docs/conditions.md).
          "conditions",
          "dynamic_sets",
          // `geoip`: this agent fills the policy's country sets (docs/geoip.md); the API refuses
          // to deploy a version that tests countries to an agent without it.
          "geoip",
        ].sort(),
        xtablesModules: [],
        agentVersion: AGENT_VERSION,
        unavailable: [],
      };
    }
    // Fresh on every Hello: a log reader that failed since the last one is reported too.
    return { ...caps, unavailable: unavailable() };
  };
}
