// A load tells every geoip-capable host's stream which countries changed; the replica holding
// the stream sends that agent the deltas of the countries its policy uses (grpc/session.ts).
import type { Redis } from "ioredis";
import { publishToHosts } from "../host-bus.ts";

export const publishGeoipChange = (redis: Redis, hostIds: string[], countries: string[], revision: number) =>
  publishToHosts(
    redis,
    hostIds.map((hostId) => ({ hostId })),
    () => ({ type: "geoip", countries, revision }),
  );
