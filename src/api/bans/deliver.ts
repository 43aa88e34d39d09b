// Changes go to each affected host's channel on the per-host bus; the replica holding the
// agent's stream turns the absolute expiry into the remaining TTL as it sends.
import type { Redis } from "ioredis";
import { publishToHosts } from "../host-bus.ts";
import type { HostBanChange } from "./store.ts";

export const publishBanChanges = (redis: Redis, changes: HostBanChange[]) =>
  publishToHosts(redis, changes, (c) => ({ type: "bans", lists: c.lists }));
